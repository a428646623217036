"""The verdicts of the sidecar benchmark's report (bench/sidecar_report.py), from recorded figures."""

from __future__ import annotations

import copy

import pytest

from bench.sidecar_report import NO_MODEL, report


def _served(p99: float, rate: float = 250, failed: int = 0) -> dict[str, float]:
    return {"rate": rate, "n": 2500, "failed": failed, "p50_ms": 2.0, "p99_ms": p99, "max_ms": p99 * 2,
            "served_within_5ms": 0.99, "served_p50_ms": 1.5, "served_p99_ms": p99 / 2}  # fmt: skip


def _pair(ratio: float) -> dict[str, object]:
    server = {"rps": 700.0 * ratio, "requests": 5000, "p50_ms": 20.0, "p99_ms": 30.0, "non2xx": 0, "socket_errors": ""}
    return {"pairs": [{"limit": 700.0, "server": server, "ratio": ratio}], "median_ratio": ratio}


def _wrk(p50: float) -> dict[str, object]:
    return {"rps": 1000 / p50, "requests": 3000, "p50_ms": p50, "p99_ms": 3 * p50, "non2xx": 0, "socket_errors": ""}


# One inference takes 2 ms on the server's core (500/s at batch 1): the p99 target is 12 ms at
# 60 req/s, the lone round trip's 2.3 ms.
RESULTS = {
    "ort": {"batch 1, 1 thread": 500.0, "batch 32, 1 thread": 600.0, "batch 32, 2 threads": 1100.0},
    "sidecar_host": {"peak_rss_mib": 112.0},
    "constant_250": {
        "pinned": True,
        "instrument floor (no model)": {
            "rate": 250,
            "n": 2500,
            "failed": 0,
            "p50_ms": 0.5,
            "p99_ms": 1.0,
            "max_ms": 2.0,
        },  # fmt: skip
        "host json": _served(40.0),
        "host binary": _served(60.0),
    },
    "share": {
        "host": {
            "rate": 60.0,
            "json": _served(11.9, rate=60),
            "binary": _served(12.1, rate=60),
            "batch1_before_after": [500.0, 500.0],
            "batch1": 500.0,
            "inference_ms": 2.0,
        }
    },
    "lone": {"host": {"binary": _wrk(2.29), "json": _wrk(2.31)}},
    "one_core": {"host": {"binary": _pair(0.86), "json": _pair(0.79), "infer": _pair(0.80)}},
}


def verdicts(results: dict) -> dict[str, str]:
    rows = [line for line in report(results).splitlines() if line.startswith("| ") and "**" in line]
    return {row.split(" | ")[0][2:]: row.rsplit("**", 2)[1] for row in rows}


def _one(v: dict[str, str], *words: str) -> str:
    (key,) = [k for k in v if all(w in k for w in words)]
    return v[key]


def test_latency_targets_are_judged_against_one_inference_on_the_servers_core() -> None:
    v = verdicts(RESULTS)
    assert _one(v, "host json: p99 at a constant 60 req/s") == "PASS"  # 11.9 <= 6 x 2 ms
    assert _one(v, "host binary: p99 at a constant 60 req/s") == "FAIL"  # 12.1 > 12
    assert _one(v, "host binary: a lone request") == "PASS"  # 2.29 <= 2 + 0.3
    assert _one(v, "host json: a lone request") == "FAIL"
    text = report(RESULTS)
    assert "<= 6 x 2.00 ms (one inference) = 12.00 ms" in text
    assert "INCONCLUSIVE" not in text


def test_a_lone_round_trip_with_its_own_inference_pairs_is_judged_against_them() -> None:
    # The constant-load rows' inference is 2 ms; the lone pair's own bracket measured 1.8 ms, so
    # 2.29 ms is over 1.8 + 0.3 although it is under 2 + 0.3.
    r = copy.deepcopy(RESULTS)
    r["lone"]["host"]["binary"] = {**_wrk(2.29), "inference_ms": 1.8, "margins_ms": [0.41, 0.49, 0.52]}
    v = verdicts(r)
    assert _one(v, "host binary: a lone request") == "FAIL"
    text = report(r)
    assert "median of 3 pairs" in text
    assert "<= 1.80 ms (one inference) + 0.3 ms = 2.10 ms" in text
    assert "| 1.800 | 0.410 / 0.490 / 0.520 |" in text


def test_the_no_model_server_s_lone_round_trip_is_shown_first_and_judged_nowhere() -> None:
    r = copy.deepcopy(RESULTS)
    r["lone"] = {NO_MODEL: {"binary": _wrk(0.16), "json": _wrk(0.17)}, **r["lone"]}
    text = report(r)
    lone_rows = [line for line in text.splitlines() if line.startswith("| ") and "/encode |" in line]
    assert lone_rows[0].startswith(f"| {NO_MODEL} | binary /encode | 6,250 | 0.16 |"), lone_rows
    assert verdicts(r) == verdicts(RESULTS)  # information, no target of its own


def test_a_request_that_failed_at_the_constant_load_fails_the_target() -> None:
    r = copy.deepcopy(RESULTS)
    r["share"]["host"]["json"] = _served(5.0, rate=60, failed=1)
    assert _one(verdicts(r), "host json: p99 at a constant 60 req/s") == "FAIL"


@pytest.mark.parametrize(("kind", "ratio", "verdict"), [("binary", 0.86, "PASS"), ("json", 0.79, "FAIL"),
                                                        ("infer", 0.80, "PASS")])  # fmt: skip
def test_throughput_is_a_share_of_onnx_runtime_batched_on_the_same_core(kind: str, ratio: float, verdict: str) -> None:
    v = verdicts(RESULTS)
    assert _one(v, f"host: {kind} /", "at 16 connections") == verdict


def test_the_absolute_250_req_s_rows_are_information_only() -> None:
    v = verdicts(RESULTS)
    assert _one(v, "host binary: p99 at a constant 250 req/s") == "n/a"  # 60 ms, no verdict
    assert v["host: peak RSS under load, MiB"] == "PASS"


def test_the_ratio_by_cpu_time_is_a_cross_check_and_a_disagreement_is_called_out() -> None:
    r = copy.deepcopy(RESULTS)
    for pair in r["one_core"]["host"]["binary"]["pairs"]:
        pair["cpu_ratio"] = 0.84
    r["one_core"]["host"]["binary"]["median_ratio"] = 1.2
    v = verdicts(r)
    assert _one(v, "host: binary /", "at 16 connections") == "PASS"
    assert _one(v, "host: binary /encode, the same pairs by CPU time") == "FAIL"
    assert "the CPU-time figure is the one to trust in this run" in report(r)
