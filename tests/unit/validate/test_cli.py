"""edgeinfer-validate end to end against the calibration server: reports, exit codes, --quick."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgeinfer_load as lg
from edgeinfer_validate import cli

SHORT = ["--duration", "1", "--warmup", "0", "--no-progress"]


def validate(server, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "edgeinfer_validate", "--host", server.target.host, "--port", str(server.target.port)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_quick_run_writes_json_markdown_and_plots(server, tmp_path):
    """--quick (it crashed in the old validator) takes about 10 s and writes a report a person can read."""
    out = tmp_path / "report"
    proc = validate(server, "--quick", "--skip-memory", "--report", str(out), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True and report["exit_code"] == 0
    assert 6 <= report["elapsed_s"] <= 20
    closed, opened = report["phases"]["closed"], report["phases"]["open"]
    assert closed["requests"] > 1000 and closed["failed"] == 0
    assert opened["rate"] == 250 and opened["intended"] == opened["requests"] == 1000
    assert report["latency_from"] == "open"
    assert {c["name"]: c["status"] for c in report["checks"]}["memory"] == "skipped"
    assert json.loads((out / "report.json").read_text())["phases"]["closed"]["requests"] == closed["requests"]
    md = (out / "report.md").read_text()
    assert "PASSED" in md and "| latency | **passed** |" in md and "![percentiles](percentiles.png)" in md
    for name in ("latency_over_time.png", "percentiles.png", "throughput.png"):
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
    assert "[closed]" in proc.stderr  # the progress line


@pytest.mark.parametrize(
    ("server_args", "cli_args", "code"),
    [
        ([], ["--skip-memory"], 0),
        ([], ["--docker", "none"], 128),  # memory not measured is a failure unless skipped
        (["--health-status", "503"], ["--skip-memory"], 4),
        ([], ["--skip-memory", "--expect-model-version", "v72pct"], 4),
        (["--delay-ms", "5"], ["--skip-memory", "--p95-ms", "2"], 8),
        ([], ["--skip-memory", "--min-rps", "1e9", "--rate", "100"], 16),
        (["--error-every", "20"], ["--skip-memory"], 32),
        (
            ["--bad-body-every", "1000000"],
            ["--skip-memory", "--rate", "0", "--p95-ms", "0.0001", "--min-rps", "1e9"],
            8 + 16,
        ),
    ],
)
def test_exit_code_names_what_failed(server_factory, server_args, cli_args, code, tmp_path):
    s = server_factory(*server_args)
    proc = validate(s, *SHORT, *cli_args, "--json", str(tmp_path / "r.json"))
    assert proc.returncode == code, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit_code"] == code
    failed = {c["name"] for c in report["checks"] if c["status"] == "failed"}
    assert sum(cli.EXIT_BITS[n] for n in failed) == code
    if code == 4:
        assert "phases" not in report  # no load against an unhealthy sidecar


def test_golden_replay_passes_and_fails_on_cosine(server, tmp_path):
    from edgeinfer_validate.testserver import HEALTH, LATENT

    window = lg.synthetic_window()
    good = {
        "input_units": "raw",
        "normalization_hash": HEALTH["normalization_hash"],
        "windows": [window] * 3,
        "embeddings": [LATENT] * 3,
    }
    (tmp_path / "good.json").write_text(json.dumps(good))
    proc = validate(
        server, *SHORT, "--skip-memory", "--golden", str(tmp_path / "good.json"), "--json", str(tmp_path / "g.json")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    q = json.loads((tmp_path / "g.json").read_text())["quality"]["golden"]
    assert q["windows"] == 3 and q["min_cosine"] == pytest.approx(1.0, abs=1e-6)
    # the pass says what it measured, not only that the answers were numbers
    assert "PASSED   quality     golden cosine min 1.000000 >= 0.99 over 3 windows" in proc.stdout

    bad = dict(good, embeddings=[[-v for v in LATENT]] * 3)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    proc = validate(server, *SHORT, "--skip-memory", "--golden", str(tmp_path / "bad.json"))
    assert proc.returncode == 64, proc.stdout
    assert "cosine" in proc.stdout

    other = dict(good, normalization_hash="0" * 64)
    (tmp_path / "other.json").write_text(json.dumps(other))
    proc = validate(server, *SHORT, "--skip-memory", "--golden", str(tmp_path / "other.json"))
    assert proc.returncode == 4 and "another model" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", "0"],
        ["--min-success", "99"],
        ["--min-success", "1"],  # the rate must be above it: 1 could never pass
        ["--concurrency", "0"],
        ["--port", "70000"],
        ["--golden", "/nonexistent/golden.json"],
        ["--no-such-flag"],
    ],
)
def test_usage_errors_exit_2(server, args):
    proc = validate(server, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr


def test_help_documents_the_exit_codes_and_defaults():
    proc = subprocess.run([sys.executable, "-m", "edgeinfer_validate", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    flat = " ".join(proc.stdout.split())
    for name, bit in cli.EXIT_BITS.items():
        assert f"{bit} {name}" in flat
    assert "most requests in flight in the open loop (default 64)" in flat
    assert "a request slower than this fails (default 5)" in flat


def test_a_load_not_delivered_fails_latency_not_success(server_factory, tmp_path):
    """At 100 req/s on one connection to a 50 ms server, most of the schedule is never sent: the server did
    not fail them (success stays 100 %), but the rate it was tested at was not the one asked."""
    s = server_factory("--delay-ms", "50")
    args = ["--skip-memory", "--rate", "100", "--open-concurrency", "1", "--p95-ms", "100000", "--min-rps", "1"]
    proc = validate(s, *SHORT, *args, "--json", str(tmp_path / "r.json"))
    assert proc.returncode == cli.EXIT_BITS["latency"], proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    opened = report["phases"]["open"]
    assert opened["unsent"] >= 50 and report["unsent"] == opened["unsent"]
    assert report["success_rate"] == 1.0 and opened["success_rate"] == 1.0
    assert "FAILED   latency     load not delivered as asked: the open loop sent" in proc.stdout


def test_cli_and_module_share_one_engine(repo_root):
    """The CLI measures with edgeinfer_load; the module's _load is the same files, linked."""
    assert str(repo_root / "edgeinfer_load") == cli.ENGINE
    links = sorted((repo_root / "plugins" / "module_utils" / "_load").glob("*.py"))
    assert links and all(p.resolve().parent == repo_root / "edgeinfer_load" for p in links)
