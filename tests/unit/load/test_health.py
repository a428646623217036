"""edgeinfer_load.health: the /healthz judgement, the clock and wait_for (fake time)."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import edgeinfer_load as lg

HEALTHY = {"status": "ok", "model_version": "v72pct", "model_sha256": "ab" * 32, "normalization_hash": "cd" * 32}


@pytest.mark.parametrize(
    ("status", "body", "expect", "fragment"),
    [
        (200, HEALTHY, {}, None),
        (200, HEALTHY, {"model_version": "v72pct", "model_sha256": "abababab"}, None),
        (200, HEALTHY, {"model_version": None}, None),
        (200, HEALTHY, {"model_version": "v57"}, "model_version is 'v72pct', expected 'v57'"),
        (200, HEALTHY, {"model_sha256": "abab"}, "model_sha256"),  # too short to identify a model
        (200, HEALTHY, {"model_sha256": "ff" * 32}, "model_sha256"),
        (200, HEALTHY, {"normalization_hash": "ee" * 32}, "golden set is for another model"),
        (
            200,
            dict(HEALTHY, embedding_stamp={"stamp": "m/64/0123456789ab"}),
            {"embedding_stamp": "m/64/0123456789ab"},
            None,
        ),
        (200, dict(HEALTHY, embedding_stamp="m/64/0123456789ab"), {"embedding_stamp": "m/64/0123456789ab"}, None),
        (
            200,
            dict(HEALTHY, embedding_stamp={"stamp": "m/64/0123456789ab"}),
            {"embedding_stamp": "other/64/0123456789ab"},
            "serving embedding stamp 'm/64/0123456789ab', expected 'other/64/0123456789ab'",
        ),
        (200, HEALTHY, {"embedding_stamp": "m/64/0123456789ab"}, "serving embedding stamp None"),
        (503, {"status": "unavailable", "reason": "no release"}, {}, "answered 503 (no release)"),
        (200, None, {}, "JSON object"),
        (None, None, {}, "did not answer"),
    ],
)
def test_health_problems(status, body, expect, fragment):
    problems = lg.health_problems(status, body, expect)
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in p for p in problems), problems


def test_clock_yields_until_timeout_with_fake_time():
    t = itertools.count(0.0, 1.0)
    now = [0.0]
    slept = []

    def fake_now():
        return now[0]

    def fake_sleep(s):
        slept.append(s)
        now[0] += s

    ticks = list(lg.clock(5.0, 2.0, now=fake_now, sleep=fake_sleep))
    assert ticks == [0.0, 2.0, 4.0]
    assert slept == [2.0, 2.0]
    del t


def test_wait_for_returns_ok_last_state_and_duration():
    states = iter(["starting", "starting", "ok", "never"])
    ok, last, duration = lg.wait_for(lambda: next(states), lambda s: s == "ok", 10, ticks=iter([0.0, 1.0, 2.0, 3.0]))
    assert (ok, last, duration) == (True, "ok", 2.0)
    ok, last, duration = lg.wait_for(lambda: "down", lambda s: s == "ok", 10, ticks=iter([0.0, 1.0]))
    assert (ok, last, duration) == (False, "down", 1.0)


def test_the_health_wait_waits_for_the_expected_embedding_stamp_too():
    """A sidecar that answers healthy with the stamp of the release before, then the new one: the
    wait ends on the new one (a check of the first healthy answer would fail it)."""
    answers = iter([{"stamp": "old/64/0123456789ab"}] * 2)

    class Sidecar(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(dict(HEALTHY, embedding_stamp=next(answers, {"stamp": "new/64/0123456789ab"}))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sidecar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = lg.Target.parse(f"http://127.0.0.1:{server.server_address[1]}")
        health = lg.check_health(target, {"embedding_stamp": "new/64/0123456789ab"}, wait_s=10)
    finally:
        server.shutdown()
        server.server_close()
    assert health["ok"] and health["problems"] == [], health
    assert health["body"]["embedding_stamp"]["stamp"] == "new/64/0123456789ab"
    assert health["waited_s"] >= 1.0, "it waited through the old stamp's answers"
