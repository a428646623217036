"""Pure parts of the probe: the health predicate and the clock, without a network."""

from __future__ import annotations

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._probe import clock, health_predicate

HEALTHY = {"model_version": "v2", "model_sha256": "ab" * 32, "embedding_stamp": {"stamp": "m/64/0123456789ab"}}


@pytest.mark.parametrize(
    ("state", "expect", "ok", "reason"),
    [
        (None, {}, False, "not probed"),
        ((None, None, "connection refused"), {}, False, "no answer: connection refused"),
        ((503, {"reason": "self-check failed"}, None), {}, False, "503: self-check failed"),
        ((200, None, "body is not JSON"), {}, False, "without a JSON object"),
        ((200, HEALTHY, None), {}, True, "healthy"),
        ((200, HEALTHY, None), {"expect_version": "v2", "expect_sha256": "ab" * 32}, True, "healthy"),
        ((200, HEALTHY, None), {"expect_version": "v1"}, False, "expected 'v1'"),
        ((200, HEALTHY, None), {"expect_sha256": "cd" * 32}, False, "model_sha256"),
        ((200, HEALTHY, None), {"expect_stamp": "m/64/0123456789ab"}, True, "healthy"),
        ((200, HEALTHY, None), {"expect_stamp": "other/64/0123456789ab"}, False, "embedding stamp"),
    ],
)
def test_health_predicate(state, expect, ok, reason) -> None:
    got_ok, got_reason = health_predicate(state, **expect)
    assert got_ok is ok
    assert reason in got_reason


def test_clock_ticks_until_the_timeout_and_sleeps_the_interval() -> None:
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    ticks = list(clock(2.0, 0.5, now=lambda: t[0], sleep=sleep))
    assert ticks[0] == 0.0 and ticks[-1] == pytest.approx(2.0)
    assert len(ticks) == 5
    assert all(s == pytest.approx(0.5) for s in slept)


def test_clock_never_sleeps_past_the_timeout() -> None:
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    ticks = list(clock(1.0, 0.7, now=lambda: t[0], sleep=sleep))
    assert ticks == [0.0, pytest.approx(0.7), pytest.approx(1.0)]
