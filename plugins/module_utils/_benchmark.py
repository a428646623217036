# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgeinfer_benchmark module's steps over the load engine (_load, the package edgeinfer_load).

From the module's options: refusals that name the option and its fix, the engine's ``Plan`` and
``Thresholds``, the Docker sampler of the sidecar's memory; then either the check-mode look at
``/healthz`` (no load sent) or the measured run, and the message of a run that missed its targets.
Standard library only: it runs on the edge.
"""

from __future__ import annotations

import math
import time

from ansible_collections.edgeinfer.deploy.plugins.module_utils._load import (
    MAX_RATE,
    MAX_SECONDS,
    MAX_TIMEOUT_S,
    GoldenSet,
    Plan,
    ResourceSampler,
    Target,
    Thresholds,
    check_health,
    load_replay,
    run_benchmark,
    socket_sampler,
    within,
)


def _range(name, value, low, high, low_open, what):
    """The complaint about option ``name`` unless ``value`` is within the range (the load engine's rule)."""
    return None if within(value, low, high, low_open) else f"{name}={value} must be {what}"


def option_problems(p: dict) -> list[str]:
    """Every option out of its range, each naming the option, its value and what it must be. The
    bounds are the load engine's (MAX_SECONDS, MAX_TIMEOUT_S, MAX_RATE), as edgeinfer_validate's."""
    th = p["thresholds"]
    seconds = f"a finite number of seconds from 0 to {MAX_SECONDS:g}"
    checks = [
        (
            "duration",
            p["duration"],
            0,
            MAX_SECONDS,
            True,
            f"a finite number of seconds above 0, at most {MAX_SECONDS:g}",
        ),
        ("warmup", p["warmup"], 0, MAX_SECONDS, False, seconds),
        ("wait", p["wait"], 0, MAX_SECONDS, False, seconds),
        (
            "timeout",
            p["timeout"],
            0,
            MAX_TIMEOUT_S,
            True,
            f"a finite number of seconds above 0, at most {MAX_TIMEOUT_S:g}",
        ),
        ("min_cosine", p["min_cosine"], -1, 1, False, "a cosine from -1 to 1 (0.99 is the default)"),
        ("thresholds.p95_ms", th["p95_ms"], 0, math.inf, True, "a finite number of milliseconds above 0"),
        ("thresholds.min_rps", th["min_rps"], 0, math.inf, False, "a finite number of requests/s, 0 or more"),
    ]
    if th.get("max_memory_mb") is not None:
        checks.append(
            ("thresholds.max_memory_mb", th["max_memory_mb"], 0, math.inf, True, "a finite number of MiB above 0")
        )
    if p["rate"] is not None:
        checks.append(("rate", p["rate"], 0, MAX_RATE, False, f"0 (no open loop) or requests/s up to {MAX_RATE:g}"))
    out = [m for m in (_range(*c) for c in checks) if m]
    if p["rate"] is None and math.isfinite(th["min_rps"]) and th["min_rps"] > MAX_RATE:
        out.append(
            f"rate defaults to thresholds.min_rps ({th['min_rps']:g} req/s), more than the open loop can send "
            f"(at most {MAX_RATE:g}); give rate (0 for no open loop)"
        )
    for name in ("concurrency", "open_concurrency"):
        if p[name] < 1:
            out.append(f"{name}={p[name]} must be at least 1")
    sr = th["min_success_rate"]
    if not 0 < sr < 1:  # False for NaN too
        out.append(
            f"thresholds.min_success_rate={sr} is a fraction in (0, 1) the success rate must be above; 99 % is 0.99"
        )
    return out


def read_inputs(p: dict) -> tuple[Target, GoldenSet | None, bytes | None]:
    """The target, golden set and replay the options name.

    ValueError, its message ready for the task's failure, on the first option that is out of
    range or names something unreadable, before any request is sent.
    """
    problems = option_problems(p)
    if problems:
        raise ValueError("; ".join(problems))
    target = Target.parse(p["url"])
    golden = None
    if p["golden"]:
        try:
            golden = GoldenSet.load(p["golden"])
        except ValueError as exc:
            raise ValueError(f"{exc}; give golden the path of the release's golden.json on this host") from None
    replay = None
    if p["replay"]:
        try:
            replay = load_replay(p["replay"])
        except ValueError as exc:
            raise ValueError(f"{exc}; give replay a file written by model_tools capture --replay") from None
    return target, golden, replay


def thresholds_of(p: dict) -> Thresholds:
    """The pass marks; memory has none when the module is told not to measure it."""
    th = p["thresholds"]
    return Thresholds(
        p95_ms=th["p95_ms"],
        min_rps=th["min_rps"],
        min_success_rate=th["min_success_rate"],
        max_memory_mb=None if p["skip_memory"] else th["max_memory_mb"],
        min_cosine=p["min_cosine"],
    )


def plan_of(p: dict, target: Target, golden: GoldenSet | None, replay: bytes | None) -> Plan:
    """The engine's plan; without ``rate`` the open loop runs at the throughput target."""
    return Plan(
        target=target,
        path=p["path"],
        binary=p["payload"] == "binary",
        concurrency=p["concurrency"],
        duration_s=p["duration"],
        warmup_s=p["warmup"],
        rate=p["thresholds"]["min_rps"] if p["rate"] is None else p["rate"],
        open_concurrency=p["open_concurrency"],
        timeout_s=p["timeout"],
        wait_s=p["wait"],
        expect={"model_version": p["expect_model_version"], "model_sha256": p["expect_sha256"]},
        golden=golden,
        golden_limit=p["golden_limit"],
        replay=replay,
    )


def sampler(p: dict, port: int) -> ResourceSampler:
    """The sidecar container's memory and CPU from the Docker API; a sampler that says why when it cannot.
    Only a container that publishes ``port``, the target's, is measured: another sidecar on the edge
    must not stand in for it (one on the host's network publishes nothing: taken when named)."""
    if p["skip_memory"] and not p["container"]:
        return ResourceSampler(None, reason="skip_memory=true")
    try:
        sample = socket_sampler(p["container"], p["compose_service"], p["compose_project"], p["docker_socket"], port)
    except (OSError, ValueError, KeyError) as exc:
        return ResourceSampler(None, reason=f"Docker API on {p['docker_socket']}: {exc}")
    return ResourceSampler(sample)


def check_mode_look(plan: Plan, timeout: float) -> dict:
    """Check mode sends no load: it only asks /healthz whether the expected model answers."""
    health = check_health(plan.target, plan.expect, timeout_s=timeout)
    return {
        "check_mode": True,
        "health": {"ok": health["ok"], "problems": health["problems"]},
        "msg": f"check mode: no load sent to {plan.target.url(plan.path)}; /healthz "
        + ("answers for the expected model" if health["ok"] else "; ".join(health["problems"])),
    }


def measure(plan: Plan, thresholds: Thresholds, p: dict) -> dict:
    """Run the benchmark; its report with the thresholds applied and the seconds it took (Docker sampling included)."""
    started = time.monotonic()
    report = run_benchmark(plan, thresholds, sampler(p, plan.target.port))[0]
    report.pop("targets", None)
    report["thresholds"] = dict(thresholds.__dict__)
    report["duration"] = round(time.monotonic() - started, 3)
    return report


def missed_message(result: dict, plan: Plan) -> str:
    """The failure of a run that missed its targets: each missed check with its detail, and the way out."""
    missed = "; ".join(f"{c['name']}: {c['detail']}" for c in result["checks"] if c["status"] in ("failed", "not_run"))
    return (
        f"benchmark of {plan.target.url(plan.path)} missed its targets ({missed}); "
        "fix the service, or set fail_on_threshold=false to record the figures without failing"
    )
