"""The sidecar's own account of a load: its request counter and latency histogram on /metrics.

A client's figures include the client; the server's count of the requests it answered, and the
time it spent on each, do not. The benchmarks read both before and after a load (and during it,
for a rate over a steady window) and compare the clients with this third witness.
"""

from __future__ import annotations

import math
import re
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_LE = re.compile(r'le="([^"]+)"')


@dataclass(frozen=True)
class Scrape:
    """One read of /metrics: when (perf_counter), the requests counted and the cumulative histogram."""

    at: float
    requests: float
    buckets: dict[float, float]  # upper bound (s) -> cumulative count, +Inf included


def parse(text: str, route: str) -> tuple[float, dict[float, float]]:
    """``edgeinfer_requests_total`` (all statuses) and ``edgeinfer_request_duration_seconds_bucket`` of ``route``."""
    label = f'route="{route}"'
    requests, buckets = 0.0, {}
    for line in text.splitlines():
        if label not in line:
            continue
        if line.startswith("edgeinfer_requests_total{"):
            requests += float(line.rsplit(" ", 1)[1])
        elif line.startswith("edgeinfer_request_duration_seconds_bucket{"):
            le = _LE.search(line).group(1)  # type: ignore[union-attr]
            buckets[math.inf if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return requests, dict(sorted(buckets.items()))


def scrape(port: int, route: str = "/encode") -> Scrape:
    t = time.perf_counter()
    return Scrape(t, *parse(_metrics(port), route))


def _metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def sums(port: int, route: str = "/encode") -> tuple[float, float, float, float]:
    """The seconds and count of ``route``'s requests (``edgeinfer_request_duration_seconds``) and of
    the backend's calls (``edgeinfer_inference_duration_seconds``), cumulative."""
    names = [
        f"edgeinfer_{kind}_duration_seconds_{part}" for kind in ("request", "inference") for part in ("sum", "count")
    ]
    out = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(_metrics(port)):
        for sample in family.samples:
            if sample.name in out and sample.labels.get("route", route) == route:
                out[sample.name] += sample.value
    return out[names[0]], out[names[1]], out[names[2]], out[names[3]]


def delta(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    """The cumulative histogram of what happened between two scrapes."""
    return {le: after[le] - before.get(le, 0.0) for le in after}


def quantile(buckets: dict[float, float], q: float) -> tuple[float, float, float]:
    """``(estimate, lower bound, upper bound)`` in seconds of quantile ``q`` (0..1) of a cumulative histogram.

    The estimate interpolates linearly within the bucket that holds the quantile, as Prometheus's
    ``histogram_quantile`` does; the true value lies within that bucket's bounds. NaN when empty;
    in the +Inf bucket the estimate is the highest finite bound.
    """
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return math.nan, math.nan, math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank and count > below:
            if math.isinf(le):
                return lower, lower, le
            return lower + (le - lower) * (rank - below) / (count - below), lower, le
        lower, below = le, count
    return math.nan, math.nan, math.nan


def off(value: float, witness: float) -> float:
    """How far ``value`` is from ``witness``, as a signed share of it."""
    return (value - witness) / witness if witness else math.nan
