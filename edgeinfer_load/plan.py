# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole benchmark: health, quality, warm-up, closed loop, open loop, resources, checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .contract import LATENT_DIM, GoldenSet
from .golden import golden_replay, probe_embedding
from .health import check_health
from .loops import closed_loop, open_loop
from .replay import replay_requests
from .requests import Request, Target, encode_request
from .resources import ResourceSampler
from .result import LoadResult
from .stats import rounded, summarize
from .thresholds import Thresholds, evaluate

# Upper bounds of a plan, which the CLI and the Ansible module refuse options beyond: past them a
# run would not end within a day, or could not be sent (the engine sends about 15,000 req/s from
# one core; each scheduled request is kept in memory), or a socket timeout overflows.
MAX_SECONDS = 86400.0
MAX_TIMEOUT_S = 3600.0
MAX_RATE = 100_000.0


def within(value: float, low: float, high: float, low_open: bool = False) -> bool:
    """Whether an option's ``value`` is finite, at most ``high`` and above ``low`` (or at it, unless
    ``low_open``): NaN passes every comparison, and an infinite duration never ends."""
    return math.isfinite(value) and (value > low if low_open else value >= low) and value <= high


@dataclass
class Plan:
    """What one validation run does; the CLI and the Ansible module fill it from their options."""

    target: Target
    path: str = "/encode"
    binary: bool = False
    concurrency: int = 16
    duration_s: float = 15.0
    warmup_s: float = 3.0
    rate: float = 250.0  # 0: no open-loop phase (latency then comes from the closed loop)
    open_concurrency: int = 64
    timeout_s: float = 5.0
    wait_s: float = 0.0
    expect: dict[str, Any] = field(default_factory=dict)
    golden: GoldenSet | None = None
    golden_limit: int | None = None
    replay: bytes | None = None  # load_replay's windows, sent in turn instead of the one synthetic window


Say = Callable[[str], None]
Progress = Callable[[dict[str, Any]], None]


def run_benchmark(
    plan: Plan,
    thresholds: Thresholds,
    sampler: ResourceSampler,
    say: Say = lambda _m: None,
    on_progress: Progress | None = None,
    end_phase: Callable[[], None] = lambda: None,
) -> tuple[dict[str, Any], dict[str, LoadResult]]:
    """Health, quality, warm-up, closed loop, open loop, resources; then the checks.

    Returns the report (plain JSON-able data: figures, ``checks``, ``passed``,
    ``failed_checks``) and the raw phases (for plots). When health fails the
    load phases do not run and their checks are ``not_run``.
    """
    figures: dict[str, Any] = {}
    phases: dict[str, LoadResult] = {}
    report: dict[str, Any] = {"target": plan.target.url(), "targets": dict(thresholds.__dict__)}
    figures["health"] = _health(plan, report, say)
    if figures["health"]["ok"]:
        request, load = _load_requests(plan, report, say)
        figures["quality"] = report["quality"] = _quality(plan, request, thresholds, say)
        with sampler:
            phases = _load_phases(plan, load, report, say, on_progress, end_phase)
        figures["memory"] = report["resources"] = sampler.summary()
        _load_figures(phases, figures, report)
    checks = evaluate(figures, thresholds)
    report["checks"] = checks
    report["failed_checks"] = [c["name"] for c in checks if c["status"] == "failed"]
    report["passed"] = all(c["status"] in ("passed", "skipped") for c in checks)
    return report, phases


def _health(plan: Plan, report: dict[str, Any], say: Say) -> dict[str, Any]:
    """/healthz of the expected model (the golden set's normalization when none is named)."""
    expect = dict(plan.expect)
    golden = plan.golden
    if golden and golden.normalization_hash and not expect.get("normalization_hash"):
        expect["normalization_hash"] = golden.normalization_hash
    say(f"health: GET {plan.target.url('/healthz')}")
    health = check_health(plan.target, expect, wait_s=plan.wait_s, timeout_s=plan.timeout_s)
    body = health["body"] if isinstance(health["body"], dict) else {}
    report["health"] = {k: health[k] for k in ("ok", "status", "problems", "waited_s")}
    report["health"]["model"] = {
        k: body.get(k) for k in ("model_version", "model_sha256", "backend", "normalization_hash", "embedding_stamp")
    }
    return health


def _load_requests(plan: Plan, report: dict[str, Any], say: Say) -> tuple[Request, Request | list[Request]]:
    """The load's requests (a replay's windows, else the first golden window or a synthetic one) and the first."""
    load: Request | list[Request]
    if plan.replay:
        load = replay_requests(plan.replay, plan.binary, plan.path)
        request = load[0]
        report["load_windows"] = {"source": "replay", "windows": len(load)}
    else:
        golden = plan.golden
        request = encode_request(golden.windows[0] if golden else None, binary=plan.binary, path=plan.path)
        load = request
        report["load_windows"] = {"source": "golden" if golden else "synthetic", "windows": 1}
    say(f"load: {report['load_windows']['windows']} {report['load_windows']['source']} window(s)")
    return request, load


def _quality(plan: Plan, request: Request, thresholds: Thresholds, say: Say) -> dict[str, Any]:
    """One /encode answer probed, then the golden set replayed when there is one."""
    probe = probe_embedding(plan.target, request, plan.timeout_s)
    quality: dict[str, Any] = {
        "ok": probe["ok"],
        "probe": probe,
        "problems": [] if probe["ok"] else [probe["problem"]],
    }
    quality["min_cosine"] = None
    golden = plan.golden
    if not golden:
        quality["detail"] = f"{LATENT_DIM} finite values (no golden set given: cosine not checked)"
        return quality
    n = min(plan.golden_limit or len(golden.windows), len(golden.windows))
    say(f"quality: replaying {n} golden windows")
    rep = golden_replay(
        plan.target,
        golden.windows[:n],
        golden.embeddings[:n],
        thresholds.min_cosine,
        plan.path,
        plan.timeout_s,
        plan.binary,
    )
    quality.update(golden=rep, min_cosine=rep["min_cosine"], ok=quality["ok"] and rep["ok"])
    quality["problems"] += rep["problems"]
    if rep["ok"]:  # a miss is told by its problems instead
        quality["detail"] = (
            f"golden cosine min {rep['min_cosine']:.6f} >= {thresholds.min_cosine} over {rep['windows']} windows "
            f"(mean {rep['mean_cosine']:.6f}); {LATENT_DIM} finite values"
        )
    return quality


def _load_phases(
    plan: Plan,
    load: Request | list[Request],
    report: dict[str, Any],
    say: Say,
    on_progress: Progress | None,
    end_phase: Callable[[], None],
) -> dict[str, LoadResult]:
    """Warm-up (not recorded), the closed loop, then the open loop when a rate is set."""
    target = plan.target
    phases: dict[str, LoadResult] = {}
    if plan.warmup_s > 0:
        say(f"warm-up: {plan.warmup_s:g} s at concurrency {plan.concurrency} (not recorded)")
        w = closed_loop(target, load, plan.concurrency, duration_s=plan.warmup_s, timeout_s=plan.timeout_s)
        report["warmup"] = {"requests": w.requests, "failed": w.failed}
    say(f"closed loop: {plan.duration_s:g} s at concurrency {plan.concurrency}")
    phases["closed"] = closed_loop(
        target,
        load,
        plan.concurrency,
        duration_s=plan.duration_s,
        timeout_s=plan.timeout_s,
        on_progress=on_progress,
    )
    end_phase()
    if plan.rate > 0:
        say(f"open loop: {plan.duration_s:g} s at {plan.rate:g} req/s")
        phases["open"] = open_loop(
            target,
            load,
            plan.rate,
            plan.duration_s,
            plan.open_concurrency,
            plan.timeout_s,
            on_progress=on_progress,
        )
        end_phase()
    return phases


def _load_figures(phases: dict[str, LoadResult], figures: dict[str, Any], report: dict[str, Any]) -> None:
    """Latency from the open loop (the closed loop's without one), throughput from the closed loop."""
    closed = phases["closed"]
    latency_phase = phases.get("open", closed)
    figures["latency_p95_ms"] = summarize(latency_phase.latencies_ms)["p95_ms"]
    figures["throughput_rps"] = closed.ok_rps
    # The server's success rate is over the requests it was sent; the open loop's unsent ones
    # (the generator fell behind) are judged with the latency, as a rate that was not delivered.
    sent = sum(p.sent for p in phases.values())
    figures["success_rate"] = sum(p.successes for p in phases.values()) / sent if sent else 0.0
    if "open" in phases:
        opened = phases["open"]
        figures["delivery"] = {"rate": opened.rate, "intended": opened.intended, "unsent": opened.unsent}
        report["unsent"] = opened.unsent
    report["latency_from"] = latency_phase.mode
    report["phases"] = {k: v.to_dict() for k, v in phases.items()}
    report["latency_p95_ms"] = rounded(figures["latency_p95_ms"])
    report["throughput_rps"] = round(figures["throughput_rps"], 2)
    report["success_rate"] = round(figures["success_rate"], 6)
    report["memory_peak_mb"] = figures["memory"]["memory_peak_mb"]
