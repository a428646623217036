"""The A/B rule on a shadow report (module_utils._shadow.decide), as a pure function of the report."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._shadow import decide

THRESHOLDS = {"min_windows": 500, "min_cka": 0.9, "min_knn_jaccard": 0.5, "max_p95_factor": 2.0}


def report(**over: Any) -> dict[str, Any]:
    """A conclusive report of a good candidate (the INT8 form of the serving model), then the changes."""
    body: dict[str, Any] = {
        "windows": 800,
        "conclusive": True,
        "min_windows": 500,
        "linear_cka": 0.998,
        "knn_jaccard": 0.67,
        "same_network": True,
        "cosine": {"mean": 0.992, "min": 0.47, "p5": 0.97},
        "inference_ms": {"primary": {"p95": 4.0}, "shadow": {"p95": 6.0}},
        "error_windows": 0,
        "dropped_windows": 0,
        "last_error": None,
    }
    body.update(over)
    return body


def verdict(body: Any, **over: Any) -> dict[str, Any]:
    return decide(body, **{**THRESHOLDS, **over})


def test_a_candidate_that_keeps_the_geometry_is_promoted():
    out = verdict(report())
    assert out["verdict"] == "promote", out
    assert out["figures"]["p95_factor"] == 1.5
    assert any("linear CKA 0.998 >= 0.9" in r for r in out["reasons"])


def test_a_differently_seeded_model_is_discarded_naming_both_figures():
    out = verdict(report(linear_cka=0.55, knn_jaccard=0.24, same_network=False, cosine=None))
    assert out["verdict"] == "discard"
    assert out["reasons"] == ["linear CKA 0.55 < 0.9", "kNN Jaccard 0.24 < 0.5"]


@pytest.mark.parametrize("windows", [0, 10, 499])
def test_too_few_windows_is_inconclusive_and_never_promotes(windows: int):
    out = verdict(report(windows=windows))
    assert out["verdict"] == "inconclusive"
    assert out["reasons"] == [f"{windows} paired windows, fewer than the 500 required"]


def test_the_sidecar_saying_inconclusive_is_inconclusive_whatever_the_count_asked():
    body = report(windows=300, conclusive=False, inconclusive_reason="300 paired windows, fewer than the 500 ...")
    out = verdict(body, min_windows=100)
    assert out["verdict"] == "inconclusive" and out["reasons"] == [body["inconclusive_reason"]]


def test_no_report_is_inconclusive():
    assert verdict(None)["verdict"] == "inconclusive"


@pytest.mark.parametrize("windows", [800, 3])
def test_a_shadow_error_discards_whatever_the_window_count(windows: int):
    out = verdict(report(windows=windows, error_windows=2, last_error="RuntimeError: the shadow returned NaN"))
    assert out["verdict"] == "discard"
    assert out["reasons"] == [
        "the shadow failed on 2 windows (at most 0 allowed): RuntimeError: the shadow returned NaN"
    ]
    assert verdict(report(error_windows=2), max_error_windows=2)["verdict"] == "promote"


@pytest.mark.parametrize(("shadow_p95", "expected"), [(8.0, "promote"), (8.1, "discard"), (2.0, "promote")])
def test_the_candidate_p95_may_be_at_most_the_factor_of_the_serving_one(shadow_p95: float, expected: str):
    body = report(inference_ms={"primary": {"p95": 4.0}, "shadow": {"p95": shadow_p95}})
    out = verdict(body)
    assert out["verdict"] == expected, out
    if expected == "discard":
        assert out["reasons"] == ["shadow p95 8.1 ms is 2.025 x the serving model's 4.0 ms (at most 2.0 x)"]


def test_missing_timings_are_inconclusive():
    out = verdict(report(inference_ms={"primary": None, "shadow": None}))
    assert out["verdict"] == "inconclusive" and out["reasons"] == ["the report has no p95 of both models"]


def test_the_cosine_is_judged_only_for_the_same_network():
    assert verdict(report(), min_cosine=0.995)["verdict"] == "discard"
    other = report(same_network=False, cosine=None)
    assert verdict(other, min_cosine=0.995)["verdict"] == "promote"
    # a cosine in the report of two different networks is never read
    assert verdict(report(same_network=False), min_cosine=0.995)["verdict"] == "promote"


def test_the_thresholds_and_figures_come_back_with_the_verdict():
    out = verdict(report(), min_cosine=0.98)
    assert out["thresholds"] == {**THRESHOLDS, "max_error_windows": 0, "min_cosine": 0.98}
    assert out["figures"]["windows"] == 800 and out["figures"]["cosine_mean"] == 0.992
