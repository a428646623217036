"""edgeinfer_load.requests: targets, requests on the wire, and how an /encode answer is judged."""

from __future__ import annotations

import json
import math

import pytest

import edgeinfer_load as lg


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([0.1] * 64, None),
        ([0.1] * 63, "expected 64 values, got 63"),
        ([0.1] * 63 + [math.inf], "value [63]"),
        ([0.1] * 63 + [True], "value [63]"),
        ([0.0] * 64, "all values are zero"),
        ("nope", "expected a list"),
    ],
)
def test_embedding_problem(values, problem):
    got = lg.embedding_problem(values)
    assert got == problem if problem is None else problem in got


@pytest.mark.parametrize(
    ("status", "ctype", "body", "kind"),
    [
        (200, "application/json", json.dumps({"latent_embedding": [0.5] * 64}).encode(), None),
        (200, "application/json", json.dumps({"latent_embedding": [0.5] * 10}).encode(), "bad_body"),
        (200, "application/json", b"{not json", "bad_body"),
        (200, "application/octet-stream", b"\x00\x00\x80\x3f" * 64, None),
        (200, "application/octet-stream", b"\x00" * 12, "bad_body"),
        (503, "application/json", b"{}", "status_503"),
    ],
)
def test_embedding_validator(status, ctype, body, kind):
    assert lg.embedding_ok(status, ctype, body) == kind


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [("http://127.0.0.1:9000", "127.0.0.1", 9000), ("edge:9001", "edge", 9001), ("http://[::1]:80/x", "::1", 80)],
)
def test_target_parse(url, host, port):
    t = lg.Target.parse(url)
    assert (t.host, t.port) == (host, port)


def test_target_parse_refuses_https():
    with pytest.raises(ValueError, match="only http"):
        lg.Target.parse("https://edge:9000")


def test_request_wire_is_http11_with_length():
    req = lg.encode_request(binary=True)
    wire = req.wire(lg.Target("127.0.0.1", 9000))
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1:9000")
    assert b"Content-Length: 3600" in head and len(body) == 3600
    assert b"Accept: application/octet-stream" in head


def test_synthetic_window_is_deterministic_raw_units():
    w = lg.synthetic_window()
    assert w == lg.synthetic_window() and len(w) == 100 and all(len(r) == 9 for r in w)
    az = [r[2] for r in w]
    assert 5 < sum(az) / len(az) < 15  # gravity on z, in m/s^2: raw, not normalized
