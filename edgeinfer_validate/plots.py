"""The report's three PNG plots: latency over time, latency by percentile, throughput.

matplotlib is imported when a plot is drawn, not before: without it (it is in the
``dev`` extra) the report is written without plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import edgeinfer_load as lg

PLOTS = ("latency_over_time.png", "percentiles.png", "throughput.png")
COLORS = {"closed": "tab:blue", "open": "tab:orange"}


def _every(n: int, most: int) -> int:
    return max(1, math.ceil(n / most))


def plain_ms_log_axis(ax: Any) -> None:
    """A log latency axis labelled in plain milliseconds (1, 2, 5, 10, ...), not as powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _requests_scatter(ax: Any, name: str, ph: lg.LoadResult) -> None:
    """Every request (thinned to 20k points), failures in red."""
    step = _every(ph.requests, 20000)
    xs, ys = ph.completed_at_s[::step], ph.latencies_ms[::step]
    ok = ph.ok[::step]
    ax.scatter(
        [x for x, g in zip(xs, ok, strict=True) if g],
        [y for y, g in zip(ys, ok, strict=True) if g],
        s=2,
        alpha=0.25,
        color=COLORS[name],
        label="request",
        rasterized=True,
    )
    bad = [(x, y) for x, y, g in zip(xs, ys, ok, strict=True) if not g]
    if bad:
        ax.scatter(*zip(*bad, strict=True), s=6, color="red", label="failed request")


def _per_second_lines(ax: Any, ph: lg.LoadResult) -> None:
    """p50 and p99 of each second.

    The lines run over whole seconds only: the phase's last, partial second holds its
    stragglers, whose percentiles are not a second's worth; they are marked apart.
    """
    tl = ph.timeline()
    full = [b for b in tl if not b["partial"]]
    ax.plot([b["t_s"] + 0.5 for b in full], [b["p50_ms"] for b in full], color="black", lw=1.2, label="p50 per second")
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


def _latency_over_time(plt: Any, phases: dict[str, lg.LoadResult], targets: dict[str, Any], path: Path) -> None:
    """One panel per phase: every request, failures in red, p50/p99 per second, the p95 target."""
    fig, axes = plt.subplots(len(phases), 1, figsize=(10, 3.4 * len(phases)), squeeze=False, sharey=True)
    for ax, (name, ph) in zip(axes[:, 0], phases.items(), strict=True):
        _requests_scatter(ax, name, ph)
        _per_second_lines(ax, ph)
        ax.axhline(targets["p95_ms"], color="grey", lw=0.8, ls=":", label=f"p95 target {targets['p95_ms']:g} ms")
        plain_ms_log_axis(ax)
        title = f"closed loop, {ph.concurrency} connections" if name == "closed" else f"open loop, {ph.rate:g} req/s"
        ax.set_title(title)
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    axes[-1, 0].set_xlabel("time since the phase started (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curve_points() -> list[float]:
    qs, q = [], 0.0
    while q < 0.99999:
        qs.append(q)
        q = 1 - (1 - q) / 1.25
    return qs


def _percentiles(plt: Any, phases: dict[str, lg.LoadResult], targets: dict[str, Any], path: Path) -> None:
    """The percentile curve on a 1/(1-q) axis, so that the tail gets the room."""
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
                color=COLORS[name],
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _throughput(plt: Any, phases: dict[str, lg.LoadResult], targets: dict[str, Any], path: Path) -> None:
    """Requests completed per second, successes and failures stacked, the phases side by side."""
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
            color=COLORS[name],
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_plots(report: dict[str, Any], phases: dict[str, lg.LoadResult], out: Path) -> list[Path]:
    """The three plots in ``out``, in the order of PLOTS; ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for draw, name in zip((_latency_over_time, _percentiles, _throughput), PLOTS, strict=True):
        written.append(out / name)
        draw(plt, phases, report["targets"], written[-1])
    return written
