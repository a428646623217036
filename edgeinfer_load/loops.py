# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two load phases: closed loop (maximum throughput) and open loop (a constant rate)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from .engine import _Engine, _run
from .requests import Request, Target
from .result import LoadResult


def closed_loop(
    target: Target | str,
    request: Request | Sequence[Request],
    concurrency: int = 8,
    duration_s: float | None = None,
    max_requests: int | None = None,
    timeout_s: float = 5.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    now: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Maximum throughput at ``concurrency``: each connection sends again as soon as it has its answer.

    A sequence of requests (a replay) is sent in turn, from the first again after the last.

    Stops after ``duration_s`` (no new request is sent after it; those in flight
    finish or time out) or after ``max_requests`` were sent, whichever comes first.
    """
    if duration_s is None and max_requests is None:
        raise ValueError("closed_loop needs duration_s or max_requests (it must stop by itself)")
    if duration_s is not None:
        _positive("duration", duration_s, " of seconds")
    target = Target.parse(target) if isinstance(target, str) else target
    res = LoadResult("closed", concurrency, None, float(duration_s or 0.0))
    eng = _Engine(target, request, concurrency, timeout_s, res, on_progress, now)
    try:
        eng.resolve()
        eng.preconnect()
        eng.idle = list(eng.conns)
        eng.t0 = now()
        stop_at = eng.t0 + duration_s if duration_s is not None else math.inf
        sent = 0

        def due(t: float) -> float | None:
            nonlocal sent
            # One pass over the connections idle now; one that fails at once (refused)
            # waits for the next pass, so a dead server cannot spin this loop forever.
            batch, eng.idle = eng.idle, []
            for c in batch:
                if t >= stop_at or (max_requests is not None and sent >= max_requests):
                    break
                eng.issue(c, None)
                sent += 1
            if t >= stop_at or (max_requests is not None and sent >= max_requests):
                eng.idle.clear()
                return None
            return t if eng.idle else t + eng.CHECK_EVERY_S

        _run(eng, due, stop_at)
        res.intended = sent
        res.elapsed_s = max(eng.last_done - eng.t0, 1e-9) if res.requests else 0.0
        eng.progress(now(), stop_at)
    finally:
        eng.close()
    return res


def open_loop(
    target: Target | str,
    request: Request | Sequence[Request],
    rate: float,
    duration_s: float,
    concurrency: int = 32,
    timeout_s: float = 5.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    now: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Constant-rate load: request ``i`` is due at ``t0 + i / rate`` whatever the server does.

    A sequence of requests (a replay) is sent in turn, from the first again after the last.

    Latency runs from the due time, so waiting for a free connection counts.
    ``concurrency`` bounds the requests in flight. Requests still waiting
    for a connection when the phase ends are counted by kind as ``unsent``
    with their wait so far as latency: an overloaded server can never look
    better by making the load generator fall behind. The server never saw
    them, so they are not in its ``success_rate``; the latency check judges
    a schedule that was not delivered (thresholds.MAX_UNSENT_FRACTION).
    """
    _check_schedule(rate, duration_s)
    target = Target.parse(target) if isinstance(target, str) else target
    res = LoadResult("open", concurrency, float(rate), float(duration_s))
    eng = _Engine(target, request, concurrency, timeout_s, res, on_progress, now)
    total = max(int(math.floor(rate * duration_s)), 1)
    interval = 1.0 / rate
    try:
        eng.resolve()
        eng.preconnect()
        eng.idle = list(eng.conns)
        eng.t0 = now()
        stop_at = eng.t0 + duration_s
        i = 0

        def due(t: float) -> float | None:
            nonlocal i
            while i < total:
                when = eng.t0 + i * interval
                if when > t:
                    return when
                if t >= stop_at + interval:
                    return None
                if not eng.idle:
                    return t + eng.CHECK_EVERY_S
                eng.issue(eng.idle.pop(), when)
                i += 1
            return None

        _run(eng, due, stop_at)
        end = now()
        res.intended = total
        _count_unsent(res, [eng.t0 + j * interval for j in range(i, total)], eng.t0, end)
        res.elapsed_s = max(max(eng.last_done, end if i < total else eng.last_done) - eng.t0, 1e-9)
        eng.progress(end, stop_at)
    finally:
        eng.close()
    return res


def _positive(name: str, value: float, unit: str = "") -> None:
    """ValueError unless ``value`` is a positive number: NaN never stops, infinity overflows a schedule's count."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number{unit}, got {value}")


def _check_schedule(rate: float, duration_s: float) -> None:
    _positive("rate", rate)
    _positive("duration", duration_s, " of seconds")


def _count_unsent(res: LoadResult, due_times: Sequence[float], t0: float, end: float) -> None:
    """Requests due but never sent: kind ``unsent``, their wait so far as latency."""
    for when in due_times:
        res.latencies_ms.append(max(end - when, 0.0) * 1000.0)
        res.uncorrected_ms.append(0.0)
        res.completed_at_s.append(end - t0)
        res.ok.append(False)
        res.failures["unsent"] = res.failures.get("unsent", 0) + 1
