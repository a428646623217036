# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting (a clock generator) and the /healthz judgement."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .client import http_get_json
from .requests import Target


def clock(
    timeout: float,
    interval: float,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[float]:
    """Yield the elapsed time, then sleep ``interval``, until ``timeout`` has passed (yields at least once)."""
    start = now()
    while True:
        elapsed = now() - start
        yield elapsed
        if elapsed + interval > timeout:
            return
        sleep(interval)


def wait_for(
    probe: Callable[[], Any],
    predicate: Callable[[Any], bool],
    timeout: float,
    interval: float = 1.0,
    ticks: Iterator[float] | None = None,
) -> tuple[bool, Any, float]:
    """Probe until ``predicate(state)`` holds: ``(ok, last_state, duration)``."""
    last, elapsed = None, 0.0
    for elapsed in ticks if ticks is not None else clock(timeout, interval):
        last = probe()
        if predicate(last):
            return True, last, elapsed
    return False, last, elapsed


def health_problems(status: int | None, body: Any, expect: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with a /healthz answer; empty when it is healthy and serves the expected model.

    ``expect`` maps a /healthz key (model_version, model_sha256, embedding_stamp,
    normalization_hash, backend, ...) to the value it must have; None values
    are not checked.
    """
    if status is None:
        return ["/healthz did not answer"]
    problems = []
    if status != 200:
        reason = body.get("reason") if isinstance(body, dict) else None
        problems.append(f"/healthz answered {status}" + (f" ({reason})" if reason else ""))
    if not isinstance(body, dict):
        problems.append("/healthz did not answer a JSON object")
        return problems
    for key, want in (expect or {}).items():
        if want is None or want == "":
            continue
        got = body.get(key)
        if key == "model_sha256" and isinstance(got, str) and isinstance(want, str):
            if not got.startswith(want.lower()) or len(want) < 8:
                problems.append(f"model_sha256 is {got}, expected {want}")
        elif key == "embedding_stamp":  # the sidecar names it in a dict ({"stamp": ...}); a string is the stamp
            stamp = got.get("stamp") if isinstance(got, dict) else got
            if stamp != want:
                problems.append(f"serving embedding stamp {stamp!r}, expected {want!r}")
        elif key == "normalization_hash" and isinstance(got, str) and isinstance(want, str):
            if not (got.startswith(want) or want.startswith(got)):
                problems.append(f"normalization_hash is {got}, expected {want} (the golden set is for another model)")
        elif got != want:
            problems.append(f"{key} is {got!r}, expected {want!r}")
    return problems


def check_health(
    target: Target, expect: Mapping[str, Any] | None, wait_s: float = 0.0, timeout_s: float = 5.0
) -> dict[str, Any]:
    """Probe /healthz (waiting up to ``wait_s`` for it to be healthy); a dict with ok, problems, body."""

    def probe() -> tuple[int | None, Any, str]:
        try:
            status, body = http_get_json(target, "/healthz", timeout_s)
            return status, body, ""
        except OSError as exc:
            return None, None, str(exc)

    ok, last, duration = wait_for(probe, lambda s: not health_problems(s[0], s[1], expect), wait_s, 1.0)
    status, body, error = last
    problems = health_problems(status, body, expect)
    if error:
        problems = [f"/healthz on {target.netloc} did not answer: {error}"]
    return {"ok": ok, "status": status, "problems": problems, "body": body, "waited_s": round(duration, 3)}
