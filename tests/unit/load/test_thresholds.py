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
        # the open loop sent under 99 % of its schedule: its latency is not one at the asked rate
        ({"delivery": {"rate": 250.0, "intended": 1000, "unsent": 11}}, lg.Thresholds(), ["latency"]),
        ({"delivery": {"rate": 250.0, "intended": 1000, "unsent": 10}}, lg.Thresholds(), []),
        ({"delivery": {"rate": 250.0, "intended": 1000, "unsent": 0}}, lg.Thresholds(), []),
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


def test_a_load_not_delivered_says_at_what_rate_the_server_was_tested():
    figures = _figures(delivery={"rate": 250.0, "intended": 1000, "unsent": 200}, success_rate=1.0)
    checks = {c["name"]: c for c in lg.evaluate(figures, lg.Thresholds())}
    assert checks["success"]["status"] == "passed"  # the 200 never reached the server
    latency = checks["latency"]
    assert latency["status"] == "failed" and latency["value"] == 10.0
    assert "load not delivered as asked" in latency["detail"] and "800 of 1000" in latency["detail"]
    assert "200.0 req/s instead of 250" in latency["detail"]


def test_the_memory_check_names_the_container_it_measured():
    memory = {"measured": True, "memory_peak_mb": 200.0, "samples": 5, "reason": "", "container": "edge-sidecar"}
    check = lg.evaluate(_figures(memory=memory), lg.Thresholds())[-1]
    assert check["status"] == "passed" and check["detail"].endswith("of container edge-sidecar")
