"""The report a person reads: report.json, report.md and three PNG plots (:mod:`.plots`).

Plots need matplotlib (the ``dev`` extra); without it the JSON and markdown
are still written and the markdown says the plots were not drawn.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import edgeinfer_load as lg

from .plots import draw_plots


def _f(v: Any, unit: str = "", nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def _header(report: dict[str, Any]) -> list[str]:
    """The verdict, then what was measured, from where, with what, and which model answered."""
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
    return lines


def _checks(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Checks", "", "| check | status | value | target | detail |", "|---|---|---|---|---|"]
    for c in report["checks"]:
        lines.append(f"| {c['name']} | **{c['status']}** | {_f(c['value'])} | {_f(c['target'])} | {c['detail']} |")
    return lines


def _load_phases(phases: dict[str, Any]) -> list[str]:
    """One row per phase; the open loop also gets a row of its figures without the omission correction."""
    lines = [
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
    return lines


def _resources(res: dict[str, Any]) -> list[str]:
    lines = ["", "## Sidecar container", ""]
    if res["measured"]:
        lines.append(
            f"container `{res.get('container') or 'unnamed'}`: memory peak {_f(res['memory_peak_mb'])} MiB "
            f"(mean {_f(res['memory_mean_mb'])}), CPU peak {_f(res['cpu_peak_pct'])} % "
            f"(mean {_f(res['cpu_mean_pct'])} %, 100 % = one core), "
            f"{res['samples']} samples during the load"
        )
    else:
        lines.append(f"not measured: {res['reason']}")
    return lines


def _golden(gr: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Golden set",
        "",
        f"{gr['windows']} windows, cosine min {gr['min_cosine']}, mean {gr['mean_cosine']}, "
        f"{gr['below_min']} below {gr['threshold']}",
    ]


def to_markdown(report: dict[str, Any], plots: list[str] | None = None, plot_note: str = "") -> str:
    """report.md: the verdict and the checks first, then each section the report has figures for."""
    lines = _header(report) + _checks(report)
    phases = report.get("phases") or {}
    if phases:
        lines += _load_phases(phases)
    res = report.get("resources")
    if res:
        lines += _resources(res)
    q = report.get("quality")
    if q and q.get("golden"):
        lines += _golden(q["golden"])
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    elif plot_note:
        lines += ["", f"_Plots not drawn: {plot_note}_"]
    return "\n".join(lines) + "\n"


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
