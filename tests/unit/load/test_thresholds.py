"""edgeinfer_load.thresholds: the checks against Thresholds, a missed threshold named."""

from __future__ import annotations

import math

import pytest

import edgeinfer_load as lg


def _figures(**over):
    f = {
        "health": {"ok": True, "status": 200, "problems": []},
        "latency_p95_ms": 10.0,
        "throughput_rps": 900.0,
        "success_rate": 1.0,
        "quality": {"ok": True, "problems": [], "min_cosine": 0.9999},
        "memory": {"measured": True, "memory_peak_mb": 200.0, "samples": 5, "reason": ""},
    }
    f.update(over)
    return f


@pytest.mark.parametrize(
    ("over", "targets", "failed"),
    [
        ({}, lg.Thresholds(), []),
        ({"latency_p95_ms": 50.0}, lg.Thresholds(), ["latency"]),  # "P95 < 50 ms": 50 is a miss
        ({"latency_p95_ms": math.nan}, lg.Thresholds(), ["latency"]),
        ({"throughput_rps": 250.0}, lg.Thresholds(), ["throughput"]),  # "> 250 req/s"
        ({"success_rate": 0.99}, lg.Thresholds(), ["success"]),  # "> 99 %"
        (
            {"memory": {"measured": True, "memory_peak_mb": 512.0, "samples": 3, "reason": ""}},
            lg.Thresholds(),
            ["memory"],
        ),
        (
            {"memory": {"measured": False, "memory_peak_mb": None, "samples": 0, "reason": "no socket"}},
            lg.Thresholds(),
            ["memory"],
        ),
        (
            {"memory": {"measured": False, "memory_peak_mb": None, "samples": 0, "reason": "x"}},
            lg.Thresholds(max_memory_mb=None),
            [],
        ),
        (
            {"quality": {"ok": False, "problems": ["window 3: cosine 0.5 < 0.99"], "min_cosine": 0.5}},
            lg.Thresholds(),
            ["quality"],
        ),
        ({"health": {"ok": False, "status": 503, "problems": ["down"]}}, lg.Thresholds(), ["health"]),
        ({"latency_p95_ms": 20.0}, lg.Thresholds(p95_ms=10), ["latency"]),
    ],
)
def test_evaluate(over, targets, failed):
    checks = lg.evaluate(_figures(**over), targets)
    assert [c["name"] for c in checks] == list(lg.CHECKS)
    assert [c["name"] for c in checks if c["status"] == "failed"] == failed


def test_evaluate_marks_phases_that_did_not_run():
    checks = {
        c["name"]: c for c in lg.evaluate({"health": {"ok": False, "status": None, "problems": ["x"]}}, lg.Thresholds())
    }
    assert checks["health"]["status"] == "failed"
    assert {checks[n]["status"] for n in ("latency", "throughput", "success", "quality", "memory")} == {"not_run"}
    assert not any(checks[n]["passed"] for n in ("latency", "throughput", "success", "quality", "memory"))
