"""Prometheus metrics of one sidecar process, on a registry of its own."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Request latency: steps of at most 11 % from 0.1 ms to 1 s (the E24 series with 1.4, 1.7, 2.5,
# 5.0, 5.3 and 7.5 added, so that every bound of LATENCY_BUCKETS is kept), then 2.5 s. A median
# read from these by linear interpolation within its bucket (as Prometheus's histogram_quantile
# does) is off by less than that bucket's width: fine enough to check a client's p50 against the
# server's to 10 % (bench/bench_validate.py). bisect keeps the cost of 100 buckets at 7 steps.
_STEPS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 2.0, 2.2, 2.4, 2.5, 2.7, 3.0, 3.3, 3.6, 3.9, 4.3, 4.7, 5.0, 5.3,
          5.6, 6.2, 6.8, 7.5, 8.2, 9.1)  # fmt: skip
REQUEST_BUCKETS = (*(round(m * 10.0**e, 6) for e in range(-4, 0) for m in _STEPS), 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Why the server closed a connection (sidecar/server.py).
CLOSE_REASONS = ("max_connections", "header_timeout", "body_timeout", "header_too_large")


class ShadowMetrics:
    """The shadow model's counters and the last A/B report's figures (sidecar/shadow.py)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.loaded = Gauge("edgeinfer_shadow_loaded", "1 while a shadow model runs beside the serving one", registry=r)
        self.info = Gauge(
            "edgeinfer_shadow_info",
            "The shadow model (value 1)",
            ["model_version", "model_sha256", "backend", "served_file"],
            registry=r,
        )
        self.mirrored = Counter(
            "edgeinfer_shadow_mirrored_windows", "Windows queued for the shadow (after sampling)", registry=r
        )
        self.dropped = Counter(
            "edgeinfer_shadow_dropped_windows",
            "Windows sampled for the shadow but dropped: its queue was full",
            registry=r,
        )
        self.errors = Counter(
            "edgeinfer_shadow_error_windows",
            "Windows the shadow failed on (an exception, or NaN/Infinity in its answer)",
            registry=r,
        )
        self.inference = Histogram(
            "edgeinfer_shadow_inference_duration_seconds",
            "Shadow backend time per call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.windows = Gauge("edgeinfer_shadow_report_windows", "Paired windows in the last A/B report", registry=r)
        self.conclusive = Gauge(
            "edgeinfer_shadow_report_conclusive",
            "1 when the last A/B report had EDGEINFER_SHADOW_MIN_WINDOWS",
            registry=r,
        )
        self.cka = Gauge(
            "edgeinfer_shadow_linear_cka", "Linear CKA of serving and shadow embeddings (NaN: none)", registry=r
        )
        self.knn = Gauge(
            "edgeinfer_shadow_knn_jaccard",
            "Mean Jaccard of the k nearest neighbours in both spaces (NaN: none)",
            registry=r,
        )
        self.motif = Gauge(
            "edgeinfer_shadow_motif_agreement",
            "Share of windows given the same motif by both models (NaN: not both ship the same prototypes count)",
            registry=r,
        )
        self.cosine = Gauge(
            "edgeinfer_shadow_cosine_mean",
            "Mean cosine of serving and shadow embeddings, same network only (NaN otherwise)",
            registry=r,
        )


class CaptureMetrics:
    """The traffic capture's reservoir (sidecar/capture.py); all 0 while capture is off."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.size = Gauge(
            "edgeinfer_capture_size", "Windows the capture reservoir holds at most (0: capture off)", registry=r
        )
        self.seen = Counter(
            "edgeinfer_capture_seen_windows",
            "Windows answered by /encode and /infer and offered to the capture",
            registry=r,
        )
        self.kept = Gauge("edgeinfer_capture_kept_windows", "Windows in the capture reservoir now", registry=r)


class RequestMetrics:
    """``edgeinfer_requests_total`` and ``edgeinfer_request_duration_seconds``: counted in plain
    dicts on the event loop, read by ``collect`` at a scrape (a custom collector); and the count
    of requests being served, which the ``edgeinfer_in_flight_requests`` gauge reads there.

    prometheus_client's Counter and Histogram take a lock on each update (three a request) and
    find the bucket by a linear scan; every request is counted on the event loop, and a scrape is
    served there too, so nothing else ever reads or writes these between two of its steps."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}  # per route, one count per bound and +Inf
        self.sums: dict[str, float] = {}
        self.in_flight = 0
        r.register(self)

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        counts = self.buckets.get(route)
        if counts is None:
            counts = self.buckets[route] = [0] * (len(REQUEST_BUCKETS) + 1)
            self.sums[route] = 0.0
        counts[bisect_left(REQUEST_BUCKETS, seconds)] += 1  # the first bound >= seconds, as le means
        self.sums[route] += seconds

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("edgeinfer_requests", "HTTP requests by route and status", labels=["route", "status"])
        yield HistogramMetricFamily("edgeinfer_request_duration_seconds", "Request latency by route", labels=["route"])

    def collect(self) -> Iterator[Metric]:
        requests, latency = self.describe()
        # Each dict copied in one step first: a scrape from another thread never meets one growing.
        for (route, status), n in list(self.counts.items()):
            requests.add_metric([route, str(status)], n)
        bounds = [*(floatToGoString(b) for b in REQUEST_BUCKETS), "+Inf"]
        for route, counts in list(self.buckets.items()):
            latency.add_metric([route], list(zip(bounds, accumulate(counts), strict=True)), self.sums[route])
        yield requests
        yield latency


class Metrics:
    """Every metric of the process, registered in the order ``/metrics`` lists them."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # process_resident_memory_bytes & co: the process's own memory, CPU and descriptors.
        ProcessCollector(registry=r)
        self._add_request_metrics(r)
        self._add_model_metrics(r)
        self.connections_closed = Counter(
            "edgeinfer_connections_closed",
            "Connections the server closed at a limit (max_connections, header_timeout, body_timeout, header_too_large)",
            ["reason"],
            registry=r,
        )
        for reason in CLOSE_REASONS:
            self.connections_closed.labels(reason)

        self.shadow = ShadowMetrics(r)
        self.capture = CaptureMetrics(r)

    def _add_request_metrics(self, r: CollectorRegistry) -> None:
        """What each request and each backend call cost."""
        self.requests = RequestMetrics(r)
        self.inference = Histogram(
            "edgeinfer_inference_duration_seconds",
            "Backend time per batch",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "edgeinfer_batch_size", "Windows per backend call", buckets=BATCH_BUCKETS, registry=r
        )
        self.in_flight = Gauge("edgeinfer_in_flight_requests", "Requests being served", registry=r)
        self.in_flight.set_function(lambda: self.requests.in_flight)

    def _add_model_metrics(self, r: CollectorRegistry) -> None:
        """Which model serves, on which backend, and how its reloads and answers went."""
        self.model_info = Gauge(
            "edgeinfer_model_info",
            "The model now serving (value 1); backend_reason says why that backend serves: configured, "
            "auto_hailo, auto_no_device, auto_no_hailort, auto_no_hef, hailo_fallback_load or "
            "hailo_fallback_run_time; hailo_status is the HailoRT status of a fallback, empty when none",
            ["model_version", "model_sha256", "backend", "embedding_stamp", "backend_reason", "hailo_status"],
            registry=r,
        )
        self.model_loaded = Gauge("edgeinfer_model_loaded", "1 while a self-checked model serves", registry=r)
        self.reloads = Counter("edgeinfer_reloads", "Reload attempts (startup load included)", registry=r)
        self.reload_failures = Counter(
            "edgeinfer_reload_failures", "Reloads that left the previous model serving", registry=r
        )
        self.hailo_fallback = Gauge(
            "edgeinfer_hailo_fallback", "1 when the Hailo backend fell back to the CPU", registry=r
        )
        self.serving_last_good = Gauge(
            "edgeinfer_serving_last_good",
            "1 when the last good release serves because the current one failed to load or self-check",
            registry=r,
        )
        self.non_finite_outputs = Counter(
            "edgeinfer_non_finite_outputs",
            "Requests answered 500 because the model returned NaN or Infinity for them",
            registry=r,
        )

    def set_model(
        self,
        version: str,
        sha256: str,
        backend: str,
        stamp: str,
        fallback: bool,
        last_good: bool = False,
        reason: str = "configured",
        fallback_status: int | None = None,
    ) -> None:
        self.model_info.clear()
        status = "" if fallback_status is None else str(fallback_status)
        self.model_info.labels(version, sha256, backend, stamp, reason, status).set(1)
        self.model_loaded.set(1)
        self.hailo_fallback.set(1 if fallback else 0)
        self.serving_last_good.set(1 if last_good else 0)
