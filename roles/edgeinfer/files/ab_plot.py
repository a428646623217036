"""Draw the per-window agreement of an A/B record (playbooks/ab.yml) as a PNG, on the controller.

    python ab_plot.py records/<host>/ab-<id>.json records/<host>/ab-<id>.png

The record's report carries ``per_window`` (the sidecar's ``?per_window=true``): each window's kNN
Jaccard and, for the same network, its cosine, oldest first, binned to at most 500 points. Exit 0
with a PNG, 2 without one (the reason on stderr): no series, or no matplotlib here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def running_mean(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def main(argv: list[str]) -> int:
    record = json.loads(Path(argv[1]).read_text())
    series = (record.get("report") or {}).get("per_window") or {}
    if not series.get("knn_jaccard") and not series.get("cosine"):
        print("no per-window series in the report: no plot", file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed on the controller: no plot", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    step = series.get("windows_per_point") or 1
    thresholds = record.get("thresholds") or {}
    for name, colour, floor in (
        ("knn_jaccard", "tab:blue", thresholds.get("min_knn_jaccard")),
        ("cosine", "tab:orange", thresholds.get("min_cosine")),
    ):
        values = series.get(name)
        if not values:
            continue
        xs = [i * step for i in range(len(values))]
        # One window's overlap is a count of k neighbours: noisy; the running mean over 25 points shows the trend.
        ax.plot(xs, values, color=colour, linewidth=0.6, alpha=0.35)
        ax.plot(xs, running_mean(values, 25), color=colour, linewidth=1.5, label=f"{name} (running mean of 25)")
        if floor is not None:
            ax.axhline(float(floor), color=colour, linestyle="--", linewidth=0.8, label=f"{name} floor {floor}")
    figures = record.get("figures") or {}
    ax.set_title(
        f"{record.get('host')}: {record.get('candidate')} against {record.get('serving')}: {record.get('verdict')}"
        f" (CKA {figures.get('linear_cka')}, kNN {figures.get('knn_jaccard')})",
        fontsize=9,
    )
    ax.set_xlabel(f"paired window, oldest first ({step} windows a point)")
    ax.set_ylabel("agreement per window")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
