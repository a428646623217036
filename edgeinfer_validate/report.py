"""The report a person reads: report.json, report.md and three PNG plots.

Plots need matplotlib (the ``dev`` extra); without it the JSON and markdown
are still written and the markdown says the plots were not drawn.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import edgeinfer_load as lg

PLOTS = ("latency_over_time.png", "percentiles.png", "throughput.png")


def _f(v: Any, unit: str = "", nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def to_markdown(report: dict[str, Any], plots: list[str] | None = None, plot_note: str = "") -> str:
    lines = [
        f"# EdgeInfer validation: {'PASSED' if report['passed'] else 'FAILED'} (exit {report['exit_code']})",
        "",
        f"- target: `{report['target']}`, started {report['started_at']}, {report['elapsed_s']} s",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']['hostname']} ({report['machine']['platform']}, "
        f"{report['machine']['cpus']} CPUs, Python {report['machine']['python']})",
    ]
    model = (report.get("health") or {}).get("model") or {}
    if model:
        lines.append(
            f"- model: `{model.get('model_version')}` on `{model.get('backend')}`, sha256 "
            f"`{str(model.get('model_sha256'))[:12]}`, stamp `{model.get('embedding_stamp')}`"
        )
    lines += ["", "## Checks", "", "| check | status | value | target | detail |", "|---|---|---|---|---|"]
    for c in report["checks"]:
        lines.append(f"| {c['name']} | **{c['status']}** | {_f(c['value'])} | {_f(c['target'])} | {c['detail']} |")
    phases = report.get("phases") or {}
    if phases:
        lines += [
            "",
            "## Load phases",
            "",
            "Latencies in ms over **all** requests, failures included; the open loop's are measured from each "
            "request's intended send time (coordinated omission corrected), its uncorrected figures from the "
            "actual send.",
            "",
            "| phase | requests | failed | req/s | p50 | p95 | p99 | p99.9 | max | failures by kind |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, p in phases.items():
            lat = p["latency"]
            label = f"closed, {p['concurrency']} conns" if name == "closed" else f"open, {p['rate']:g} req/s"
            kinds = ", ".join(f"{k}: {v}" for k, v in p["failures"].items()) or "none"
            lines.append(
                f"| {label} | {p['requests']} | {p['failed']} | {_f(p['rps'], nd=1)} | {_f(lat['p50_ms'])} | "
                f"{_f(lat['p95_ms'])} | {_f(lat['p99_ms'])} | {_f(lat['p999_ms'])} | {_f(lat['max_ms'])} | {kinds} |"
            )
            if name == "open":
                u = p["uncorrected_latency"]
                lines.append(
                    f"| open, uncorrected | | | | {_f(u['p50_ms'])} | {_f(u['p95_ms'])} | {_f(u['p99_ms'])} | "
                    f"{_f(u['p999_ms'])} | {_f(u['max_ms'])} | |"
                )
    res = report.get("resources")
    if res:
        lines += ["", "## Sidecar container", ""]
        if res["measured"]:
            lines.append(
                f"memory peak {_f(res['memory_peak_mb'])} MiB (mean {_f(res['memory_mean_mb'])}), CPU peak "
                f"{_f(res['cpu_peak_pct'])} % (mean {_f(res['cpu_mean_pct'])} %, 100 % = one core), "
                f"{res['samples']} samples during the load"
            )
        else:
            lines.append(f"not measured: {res['reason']}")
    q = report.get("quality")
    if q and q.get("golden"):
        gr = q["golden"]
        lines += [
            "",
            "## Golden set",
            "",
            f"{gr['windows']} windows, cosine min {gr['min_cosine']}, mean {gr['mean_cosine']}, "
            f"{gr['below_min']} below {gr['threshold']}",
        ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    elif plot_note:
        lines += ["", f"_Plots not drawn: {plot_note}_"]
    return "\n".join(lines) + "\n"


def _every(n: int, most: int) -> int:
    return max(1, math.ceil(n / most))


def plain_ms_log_axis(ax: Any) -> None:
    """A log latency axis labelled in plain milliseconds (1, 2, 5, 10, ...), not as powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def draw_plots(report: dict[str, Any], phases: dict[str, lg.LoadResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    colors = {"closed": "tab:blue", "open": "tab:orange"}
    targets = report["targets"]

    # 1. latency over time: every request (thinned to 20k points), failures in red, p50/p99 per second.
    fig, axes = plt.subplots(len(phases), 1, figsize=(10, 3.4 * len(phases)), squeeze=False, sharey=True)
    for ax, (name, ph) in zip(axes[:, 0], phases.items(), strict=True):
        step = _every(ph.requests, 20000)
        xs, ys = ph.completed_at_s[::step], ph.latencies_ms[::step]
        ok = ph.ok[::step]
        ax.scatter(
            [x for x, g in zip(xs, ok, strict=True) if g],
            [y for y, g in zip(ys, ok, strict=True) if g],
            s=2,
            alpha=0.25,
            color=colors[name],
            label="request",
            rasterized=True,
        )
        bad = [(x, y) for x, y, g in zip(xs, ys, ok, strict=True) if not g]
        if bad:
            ax.scatter(*zip(*bad, strict=True), s=6, color="red", label="failed request")
        # The per-second lines over whole seconds only: the phase's last, partial second holds
        # its stragglers, whose percentiles are not a second's worth; they are marked apart.
        tl = ph.timeline()
        full = [b for b in tl if not b["partial"]]
        ax.plot(
            [b["t_s"] + 0.5 for b in full], [b["p50_ms"] for b in full], color="black", lw=1.2, label="p50 per second"
        )
        ax.plot(
            [b["t_s"] + 0.5 for b in full],
            [b["p99_ms"] for b in full],
            color="black",
            lw=1.2,
            ls="--",
            label="p99 per second",
        )
        part = [b for b in tl if b["partial"] and b["requests"]]
        if part:
            ax.plot(
                [b["t_s"] + b["seconds"] / 2 for b in part] * 2,
                [b["p50_ms"] for b in part] + [b["p99_ms"] for b in part],
                "o",
                mfc="none",
                color="black",
                label="p50, p99 of the last, partial second",
            )
        ax.axhline(targets["p95_ms"], color="grey", lw=0.8, ls=":", label=f"p95 target {targets['p95_ms']:g} ms")
        plain_ms_log_axis(ax)
        title = f"closed loop, {ph.concurrency} connections" if name == "closed" else f"open loop, {ph.rate:g} req/s"
        ax.set_title(title)
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    axes[-1, 0].set_xlabel("time since the phase started (s)")
    fig.tight_layout()
    written.append(out / PLOTS[0])
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    # 2. percentile curve on an 1/(1-q) axis, so that the tail gets the room.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, ph in phases.items():
        for samples, style, label in ((ph.latencies_ms, "-", name), (ph.uncorrected_ms, ":", f"{name}, uncorrected")):
            if not samples:
                continue
            s = sorted(samples)
            n = len(s)
            qs = [q for q in _curve_points() if q < 1 - 1 / n] + [1 - 1 / (2 * n)]
            ax.plot(
                [1 / (1 - q) for q in qs],
                [lg.percentile(s, q * 100) for q in qs],
                style,
                color=colors[name],
                label=label,
            )
    ax.set_xscale("log")
    ticks = [0.5, 0.9, 0.99, 0.999, 0.9999]
    ax.set_xticks([1 / (1 - q) for q in ticks], [f"{q * 100:g}%" for q in ticks])
    ax.axhline(targets["p95_ms"], color="grey", lw=0.8, ls=":", label=f"p95 target {targets['p95_ms']:g} ms")
    ax.set_xlabel("percentile (all requests, failures included)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency by percentile")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / PLOTS[1])
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    # 3. throughput per second, successes and failures.
    fig, ax = plt.subplots(figsize=(10, 4))
    offset = 0.0
    for name, ph in phases.items():
        tl = ph.timeline()
        xs = [offset + b["t_s"] for b in tl]
        ax.bar(
            xs,
            [b["requests"] - b["failures"] for b in tl],
            width=0.9,
            align="edge",
            color=colors[name],
            label=f"{name}: successful",
        )
        ax.bar(
            xs,
            [b["failures"] for b in tl],
            bottom=[b["requests"] - b["failures"] for b in tl],
            width=0.9,
            align="edge",
            color="red",
            label=f"{name}: failed" if any(b["failures"] for b in tl) else None,
        )
        offset += len(tl) + 1
    ax.axhline(targets["min_rps"], color="grey", lw=0.8, ls=":", label=f"target {targets['min_rps']:g} req/s")
    ax.set_xlabel("second of the run (closed loop, then open loop)")
    ax.set_ylabel("requests completed in that second")
    ax.set_title("throughput")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / PLOTS[2])
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def _curve_points() -> list[float]:
    qs, q = [], 0.0
    while q < 0.99999:
        qs.append(q)
        q = 1 - (1 - q) / 1.25
    return qs


def write_report(report: dict[str, Any], phases: dict[str, lg.LoadResult], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    plots: list[Path] = []
    note = ""
    if not phases:
        note = "no load phase ran"
    else:
        try:
            plots = draw_plots(report, phases, out)
        except ImportError as exc:
            note = f"matplotlib is not installed ({exc}); pip install matplotlib"
    md = out / "report.md"
    md.write_text(to_markdown(report, [str(p) for p in plots], note))
    return written + [md] + plots
