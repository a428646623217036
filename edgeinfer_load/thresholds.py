# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thresholds (what passes) and the evaluation of measured figures against them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail thresholds; the defaults are the deployment guide's targets."""

    p95_ms: float = 50.0
    min_rps: float = 250.0
    min_success_rate: float = 0.99
    max_memory_mb: float | None = 512.0
    min_cosine: float = 0.99


DEFAULT_THRESHOLDS = Thresholds()
# The open loop must send at least this share of its schedule for its latency to stand for
# the asked rate: above it the server was tested at a lower rate than asked.
MAX_UNSENT_FRACTION = 0.01
CHECKS = ("health", "latency", "throughput", "success", "quality", "memory")


def evaluate(figures: Mapping[str, Any], thresholds: Thresholds) -> list[dict[str, Any]]:
    """One entry per check: name, status (passed, failed, skipped, not_run), value, target, detail.

    ``figures`` holds what was measured: ``health`` (check_health),
    ``latency_p95_ms``, ``throughput_rps``, ``success_rate``, ``quality``
    (dict with ok and problems), ``memory`` (ResourceSampler.summary() or
    None when skipped on purpose) and, with an open loop, ``delivery``
    (its ``rate``, ``intended`` and ``unsent`` requests). A figure that is
    missing means the phase did not run; a memory that was not measured
    fails unless the memory threshold is off (``max_memory_mb`` None); a
    latency fails when more than MAX_UNSENT_FRACTION of the open loop's
    requests were never sent.
    """
    return [
        _health(figures.get("health")),
        _latency(figures.get("latency_p95_ms"), thresholds.p95_ms, figures.get("delivery")),
        _throughput(figures.get("throughput_rps"), thresholds.min_rps),
        _success(figures.get("success_rate"), thresholds.min_success_rate),
        _quality(figures.get("quality"), thresholds.min_cosine),
        _memory(figures.get("memory"), thresholds.max_memory_mb),
    ]


def _check(name: str, status: str, value: Any, target: Any, detail: str) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "passed": status in ("passed", "skipped"),
        "value": value,
        "target": target,
        "detail": detail,
    }


def _verdict(ok: bool) -> str:
    return "passed" if ok else "failed"


def _health(h: Mapping[str, Any] | None) -> dict[str, Any]:
    target = "200 + expected model"
    if h is None:
        return _check("health", "not_run", None, target, "not probed")
    return _check("health", _verdict(h["ok"]), h.get("status"), target, "; ".join(h["problems"]) or "healthy")


def _latency(p95: float | None, limit: float, delivery: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if p95 is None:
        return _check("latency", "not_run", None, limit, "no latency phase ran")
    ok = math.isfinite(p95) and p95 < limit
    detail = f"p95 {p95:.2f} ms {'<' if ok else '>='} {limit} ms (all requests, failures included)"
    short = _undelivered(delivery)
    if short:
        return _check("latency", "failed", p95, limit, f"{short}; {detail}")
    return _check("latency", _verdict(ok), p95, limit, detail)


def _undelivered(delivery: Mapping[str, Any] | None) -> str:
    """Why the open loop's latency is not a measurement at the asked rate, or '' when it is."""
    if not delivery or not delivery["intended"]:
        return ""
    unsent, intended = delivery["unsent"], delivery["intended"]
    if unsent <= MAX_UNSENT_FRACTION * intended:
        return ""
    sent_rate = delivery["rate"] * (intended - unsent) / intended
    return (
        f"load not delivered as asked: the open loop sent {intended - unsent} of {intended} requests "
        f"({unsent} unsent: not sent in time, every connection busy or the load generator behind), "
        f"about {sent_rate:.1f} req/s instead of {delivery['rate']:g}"
    )


def _throughput(rps: float | None, floor: float) -> dict[str, Any]:
    if rps is None:
        return _check("throughput", "not_run", None, floor, "no throughput phase ran")
    ok = rps > floor
    return _check("throughput", _verdict(ok), rps, floor, f"{rps:.1f} successful req/s {'>' if ok else '<='} {floor}")


def _success(rate: float | None, floor: float) -> dict[str, Any]:
    if rate is None:
        return _check("success", "not_run", None, floor, "no load ran")
    ok = rate > floor
    return _check("success", _verdict(ok), rate, floor, f"{rate * 100:.3f} % {'>' if ok else '<='} {floor * 100:g} %")


def _quality(q: Mapping[str, Any] | None, floor: float) -> dict[str, Any]:
    if q is None:
        return _check("quality", "not_run", None, floor, "no /encode answer was checked")
    detail = "; ".join(q.get("problems") or []) or q.get("detail", "64 finite values")
    return _check("quality", _verdict(q["ok"]), q.get("min_cosine"), floor, detail)


def _memory(m: Mapping[str, Any] | None, limit: float | None) -> dict[str, Any]:
    if limit is None:
        return _check("memory", "skipped", m.get("memory_peak_mb") if m else None, None, "memory target off")
    if m is None:
        return _check("memory", "not_run", None, limit, "no load ran")
    if not m["measured"]:
        why = m["reason"] or "no sample"
        detail = f"memory not measured ({why}); name the container or turn the memory target off"
        return _check("memory", "failed", None, limit, detail)
    peak = m["memory_peak_mb"]
    ok = peak < limit
    detail = f"peak {peak:.1f} MiB {'<' if ok else '>='} {limit} MiB over {m['samples']} samples"
    if m.get("container"):
        detail += f" of container {m['container']}"
    return _check("memory", _verdict(ok), peak, limit, detail)
