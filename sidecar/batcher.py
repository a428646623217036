"""Greedy micro-batching: each backend call takes whatever queued while the previous one ran.

There is no fixed wait: a lone request runs at once, and under load the
queue fills while the backend is busy, so batches grow with the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .metrics import Metrics
from .model import Model


class NonFiniteOutput(RuntimeError):
    """The model returned NaN or Infinity for this request's windows: nothing of it is sent."""

    def __init__(self, model_version: str, bad: int, windows: int) -> None:
        super().__init__(
            f"model {model_version} returned NaN or Infinity for {bad} of the {windows} window(s) of this request"
        )
        self.model_version = model_version


@dataclass
class Result:
    embeddings: np.ndarray
    model: Model
    inference_ms: float


class Batcher:
    def __init__(self, get_model: Callable[[], Model | None], max_batch: int, metrics: Metrics) -> None:
        self.get_model = get_model
        self.max_batch = max_batch
        self.metrics = metrics
        # One thread: batches run one after another, and a model closed through it
        # is closed after the batch that was using it.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.queue: deque[tuple[np.ndarray, bool, asyncio.Future[Result]]] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, windows: np.ndarray, normalized: bool) -> Result:
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.queue.append((windows, normalized, fut))
        self.wakeup.set()
        return await fut

    def _run(self, model: Model, x: np.ndarray) -> tuple[np.ndarray, float, bool]:
        t0 = time.perf_counter()
        y = np.ascontiguousarray(model.backend.run(x))  # the JSON encoder writes contiguous arrays only
        seconds = time.perf_counter() - t0
        # One check per batch, on the model thread; each request is looked at only when it fails.
        return y, seconds, bool(np.isfinite(y).all())

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            items = [self.queue.popleft()]
            count = items[0][0].shape[0]
            while self.queue and count + self.queue[0][0].shape[0] <= self.max_batch:
                item = self.queue.popleft()
                items.append(item)
                count += item[0].shape[0]
            items = [it for it in items if not it[2].done()]
            if not items:
                continue
            model = self.get_model()
            if model is None:
                for _, _, fut in items:
                    fut.set_exception(LookupError("no model is loaded"))
                continue
            try:
                if not any(normalized for _, normalized, _ in items):
                    # One normalization of the whole batch: the same arithmetic, element by element,
                    # as one per request, for the price of one.
                    raw = items[0][0] if len(items) == 1 else np.concatenate([w for w, _, _ in items])
                    x = model.normalize(raw)
                else:
                    parts = [w if normalized else model.normalize(w) for w, normalized, _ in items]
                    x = parts[0] if len(parts) == 1 else np.concatenate(parts)
                y, seconds, finite = await loop.run_in_executor(self.executor, self._run, model, x)
            except Exception as exc:
                for _, _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.metrics.batch_size.observe(x.shape[0])
            self.metrics.inference.labels(model.backend_name).observe(seconds)
            start = 0
            for w, _, fut in items:
                n = w.shape[0]
                part = y[start : start + n]
                start += n
                if fut.done():
                    continue
                if finite or np.isfinite(part).all():
                    fut.set_result(Result(part, model, seconds * 1000))
                else:
                    bad = int((~np.isfinite(part)).any(axis=1).sum())
                    fut.set_exception(NonFiniteOutput(model.version, bad, n))

    def run_sync_later(self, fn: Callable[[], object]) -> None:
        """Queue work behind the batches already handed to the backend thread."""
        self.executor.submit(fn)
