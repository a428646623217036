"""Fuzzing the request parsing of a real sidecar process: whatever the body, the answer is a 4xx
(or a 200), never a 5xx, and the process keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from testbed.sidecar import Server, make_release, point_current, start_server, stop_server

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz"]
JSON_TYPES = ["application/json", "", "application/json; charset=utf-8", "application/vnd.x+json", "text/plain"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    rel = make_release(
        tmp / "models" / "releases" / "v72pct",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        golden_windows=2,
    )
    point_current(tmp / "models", rel)
    s = start_server(tmp, tmp / "models" / "current")
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def session(server: Server) -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def post(session: requests.Session, server: Server, path: str, body: bytes, headers: dict[str, str]) -> None:
    r = session.post(server.url + path, data=body, headers=headers, timeout=30)
    assert r.status_code < 500, f"{path} {headers} {body[:200]!r}: {r.status_code} {r.text[:300]}"
    if r.status_code != 200:
        assert 400 <= r.status_code < 500 and r.json()["error"], r.text[:300]


def still_serving(server: Server) -> None:
    assert server.alive()
    assert server.get("/healthz").status_code == 200
    ok = server.post("/encode", data=b"\0" * 3600, headers={"Content-Type": "application/octet-stream"})
    assert ok.status_code == 200, ok.text
    assert 'status="5' not in server.get("/metrics").text


# Every JSON value: numbers beyond float32 and int64, NaN and Infinity (json.dumps writes them), deep lists.
numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([0, 1e9, 1e10, 3.5e38, 1e308, -0.0, 5e-324])
)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=10)
        | st.dictionaries(st.sampled_from(["imu_window", "x", "normalized"]) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=40,
)


@st.composite
def windows(draw: st.DrawFn) -> Any:
    """A window, mostly of the right shape, with a few elements, rows or lengths made wrong."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    fill = draw(st.sampled_from([0.0, 0.5, -3, 1e9]) | numbers)
    rows = draw(st.sampled_from([100, 100, 100, 0, 1, 99, 101]))
    w: list[Any] = [[fill] * 9 for _ in range(rows)]
    for _ in range(draw(st.integers(0, 3)) if w else 0):
        i = draw(st.integers(0, len(w) - 1))
        kind = draw(st.integers(0, 2))
        if kind == 0:
            w[i] = [*w[i][:4], draw(values), *w[i][5:]] if isinstance(w[i], list) else w[i]
        elif kind == 1:
            w[i] = draw(values)
        elif isinstance(w[i], list):
            w[i] = w[i][: draw(st.integers(0, 10))]
    return w


@st.composite
def json_bodies(draw: st.DrawFn, window_key: str, batch_key: str | None) -> bytes:
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj[window_key] = draw(windows())
    if batch_key and draw(st.booleans()):
        obj[batch_key] = draw(st.lists(windows(), max_size=3) | values)
    if draw(st.booleans()):
        obj["normalized"] = draw(st.booleans() | values)
    if draw(st.booleans()):
        obj["channel_order"] = draw(
            st.permutations(CHANNELS) | st.lists(st.sampled_from(CHANNELS), max_size=10) | values
        )
    top: Any = obj if draw(st.integers(0, 4)) else draw(values)
    text = json.dumps(top).encode()  # NaN and Infinity written as such
    cut = draw(st.sampled_from(["whole", "whole", "whole", "truncated", "spliced", "noise"]))
    if cut == "truncated":
        text = text[: draw(st.integers(0, len(text)))]
    elif cut == "spliced":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=16)) + text[at:]
    elif cut == "noise":
        text = draw(st.binary(max_size=512))
    return text


DEEP = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"imu_window": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"normalized": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"x": [' + b",".join([b"[" + b",".join([b"1" * 400] * 9) + b"]"] * 100) + b"]}",
    b'{"imu_window": [[1e400, 0, 0, 0, 0, 0, 0, 0, 0]]}',
]


def test_encode_json_never_answers_5xx(server, session):
    @FUZZ
    @given(body=json_bodies("imu_window", "imu_windows"), content_type=st.sampled_from(JSON_TYPES))
    @example(body=DEEP[0], content_type="application/json")
    @example(body=DEEP[1], content_type="application/json")
    @example(body=DEEP[2], content_type="application/json")
    @example(body=DEEP[4], content_type="application/json")
    def fuzz(body: bytes, content_type: str) -> None:
        post(session, server, "/encode", body, {"Content-Type": content_type} if content_type else {})

    fuzz()
    still_serving(server)


def test_infer_json_never_answers_5xx(server, session):
    @FUZZ
    @given(body=json_bodies("x", None), content_type=st.sampled_from(JSON_TYPES))
    @example(body=DEEP[0], content_type="application/json")
    @example(body=DEEP[3], content_type="application/json")
    def fuzz(body: bytes, content_type: str) -> None:
        post(session, server, "/infer", body, {"Content-Type": content_type} if content_type else {})

    fuzz()
    still_serving(server)


SPECIAL_FLOATS = np.array([0, 1, -1, 1e9, 1.01e9, 1e30, 3.4e38, np.nan, np.inf, -np.inf, 1e-45], np.float32)


@st.composite
def binary_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["windows", "windows", "special", "any"]))
    if kind == "any":
        return draw(st.binary(max_size=8000))
    n = draw(st.sampled_from([1, 1, 2, 3, 65]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "windows":  # random bytes: float32 of every exponent, NaN and Infinity included
        return rng.integers(0, 256, n * 3600, dtype=np.uint8).tobytes()
    arr = rng.standard_normal(n * 900).astype("<f4")
    where = rng.integers(0, arr.size, draw(st.integers(1, 5)))
    arr[where] = rng.choice(SPECIAL_FLOATS, where.size)
    return arr.tobytes()


def test_encode_binary_never_answers_5xx(server, session):
    @FUZZ
    @given(
        body=binary_bodies(),
        query=st.sampled_from(
            ["", "?normalized=1", "?normalized=true", "?normalized=%ff", "?normalized=1&normalized=0"]
        ),
        accept=st.sampled_from(["application/octet-stream", "application/json", "*/*"]),
    )
    def fuzz(body: bytes, query: str, accept: str) -> None:
        headers = {"Content-Type": "application/octet-stream", "Accept": accept}
        post(session, server, "/encode" + query, body, headers)

    fuzz()
    still_serving(server)
