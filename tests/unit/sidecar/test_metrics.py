"""The request histogram: fine buckets, every old bound kept, and bisect counting as observe() does."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sidecar.metrics import LATENCY_BUCKETS, REQUEST_BUCKETS, Metrics


def test_request_buckets_are_at_most_11_percent_wide_and_keep_every_old_bound() -> None:
    assert list(REQUEST_BUCKETS) == sorted(set(REQUEST_BUCKETS))
    assert set(LATENCY_BUCKETS) <= set(REQUEST_BUCKETS)
    assert max(b / a for a, b in zip(REQUEST_BUCKETS[:-1], REQUEST_BUCKETS[1:], strict=True) if b <= 1.0) < 1.12


def test_observe_request_counts_into_the_same_buckets_as_prometheus_observe() -> None:
    m = Metrics()
    reference = Histogram("ref", "r", ["route"], buckets=REQUEST_BUCKETS, registry=CollectorRegistry())
    rng = random.Random(1)
    values = [*REQUEST_BUCKETS, 0.0, 3.0, *(b * 1.000001 for b in REQUEST_BUCKETS)]
    values += [10 ** rng.uniform(-5, 1) for _ in range(2000)]
    for v in values:
        m.observe_request("/encode", 200, v)
        reference.labels("/encode").observe(v)
    ours = {
        (s.name.rsplit("_", 1)[-1], tuple(sorted(s.labels.items()))): s.value
        for s in next(iter(m.latency.collect())).samples
    }
    theirs = {
        (s.name.rsplit("_", 1)[-1], tuple(sorted(s.labels.items()))): s.value
        for s in next(iter(reference.collect())).samples
    }
    ours.pop(("created", (("route", "/encode"),)))
    theirs.pop(("created", (("route", "/encode"),)))
    assert ours == theirs
    assert b'le="0.005",route="/encode"' in generate_latest(m.registry)
