"""Greedy micro-batching on the one inference thread: each backend call takes whatever queued while
the previous one ran.

There is no fixed wait: a lone request runs at once, and under load the queue fills while the
backend is busy, so batches grow with the load.

Normally the event loop only queues a request's windows and awaits its future; the inference thread takes
the batch, normalizes it, runs the backend and hands all the batch's answers back in one callback.
A ``ThreadPoolExecutor`` with an asyncio task gathering the batches would do the same with more
hops per batch (the task's wake-up, the executor's work item and its future, the future chained
to an asyncio one): on one core, with a lone request, those hops cost about 40 µs of event-loop
CPU that the round trip waits for (``bench/bench_sidecar.py``'s event-loop CPU per request).

One case skips the thread: a single window, while at most one connection is open, the inference
thread idle and nothing waiting in its queue, on a backend whose run is CPU work that ends
(``inline`` in backends.py: ONNX Runtime), runs on the event loop itself. With one connection
there is no other request to read meanwhile (a new connection is accepted when that inference
ends), and the two handoffs (the thread's wake-up, then the loop's) cost a lone request about
0.07 ms on one core, against a 1.2 ms inference (``bench/sidecar_revisions.py --lone``). So the
loop is held for at most one window's inference on the CPU: a Hailo run waits on the device, up to
its timeout, and a fallback from it builds a session, so those always run on the thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .metrics import Metrics
from .model import Model

log = logging.getLogger("sidecar")


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


Job = tuple[np.ndarray, bool, asyncio.Future[Result]]
# A job, work to run between batches (run_sync_later), or None: stop.
Item = Job | Callable[[], object] | None


class Batcher:
    def __init__(
        self,
        get_model: Callable[[], Model | None],
        max_batch: int,
        metrics: Metrics,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.get_model = get_model
        self.max_batch = max_batch
        self.metrics = metrics
        self.alone = alone  # whether at most one connection is open (the submitting request's)
        # Held while a batch or queued work runs, on whichever thread runs it; released before
        # the answers go back, so that the next lone request finds it free.
        self.busy = threading.Lock()
        # One thread: batches run one after another, and a model closed through it
        # is closed after the batch that was using it.
        self.queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="inference", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread.start()

    async def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            await asyncio.to_thread(self.thread.join)

    async def submit(self, windows: np.ndarray, normalized: bool) -> Result:
        if self.loop is None or not self.thread.is_alive():
            raise LookupError("the inference thread is not running")  # answered 503, never left waiting
        fut: asyncio.Future[Result] = self.loop.create_future()
        job = (windows, normalized, fut)
        if self._inline(windows) and self.busy.acquire(blocking=False):
            try:  # on the event loop: see the module's docstring
                answer, args = self._batch([job])
            finally:
                self.busy.release()
            answer(*args)
        else:
            self.queue.put(job)
        return await fut

    def _inline(self, windows: np.ndarray) -> bool:
        """Whether this request may run on the event loop (the module's docstring); the inference
        thread's being idle is ``busy``'s to say."""
        if windows.shape[0] != 1 or not self.queue.empty() or not self.alone():
            return False
        model = self.get_model()
        return model is not None and getattr(model.backend, "inline", False)  # a backend that does not say: no

    def run_sync_later(self, fn: Callable[[], object]) -> None:
        """Queue work behind the batches already queued, on the inference thread; at once when the
        thread is not running (no batch can be using what ``fn`` closes)."""
        if self.thread.is_alive():
            self.queue.put(fn)
        else:
            fn()

    # The inference thread's side.

    def _work(self) -> None:
        held: Item = None
        holding = False
        while True:
            item = held if holding else self.queue.get()
            holding = False
            if item is None:
                return
            if not isinstance(item, tuple):
                try:
                    with self.busy:
                        item()
                except Exception:
                    log.exception("work queued behind the batches failed")
                continue
            jobs, count = [item], item[0].shape[0]
            while count < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, tuple) or count + nxt[0].shape[0] > self.max_batch:
                    held, holding = nxt, True  # the next batch starts with it
                    break
                jobs.append(nxt)
                count += nxt[0].shape[0]
            # A request whose client left is not run (done() is a state read, safe off the loop).
            jobs = [job for job in jobs if not job[2].done()]
            if jobs:
                with self.busy:
                    answer, args = self._batch(jobs)
                self._answer(answer, *args)

    def _batch(self, jobs: list[Job]) -> tuple[Callable[..., None], tuple[object, ...]]:
        """Run ``jobs`` as one backend call; returns the callback that answers them on the event
        loop, with its arguments."""
        try:
            model = self.get_model()
            if model is None:
                raise LookupError("no model is loaded")
            if not any(normalized for _, normalized, _ in jobs):
                # One normalization of the whole batch: the same arithmetic, element by element,
                # as one per request, for the price of one.
                raw = jobs[0][0] if len(jobs) == 1 else np.concatenate([w for w, _, _ in jobs])
                x = model.normalize(raw)
            else:
                parts = [w if normalized else model.normalize(w) for w, normalized, _ in jobs]
                x = parts[0] if len(parts) == 1 else np.concatenate(parts)
            t0 = time.perf_counter()
            y = np.ascontiguousarray(model.backend.run(x))  # the JSON encoder writes contiguous arrays only
            seconds = time.perf_counter() - t0
            if y.ndim != 2 or y.shape[0] != x.shape[0]:
                raise RuntimeError(f"the backend answered shape {y.shape} for {x.shape[0]} window(s)")
            # One check per batch; each request is looked at only when it fails.
            finite = bool(np.isfinite(y).all())
        except Exception as exc:
            return self._fail, (jobs, exc)
        return self._deliver, (jobs, model, y, seconds, finite)

    def _answer(self, fn: Callable[..., None], *args: object) -> None:
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody awaits these answers any more
            log.debug("a batch finished after the event loop closed; its answers are dropped")

    # Back on the event loop.

    @staticmethod
    def _fail(jobs: list[Job], exc: Exception) -> None:
        for _, _, fut in jobs:
            if not fut.done():
                fut.set_exception(exc)

    def _deliver(self, jobs: list[Job], model: Model, y: np.ndarray, seconds: float, finite: bool) -> None:
        self.metrics.batch_size.observe(y.shape[0])
        self.metrics.inference.labels(model.backend_name).observe(seconds)
        start = 0
        for w, _, fut in jobs:
            n = w.shape[0]
            part = y[start : start + n]
            start += n
            if fut.done():  # its request is gone (the client left)
                continue
            if finite or np.isfinite(part).all():
                fut.set_result(Result(part, model, seconds * 1000))
            else:
                bad = int((~np.isfinite(part)).any(axis=1).sum())
                fut.set_exception(NonFiniteOutput(model.version, bad, n))
