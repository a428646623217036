"""The third witness's arithmetic (bench/witness.py) and the instrument's verdicts against it."""

from __future__ import annotations

import math

import pytest

from bench import witness
from bench.validate_report import witness_verdicts

METRICS = """\
# HELP edgeinfer_requests_total HTTP requests by route and status
edgeinfer_requests_total{route="/encode",status="200"} 90.0
edgeinfer_requests_total{route="/encode",status="422"} 10.0
edgeinfer_requests_total{route="/healthz",status="200"} 3.0
edgeinfer_request_duration_seconds_bucket{le="0.001",route="/encode"} 10.0
edgeinfer_request_duration_seconds_bucket{le="0.002",route="/encode"} 60.0
edgeinfer_request_duration_seconds_bucket{le="+Inf",route="/encode"} 100.0
edgeinfer_request_duration_seconds_bucket{le="0.001",route="/healthz"} 3.0
edgeinfer_request_duration_seconds_bucket{le="+Inf",route="/healthz"} 3.0
"""


def test_a_scrape_counts_every_status_of_the_route_and_reads_its_histogram_only() -> None:
    requests, buckets = witness.parse(METRICS, "/encode")
    assert requests == 100.0
    assert buckets == {0.001: 10.0, 0.002: 60.0, math.inf: 100.0}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, (0.0005, 0.0, 0.001)),  # 5 of the first 10, spread over 0..1 ms
        (0.5, (0.0018, 0.001, 0.002)),  # rank 50: 40 of the 50 in the 1..2 ms bucket
        (0.99, (0.002, 0.002, math.inf)),  # beyond the last finite bound: that bound
    ],
)
def test_a_quantile_interpolates_within_the_bucket_that_holds_it_and_names_its_bounds(
    q: float, expected: tuple[float, float, float]
) -> None:
    _requests, buckets = witness.parse(METRICS, "/encode")
    assert witness.quantile(buckets, q) == pytest.approx(expected)


def test_a_quantile_skips_empty_buckets_and_an_empty_histogram_is_nan() -> None:
    assert witness.quantile({0.001: 0.0, 0.002: 0.0, 0.003: 4.0, math.inf: 4.0}, 0.5) == pytest.approx(
        (0.0025, 0.002, 0.003)
    )
    assert all(math.isnan(v) for v in witness.quantile({0.001: 0.0, math.inf: 0.0}, 0.5))


def test_a_delta_is_what_happened_between_two_scrapes() -> None:
    before = {0.001: 5.0, math.inf: 7.0}
    after = {0.001: 9.0, math.inf: 20.0}
    assert witness.delta(before, after) == {0.001: 4.0, math.inf: 13.0}
    assert witness.off(105.0, 100.0) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("rps", "p50", "verdicts"),
    [
        (0.049, -0.099, {"rps": True, "p50_ms": True}),
        (-0.051, 0.05, {"rps": False, "p50_ms": True}),
        (0.0, 0.101, {"rps": True, "p50_ms": False}),
    ],
)
def test_the_engine_passes_within_5_percent_of_the_witness_on_req_s_and_10_on_p50(
    rps: float, p50: float, verdicts: dict[str, bool]
) -> None:
    assert witness_verdicts({"rps": rps, "p50_ms": p50, "p99_ms": 1.0}) == verdicts
