"""The verdicts of the sidecar benchmark's report (bench/bench_sidecar.py), from recorded figures."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_sidecar  # noqa: E402


def _served(p99: float, within: float, rate: float = 250) -> dict[str, float]:
    return {"rate": rate, "n": 2500, "failed": 0, "p50_ms": 2.0, "p99_ms": p99, "max_ms": p99 * 2,
            "served_within_5ms": within, "served_p99_bucket_ms": 5.0}  # fmt: skip


def _pair(ratio: float) -> dict[str, object]:
    server = {"rps": 700.0 * ratio, "requests": 5000, "p50_ms": 20.0, "p99_ms": 30.0, "non2xx": 0, "socket_errors": ""}
    return {"pairs": [{"limit": 700.0, "server": server, "ratio": ratio}], "median_ratio": ratio}


RESULTS = {
    "ort": {"batch 1, 1 thread": 2000.0, "batch 32, 1 thread": 2100.0, "batch 32, 2 threads": 4000.0},
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
        },
        "host json": _served(4.0, 0.995),
        "host binary": _served(9.0, 0.97),
    },
    "one_core": {"host": {"binary": _pair(0.8), "json": _pair(0.7)}},
}


def verdicts(results: dict) -> dict[str, str]:
    rows = [line for line in bench_sidecar.report(results).splitlines() if line.startswith("| ") and "**" in line]
    return {row.split(" | ")[0][2:]: row.rsplit("**", 2)[1] for row in rows}


def test_a_latency_miss_on_a_machine_at_the_reference_speed_fails() -> None:
    v = verdicts(RESULTS)
    assert v["host binary: p99 at a constant 250 req/s, ms (client side)"] == "FAIL"
    assert v["host json: p99 at a constant 250 req/s, ms (client side)"] == "PASS"
    assert v["host: binary /encode at 16 connections on one core, as a share of ONNX Runtime batch 32 "
             "on that core (median of 3 back-to-back pairs)"] == "PASS"  # fmt: skip
    assert "INCONCLUSIVE" not in bench_sidecar.report(RESULTS)


@pytest.mark.parametrize("why", ["slow machine", "noisy floor"])
def test_a_latency_miss_is_inconclusive_on_a_slow_or_noisy_machine_and_a_pass_stays_a_pass(why: str) -> None:
    r = copy.deepcopy(RESULTS)
    if why == "slow machine":
        r["ort"]["batch 1, 1 thread"] = 0.5 * bench_sidecar.REFERENCE_ORT_BATCH1
        r["constant_250"]["host binary, scaled"] = _served(12.0, 0.9, rate=125)
    else:
        r["constant_250"]["instrument floor (no model)"]["p99_ms"] = bench_sidecar.FLOOR_LIMIT_MS + 1
    v = verdicts(r)
    assert v["host binary: p99 at a constant 250 req/s, ms (client side)"] == "INCONCLUSIVE"
    assert v["host json: p99 at a constant 250 req/s, ms (client side)"] == "PASS"
    # Throughput and memory do not depend on the machine's speed: their verdicts stand.
    assert v["host: peak RSS under load, MiB"] == "PASS"
    text = bench_sidecar.report(r)
    if why == "slow machine":
        assert "0.50 x the 2,100/s" in text
        assert v["host binary, scaled: p99 at 125 req/s (250 x this machine's speed), ms (client side)"] == "n/a"
