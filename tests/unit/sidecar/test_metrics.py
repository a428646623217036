"""The request metrics: fine buckets, every old bound kept, and the plain counts collected as
prometheus_client's Counter and Histogram would report them."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric

from sidecar.metrics import LATENCY_BUCKETS, REQUEST_BUCKETS, Metrics


def test_request_buckets_are_at_most_11_percent_wide_and_keep_every_old_bound() -> None:
    assert list(REQUEST_BUCKETS) == sorted(set(REQUEST_BUCKETS))
    assert set(LATENCY_BUCKETS) <= set(REQUEST_BUCKETS)
    assert max(b / a for a, b in zip(REQUEST_BUCKETS[:-1], REQUEST_BUCKETS[1:], strict=True) if b <= 1.0) < 1.12


def test_observe_request_counts_into_the_same_buckets_as_prometheus_observe() -> None:
    m = Metrics()
    reference = Histogram("ref", "r", ["route"], buckets=REQUEST_BUCKETS, registry=CollectorRegistry())
    counter = Counter("ref", "r", ["route", "status"], registry=CollectorRegistry())
    rng = random.Random(1)
    values = [*REQUEST_BUCKETS, 0.0, 3.0, *(b * 1.000001 for b in REQUEST_BUCKETS)]
    values += [10 ** rng.uniform(-5, 1) for _ in range(2000)]
    for i, v in enumerate(values):
        status = 200 if i % 3 else 422
        m.requests.observe("/encode", status, v)
        reference.labels("/encode").observe(v)
        counter.labels("/encode", str(status)).inc()
    requests, latency = m.requests.collect()

    def samples(metric: Metric) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = {(s.name.rsplit("_", 1)[-1], tuple(sorted(s.labels.items()))): s.value for s in metric.samples}
        return {k: v for k, v in out.items() if k[0] != "created"}

    assert samples(latency) == samples(next(iter(reference.collect())))
    assert samples(requests) == samples(next(iter(counter.collect())))
    text = generate_latest(m.registry)
    assert b'edgeinfer_request_duration_seconds_bucket{le="0.005",route="/encode"}' in text
    assert b'edgeinfer_requests_total{route="/encode",status="422"} %d.0' % len(values[::3]) in text
