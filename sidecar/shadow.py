"""A candidate model in shadow: a staged release run beside the serving one on a share of live windows.

The serving model answers first; the mirror then samples the request's windows and queues them
for the shadow's own thread without waiting. The queue is bounded in windows: when it is full,
the windows are dropped and counted, never queued without bound. What the shadow answers is
never sent: it is paired with the serving model's answer for the A/B report (compare.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .compare import compare, per_window
from .config import BACKENDS, ONNX_CHOICES, Settings
from .inputs import InputError
from .metrics import ShadowMetrics
from .model import Model
from .release import load_release

if TYPE_CHECKING:
    from .backends import HailoDevice
    from .batcher import Result

log = logging.getLogger("sidecar.shadow")

# Timings kept for the report's inference-time figures (the latest calls).
TIMINGS_KEPT = 1000


@dataclass(frozen=True)
class ShadowRequest:
    """A validated ``POST /admin/shadow`` body."""

    release: Path
    onnx_file: str
    backend: str


def parse_request(obj: Any, settings: Settings) -> ShadowRequest:
    """``{"release": <dir under EDGEINFER_SHADOW_ROOT>, "onnx_file"?: ..., "backend"?: ...}``; InputError names the field."""
    root = Path(os.path.realpath(settings.shadow_root))
    expected = f"a staged release directory under EDGEINFER_SHADOW_ROOT ({root}), e.g. releases/<name>"
    if not isinstance(obj, dict):
        raise InputError("body", 'a JSON object such as {"release": "releases/<name>"}', type(obj).__name__)
    unknown = sorted(set(obj) - {"release", "onnx_file", "backend"})
    if unknown:
        raise InputError(unknown[0], "only the fields release, onnx_file and backend", "an unknown field")
    given = obj.get("release")
    if not isinstance(given, str) or not given.strip():
        raise InputError("release", expected, "missing" if given is None else repr(given)[:40])
    shown = repr(given) if len(given) <= 80 else repr(given[:77] + "...")
    if "\0" in given:
        raise InputError("release", expected, f"{shown}: a NUL character")
    path = Path(given)
    real = Path(os.path.realpath(path if path.is_absolute() else root / path))
    if real == root or not real.is_relative_to(root):
        raise InputError("release", expected, f"{shown}, which resolves to {real}")
    try:
        is_dir = real.is_dir()
    except OSError as exc:  # a name over NAME_MAX or PATH_MAX: is_dir lets ENAMETOOLONG through
        raise InputError("release", expected, f"{shown}: {exc.strerror}") from None
    if not is_dir:
        raise InputError("release", expected, f"{shown}: no such directory")
    onnx_file = obj.get("onnx_file", "auto")
    if onnx_file not in ONNX_CHOICES:
        raise InputError("onnx_file", f"one of {', '.join(ONNX_CHOICES)}", repr(onnx_file)[:40])
    backend = obj.get("backend", "onnxruntime")
    if backend not in BACKENDS:
        raise InputError("backend", f"one of {', '.join(BACKENDS)}", repr(backend)[:40])
    return ShadowRequest(real, onnx_file, backend)


def load_shadow(settings: Settings, hailo: HailoDevice | None, request: ShadowRequest) -> Model:
    """Load and self-check the release as the serving one is (release.load_release): ReleaseError says why not.

    One ONNX Runtime thread: the shadow must leave the cores to the serving model.
    """
    shadow_settings = dataclasses.replace(
        settings,
        model_dir=request.release,
        last_good_dir=None,
        onnx_file=request.onnx_file,
        backend=request.backend,
        model_version=None,  # EDGEINFER_MODEL_VERSION names the serving model, not this one
        threads=1,
    )
    return load_release(shadow_settings, hailo)


@dataclass
class _Item:
    primary: Model
    windows: np.ndarray
    normalized: bool
    embeddings: np.ndarray
    primary_ms: float


def _ms(values: deque[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.fromiter(values, dtype=np.float64)
    return {
        "mean": round(float(a.mean()), 3),
        "p50": round(float(np.median(a)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
    }


class Shadow:
    """The shadow model, its bounded queue and its worker thread, and the paired embeddings."""

    def __init__(self, model: Model, settings: Settings, metrics: ShadowMetrics) -> None:
        self.model = model
        self.share = settings.shadow_share
        self.queue_bound = settings.shadow_queue_windows
        self.max_batch = settings.max_batch
        self.capacity = settings.shadow_max_windows
        self.min_windows = settings.shadow_min_windows
        self.k = settings.shadow_knn_k
        self.metrics = metrics
        self._rng = np.random.default_rng()
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()
        self._queued = 0  # windows in _items
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
        # Below: written under _cond, by the event loop (mirrored, dropped) or the worker, read by report().
        self.mirrored = self.dropped = self.errors = self.paired_total = 0
        self.last_error: str | None = None
        self._primary: Model | None = None
        self._primary_changes = 0
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._filled = self._next = 0
        self._primary_ms: deque[float] = deque(maxlen=TIMINGS_KEPT)
        self._shadow_ms: deque[float] = deque(maxlen=TIMINGS_KEPT)
        self._shadow_call_windows: deque[float] = deque(maxlen=TIMINGS_KEPT)
        self._version = 0  # bumped with every pair recorded: a report of the same version is reused
        self._report: tuple[int, float, dict[str, Any]] | None = None

    def start(self) -> None:
        self._thread.start()

    def publish_info(self) -> None:
        m = self.model
        self.metrics.info.clear()
        self.metrics.info.labels(m.version, m.sha256, m.backend_name, m.served_file).set(1)
        self.metrics.loaded.set(1)

    def close(self) -> None:
        """Stop the worker (after the call it is in) and close the backend; blocks, so not on the event loop."""
        with self._cond:
            self._stopping = True
            self._items.clear()
            self._queued = 0
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.model.backend.close()
        self.metrics.loaded.set(0)
        self.metrics.info.clear()

    # The event loop's side: sample and queue, never wait.
    def mirror(self, windows: np.ndarray, normalized: bool, result: Result) -> None:
        """Queue a share of a request's windows for the shadow; never raises, never blocks on the shadow."""
        try:
            n = windows.shape[0]
            embeddings = result.embeddings
            if self.share < 1.0:
                if n == 1:
                    if random.random() >= self.share:
                        return
                else:
                    keep = self._rng.random(n) < self.share
                    if not keep.any():
                        return
                    windows, embeddings = windows[keep], embeddings[keep]
            count = windows.shape[0]
            with self._cond:
                if self._stopping:
                    return
                if self._queued + count > self.queue_bound:
                    self.dropped += count
                    self.metrics.dropped.inc(count)
                    return
                self._items.append(_Item(result.model, windows, normalized, embeddings, result.inference_ms))
                self._queued += count
                self.mirrored += count
                self._cond.notify()
            self.metrics.mirrored.inc(count)
        except Exception:  # the serving model's answer is already made: nothing here may touch it
            log.exception("mirroring to the shadow failed")

    # The worker thread's side.
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                batch = [self._items.popleft()]
                count = batch[0].windows.shape[0]
                while (
                    self._items
                    and self._items[0].primary is batch[0].primary
                    and count + self._items[0].windows.shape[0] <= self.max_batch
                ):
                    batch.append(self._items.popleft())
                    count += batch[-1].windows.shape[0]
                self._queued -= count
            self._run(batch, count)

    def shadow_input(self, primary: Model, windows: np.ndarray, normalized: bool) -> np.ndarray:
        """The serving model's windows (its channel order, raw or its normalization) as the shadow takes them."""
        s = self.model
        if primary.normalization_hash == s.normalization_hash:  # same mean, std and channel order
            return windows if normalized else s.normalize(windows)
        raw = windows * primary.std + primary.mean if normalized else windows
        if s.channel_order != primary.channel_order:
            raw = raw[:, :, [primary.channel_order.index(c) for c in s.channel_order]]
        return s.normalize(raw)

    def _run(self, batch: list[_Item], count: int) -> None:
        try:
            parts = [self.shadow_input(it.primary, it.windows, it.normalized) for it in batch]
            x = parts[0] if len(parts) == 1 else np.concatenate(parts)
            t0 = time.perf_counter()
            y = self.model.backend.run(x)
            seconds = time.perf_counter() - t0
            if y.shape[0] != count:
                raise RuntimeError(f"the shadow returned {y.shape[0]} embeddings for {count} windows")
            if not np.isfinite(y).all():
                raise RuntimeError("the shadow returned NaN or Infinity")
        except Exception as exc:
            self._fail(count, f"{type(exc).__name__}: {exc}")
            return
        self.metrics.inference.observe(seconds)
        primary = batch[0].primary
        x_primary = np.concatenate([it.embeddings for it in batch]) if len(batch) > 1 else batch[0].embeddings
        with self._cond:
            if primary is not self._primary:  # a reload swapped the serving model: pairs of one model only
                if self._primary is not None:
                    self._primary_changes += 1
                self._primary, self._x, self._y = primary, None, None
                self._filled = self._next = 0
            self._record(x_primary, y)
            self._primary_ms.extend(it.primary_ms for it in batch)
            self._shadow_ms.append(seconds * 1000)
            self._shadow_call_windows.append(count)

    def _record(self, x: np.ndarray, y: np.ndarray) -> None:
        if self._x is None or self._y is None:
            self._x = np.empty((self.capacity, x.shape[1]), np.float32)
            self._y = np.empty((self.capacity, y.shape[1]), np.float32)
        for i in range(x.shape[0]):  # a ring: the latest `capacity` pairs
            self._x[self._next], self._y[self._next] = x[i], y[i]
            self._next = (self._next + 1) % self.capacity
        self._filled = min(self._filled + x.shape[0], self.capacity)
        self.paired_total += x.shape[0]
        self._version += 1

    def _fail(self, count: int, why: str) -> None:
        with self._cond:
            first = self.last_error is None
            self.errors += count
            self.last_error = why
        self.metrics.errors.inc(count)
        if first:  # once per shadow: edgeinfer_shadow_error_windows_total counts the rest
            log.error("the shadow %s failed on %d window(s): %s", self.model.version, count, why)

    # The report.
    def report(self, max_age_s: float = 0.0) -> dict[str, Any]:
        """The A/B report over the paired windows; reused while no pair came or it is under ``max_age_s`` old."""
        with self._cond:
            cached = self._report
            if cached is not None and (cached[0] == self._version or time.monotonic() - cached[1] < max_age_s):
                return {**cached[2], **self._counters()}
            version, primary, n = self._version, self._primary, self._filled
            x = self._x[:n].copy() if self._x is not None else np.empty((0, 0), np.float32)
            y = self._y[:n].copy() if self._y is not None else np.empty((0, 0), np.float32)
            timings = {
                "primary": _ms(self._primary_ms),
                "shadow": _ms(self._shadow_ms),
                "shadow_windows_per_call": round(float(np.mean(self._shadow_call_windows)), 2)
                if self._shadow_call_windows
                else None,
            }
            primary_changes = self._primary_changes
            counters = self._counters()  # of the same moment as the pairs
        same = primary is not None and primary.sha256 == self.model.sha256
        figures = compare(
            x,
            y,
            self.k,
            same_network=same,
            protos_x=primary.motif_prototypes if primary is not None else None,
            protos_y=self.model.motif_prototypes,
        )
        body: dict[str, Any] = {
            "conclusive": n >= self.min_windows,
            "min_windows": self.min_windows,
            **figures,
            "inference_ms": timings,
            "same_network": same,
            "shadow": self._describe(self.model),
            "primary": self._describe(primary) if primary is not None else None,
            "primary_changes": primary_changes,
        }
        if n < self.min_windows:
            body["inconclusive_reason"] = (
                f"{n} paired windows, fewer than the {self.min_windows} of EDGEINFER_SHADOW_MIN_WINDOWS: "
                "linear CKA is biased upward on few windows, and kNN overlap is noisy"
            )
        if not same and primary is not None:
            body["cosine_note"] = (
                "not reported: the two releases' model.onnx differ, so their latent spaces have different bases"
            )
        with self._cond:
            self._report = (version, time.monotonic(), body)
        self._publish(body)
        return {**body, **counters}

    def per_window(self) -> dict[str, Any]:
        """The per-window agreement of the pairs held, oldest first, bounded (compare.per_window); on request only."""
        with self._cond:
            primary, n = self._primary, self._filled
            if self._x is None or self._y is None or n == 0:
                x = y = np.empty((0, 0), np.float32)
            else:  # the ring in the order the pairs came: from the oldest (at _next once it is full)
                order = np.arange(n) if n < self.capacity else np.roll(np.arange(n), -self._next)
                x, y = self._x[order], self._y[order]
        same = primary is not None and primary.sha256 == self.model.sha256
        return per_window(x, y, self.k, same_network=same)

    def _counters(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "mirrored_windows": self.mirrored,
            "paired_windows_total": self.paired_total,
            "dropped_windows": self.dropped,
            "error_windows": self.errors,
            "last_error": self.last_error,
            "queued_windows": self._queued,
            "queue_bound": self.queue_bound,
        }

    @staticmethod
    def _describe(m: Model) -> dict[str, Any]:
        return {
            "model_version": m.version,
            "model_sha256": m.sha256,
            "model_dir": str(m.directory),
            "served_file": m.served_file,
            "backend": m.backend_name,
            "embedding_stamp": m.stamp["stamp"],
        }

    def _publish(self, body: dict[str, Any]) -> None:
        m = self.metrics
        nan = float("nan")
        m.windows.set(body["windows"])
        m.conclusive.set(1 if body["conclusive"] else 0)
        m.cka.set(nan if body["linear_cka"] is None else body["linear_cka"])
        m.knn.set(nan if body["knn_jaccard"] is None else body["knn_jaccard"])
        motif = body["motif_agreement"]
        m.motif.set(nan if motif is None or motif["same_label"] is None else motif["same_label"])
        m.cosine.set(nan if body["cosine"] is None else body["cosine"]["mean"])

    def clear_metrics(self) -> None:
        for gauge in (self.metrics.cka, self.metrics.knn, self.metrics.motif, self.metrics.cosine):
            gauge.set(float("nan"))
        self.metrics.windows.set(0)
        self.metrics.conclusive.set(0)
