"""edgeinfer_load.stats: exact nearest-rank percentiles and the latency summary."""

from __future__ import annotations

import math

import pytest

import edgeinfer_load as lg


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 91, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 100, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0, 1),
        ([7.5], 99, 7.5),
        ([15, 20, 35, 40, 50], 30, 20),  # the textbook nearest-rank example
        ([15, 20, 35, 40, 50], 40, 20),
        ([15, 20, 35, 40, 50], 50, 35),
        # Ranks that floating point lands just above: 99.9 % of 1,000 is rank 999, not the maximum.
        (list(range(1, 1001)), 99.9, 999),
        (list(range(1, 10001)), 99.9, 9990),
        (list(range(1, 101)), 29, 29),
    ],
)
def test_percentile_is_nearest_rank(values, p, expected):
    assert lg.percentile(values, p) == expected


def test_percentile_of_nothing_is_nan_and_out_of_range_refused():
    assert math.isnan(lg.percentile([], 50))
    with pytest.raises(ValueError):
        lg.percentile([1.0], 101)


def test_one_percent_slow_sits_just_past_p99():
    """100 slow samples in 10 000: p99 is the last fast one, p99.1 and up are slow (nothing interpolated)."""
    s = sorted([1.0] * 9900 + [20.0] * 100)
    assert lg.percentile(s, 99) == 1.0
    assert lg.percentile(s, 99.01) == 20.0
    assert lg.summarize(s)["p999_ms"] == 20.0


def test_summarize_keeps_every_sample():
    out = lg.summarize([3.0, 1.0, 2.0, 100.0])
    assert out["count"] == 4 and out["max_ms"] == 100.0 and out["min_ms"] == 1.0
    assert out["mean_ms"] == pytest.approx(26.5)
