"""edgeinfer_load.health: the /healthz judgement, the clock and wait_for (fake time)."""

from __future__ import annotations

import itertools

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
