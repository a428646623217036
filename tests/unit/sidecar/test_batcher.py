"""The micro-batcher's inference thread: what each backend call takes, in what order, and what each
request gets back."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from sidecar.batcher import Batcher
from sidecar.metrics import Metrics


class _Backend:
    """Answers each window with its first value in every column; the first call waits for ``release``."""

    name = "fake"

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[list[float]] = []  # the first value of each window, per call
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on
        self.log: list[str] = []

    def run(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.release.wait(10)
        firsts = [float(v) for v in x[:, 0, 0]]
        self.calls.append(firsts)
        self.log.append(f"run {len(firsts)}")
        if self.fail_on is not None and self.fail_on in firsts:
            raise RuntimeError(f"backend failed on {self.fail_on}")
        return np.repeat(x[:, 0, :1], 64, axis=1).astype(np.float32)


def _windows(*firsts: float) -> np.ndarray:
    w = np.zeros((len(firsts), 100, 9), np.float32)
    w[:, 0, 0] = firsts
    return w


def _model(backend: _Backend) -> SimpleNamespace:
    return SimpleNamespace(
        backend=backend,
        backend_name="fake",
        version="v-test",
        normalize=lambda raw: (raw * 2).astype(np.float32),
    )


async def _held(batcher: Batcher, backend: _Backend, *jobs: tuple[np.ndarray, bool]) -> list[object]:
    """Submit a first window, and ``jobs`` while the backend is busy with it; then let it go."""
    first = asyncio.ensure_future(batcher.submit(_windows(-1), True))
    await asyncio.to_thread(backend.entered.wait, 10)
    rest = [asyncio.ensure_future(batcher.submit(w, n)) for w, n in jobs]
    await asyncio.sleep(0.05)  # every job queued behind the busy backend
    backend.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_what_queues_while_the_backend_runs_goes_in_one_call_up_to_max_batch_and_each_request_gets_its_rows():
    backend = _Backend()
    batcher = Batcher(lambda: _model(backend), 4, Metrics())  # type: ignore[arg-type, return-value]

    async def run() -> list[object]:
        batcher.start()
        try:
            return await _held(
                batcher,
                backend,
                (_windows(1, 2), True),
                (_windows(3), True),
                (_windows(4), True),
                (_windows(5, 6), True),
                (_windows(7), True),
            )
        finally:
            await batcher.stop()

    results = asyncio.run(asyncio.wait_for(run(), 10))
    # 2+1+1 windows fill the batch of 4 exactly; the next requests start the next call
    assert backend.calls == [[-1.0], [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0]]
    got = [r.embeddings[:, 0].tolist() for r in results]  # type: ignore[union-attr]
    assert got == [[-1.0], [1.0, 2.0], [3.0], [4.0], [5.0, 6.0], [7.0]]
    assert all(r.embeddings.shape[1] == 64 and r.model.version == "v-test" for r in results)  # type: ignore[union-attr]
    assert not batcher.thread.is_alive()


def test_raw_windows_are_normalized_by_the_model_and_normalized_ones_are_not():
    backend = _Backend()
    backend.release.set()
    batcher = Batcher(lambda: _model(backend), 32, Metrics())  # type: ignore[arg-type, return-value]

    async def run() -> list[object]:
        batcher.start()
        try:
            return [await batcher.submit(_windows(3), False), await batcher.submit(_windows(3), True)]
        finally:
            await batcher.stop()

    raw, normalized = asyncio.run(asyncio.wait_for(run(), 10))
    assert raw.embeddings[0, 0] == 6.0 and normalized.embeddings[0, 0] == 3.0  # type: ignore[union-attr]


def test_work_queued_behind_batches_runs_after_them_and_before_later_ones():
    backend = _Backend()
    batcher = Batcher(lambda: _model(backend), 32, Metrics())  # type: ignore[arg-type, return-value]

    async def run() -> None:
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(_windows(1), True))
            await asyncio.to_thread(backend.entered.wait, 10)
            queued = asyncio.ensure_future(batcher.submit(_windows(2), True))
            await asyncio.sleep(0.02)
            batcher.run_sync_later(lambda: backend.log.append("close"))
            later = asyncio.ensure_future(batcher.submit(_windows(3), True))
            await asyncio.sleep(0.02)
            backend.release.set()
            await asyncio.gather(first, queued, later)
        finally:
            await batcher.stop()

    asyncio.run(asyncio.wait_for(run(), 10))
    assert backend.log == ["run 1", "run 1", "close", "run 1"]


def test_a_failing_backend_fails_each_request_of_its_batch_and_the_thread_serves_on():
    backend = _Backend(fail_on=2.0)
    model = _model(backend)
    current: list[object] = [None]
    batcher = Batcher(lambda: current[0], 32, Metrics())  # type: ignore[arg-type, return-value]

    async def run() -> tuple[list[object], object, object]:
        batcher.start()
        try:
            with pytest.raises(LookupError, match="no model is loaded"):
                await batcher.submit(_windows(1), True)
            current[0] = model
            held = await _held(batcher, backend, (_windows(2), True), (_windows(3), True))
            after = await batcher.submit(_windows(4), True)
            return held, after, batcher.thread.is_alive()
        finally:
            await batcher.stop()

    held, after, alive = asyncio.run(asyncio.wait_for(run(), 10))
    assert held[0].embeddings[0, 0] == -1.0  # type: ignore[union-attr]
    assert all(isinstance(r, RuntimeError) and "backend failed on 2.0" in str(r) for r in held[1:])
    assert after.embeddings[0, 0] == 4.0 and alive  # type: ignore[union-attr]


def test_a_backend_answer_of_the_wrong_shape_fails_its_requests_instead_of_leaving_them_waiting():
    backend = _Backend()
    backend.release.set()
    backend.run = lambda x: np.zeros((x.shape[0] + 1, 64), np.float32)  # type: ignore[method-assign]
    batcher = Batcher(lambda: _model(backend), 32, Metrics())  # type: ignore[arg-type, return-value]

    async def run() -> None:
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match=r"answered shape \(2, 64\) for 1 window"):
                await batcher.submit(_windows(1), True)
        finally:
            await batcher.stop()

    asyncio.run(asyncio.wait_for(run(), 10))


def test_after_stop_a_request_is_refused_and_work_runs_at_once():
    backend = _Backend()
    backend.release.set()
    batcher = Batcher(lambda: _model(backend), 32, Metrics())  # type: ignore[arg-type, return-value]
    ran: list[str] = []

    async def run() -> None:
        batcher.start()
        await batcher.stop()
        batcher.run_sync_later(lambda: ran.append("close"))
        with pytest.raises(LookupError, match="inference thread is not running"):
            await batcher.submit(_windows(1), True)

    asyncio.run(asyncio.wait_for(run(), 10))
    assert ran == ["close"]


def test_a_batch_that_ends_after_its_event_loop_closed_leaves_the_thread_serving():
    backend = _Backend()
    batcher = Batcher(lambda: _model(backend), 32, Metrics())  # type: ignore[arg-type, return-value]
    ran = threading.Event()

    async def leave_a_batch_running() -> None:
        batcher.start()
        asyncio.ensure_future(batcher.submit(_windows(1), True))
        await asyncio.to_thread(backend.entered.wait, 10)
        batcher.run_sync_later(ran.set)

    asyncio.run(leave_a_batch_running())  # the loop closes with the batch in the backend
    backend.release.set()
    assert ran.wait(10), "the work queued behind the batch never ran"
    assert batcher.thread.is_alive()
    asyncio.run(asyncio.wait_for(batcher.stop(), 10))
    assert not batcher.thread.is_alive()


class _Threads(_Backend):
    """Records the thread of each call and the most calls that were ever in the backend at once;
    ``inline`` as the backend says it (an ONNX Runtime one does)."""

    def __init__(self, fail_on: float | None = None, inline: bool = True) -> None:
        super().__init__(fail_on)
        self.inline = inline
        self.threads: list[str] = []
        self.inside = 0
        self.most_inside = 0

    def run(self, x: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            return super().run(x)
        finally:
            self.inside -= 1


def test_a_lone_single_window_runs_on_the_event_loop_and_anything_else_on_the_inference_thread():
    backend = _Threads(fail_on=9.0)
    backend.release.set()
    alone = [True]

    async def run() -> list[object]:
        batcher = Batcher(lambda: _model(backend), 32, Metrics(), lambda: alone[0])  # type: ignore[arg-type, return-value]
        batcher.start()
        try:
            out: list[object] = [await batcher.submit(_windows(1), True), await batcher.submit(_windows(2, 3), True)]
            with pytest.raises(RuntimeError, match="backend failed on 9.0"):
                await batcher.submit(_windows(9), True)
            out.append(await batcher.submit(_windows(4), False))
            alone[0] = False
            out.append(await batcher.submit(_windows(5), True))
            return out
        finally:
            await batcher.stop()

    main = threading.current_thread().name  # asyncio.run's loop runs on this thread
    for _ in range(20):  # each answer from the thread comes back after it let go of the backend
        backend.threads.clear()
        alone[0] = True
        results = asyncio.run(asyncio.wait_for(run(), 10))
        assert backend.threads == [main, "inference", main, main, "inference"]
    # the same answers either way: the rows, the normalization, a failure as an exception
    assert [r.embeddings[:, 0].tolist() for r in results] == [[1.0], [2.0, 3.0], [8.0], [5.0]]  # type: ignore[union-attr]


def test_a_backend_that_waits_on_a_device_always_runs_on_the_inference_thread():
    backend = _Threads(inline=False)  # as HailoBackend: a run waits on the device, up to its timeout
    backend.release.set()
    batcher = Batcher(lambda: _model(backend), 32, Metrics(), lambda: True)  # type: ignore[arg-type, return-value]

    async def run() -> None:
        batcher.start()
        try:
            for i in range(3):
                await batcher.submit(_windows(i), True)
        finally:
            await batcher.stop()

    asyncio.run(asyncio.wait_for(run(), 10))
    assert backend.threads == ["inference"] * 3


def test_a_lone_request_waits_behind_a_busy_inference_thread_instead_of_running_beside_it():
    backend = _Threads()
    alone = [False]
    batcher = Batcher(lambda: _model(backend), 32, Metrics(), lambda: alone[0])  # type: ignore[arg-type, return-value]

    async def run() -> list[object]:
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(_windows(1), True))
            await asyncio.to_thread(backend.entered.wait, 10)  # the inference thread is in the backend
            alone[0] = True
            lone = asyncio.ensure_future(batcher.submit(_windows(2), True))
            await asyncio.sleep(0.05)
            assert not lone.done()
            backend.release.set()
            return await asyncio.gather(first, lone)
        finally:
            await batcher.stop()

    results = asyncio.run(asyncio.wait_for(run(), 10))
    assert backend.threads == ["inference", "inference"] and backend.most_inside == 1
    assert [r.embeddings[0, 0] for r in results] == [1.0, 2.0]  # type: ignore[union-attr]
