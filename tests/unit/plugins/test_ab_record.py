"""The A/B record of one edge (roles/edgeinfer/tasks/ab_record.yml), as playbooks/ab.yml leaves it on the
controller: JSON, markdown and the plot of the per-window agreement, from a decision and a final report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from testbed.ansible_run import run_playbook

DECISION = {
    "verdict": "discard",
    "reasons": ["linear CKA 0.55 < 0.9", "kNN Jaccard 0.24 < 0.5"],
    "thresholds": {
        "min_windows": 500,
        "min_cka": 0.9,
        "min_knn_jaccard": 0.5,
        "max_p95_factor": 2.0,
        "max_error_windows": 0,
        "min_cosine": 0.98,
    },  # fmt: skip
    "figures": {
        "windows": 600,
        "error_windows": 0,
        "dropped_windows": 3,
        "linear_cka": 0.55,
        "knn_jaccard": 0.24,
        "cosine_mean": None,
        "p95_ms_primary": 4.0,
        "p95_ms_shadow": 5.0,
        "p95_factor": 1.25,
    },  # fmt: skip
}


def record(tmp_path: Path, series: dict[str, Any] | None) -> Path:
    records = tmp_path / "records"
    report = {"windows": 600, "linear_cka": 0.55, "knn_jaccard": 0.24}
    if series is not None:
        report["per_window"] = series
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [
            {
                "name": "record",
                "ansible.builtin.include_role": {"name": "edgeinfer", "tasks_from": "ab_record.yml"},
                "vars": {
                    "edgeinfer_records_dir": str(records),
                    "_edgeinfer_deploy_id": "20261205T120000Z-abc123",
                    "_edgeinfer_before": {"current": "v72pct-1a2b3c4d"},
                    "edgeinfer_release_source": {"release": "seed2-5e6f7a8b", "model_version": "seed2"},
                    "_edgeinfer_ab_decision": DECISION,
                    "_edgeinfer_ab_stopped": {"changed": True, "report": report, "decision": DECISION},
                    "_edgeinfer_ab_waited": {"waited": 12.5, "reached": True},
                },
            }
        ],
    }
    run = run_playbook([play], inventory="localhost,", tmp_path=tmp_path, timeout=120)
    assert run.rc == 0, run.explain()
    return records / "localhost" / "ab-20261205T120000Z-abc123"


def test_the_record_has_the_verdict_its_reasons_and_the_plot(tmp_path: Path) -> None:
    series = {"windows": 600, "windows_per_point": 1.2, "knn_jaccard": [0.2, 0.3, 0.25] * 10, "cosine": None}
    base = record(tmp_path, series)
    data = json.loads(base.with_suffix(".json").read_text())
    assert data["verdict"] == "discard" and data["promote"] is False, data
    assert data["serving"] == "v72pct-1a2b3c4d" and data["candidate"] == "seed2-5e6f7a8b"
    assert data["report"]["per_window"] == series
    md = base.with_suffix(".md").read_text()
    assert "Verdict: **discard**; the edge keeps serving v72pct-1a2b3c4d" in md, md
    assert "  - linear CKA 0.55 < 0.9" in md and "| linear CKA | 0.55 | at least 0.9 |" in md, md
    assert "![per-window agreement](ab-20261205T120000Z-abc123.png)" in md, md
    assert base.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_series_there_is_no_plot_and_the_markdown_says_why(tmp_path: Path) -> None:
    base = record(tmp_path, None)
    assert not base.with_suffix(".png").exists()
    assert "No plot: no per-window series in the report: no plot" in base.with_suffix(".md").read_text()
