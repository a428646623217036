"""edgeinfer.deploy.edgeinfer_benchmark run for real through ansible, in normal and check mode."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def adhoc(server, args: str, *extra: str) -> tuple[int, dict]:
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_NOCOLOR="1",
    )
    cmd = [
        str(REPO / ".venv" / "bin" / "ansible"),
        "localhost",
        "-c",
        "local",
        "-m",
        "edgeinfer.deploy.edgeinfer_benchmark",
        "-a",
        f"url={server.url} duration=1 warmup=0.2 {args}",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    out = json.loads(proc.stdout)
    return proc.returncode, out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_module_measures_and_passes(server):
    # Thresholds any machine meets: the test judges the module, not this machine's speed (make bench does).
    rc, r = adhoc(server, """skip_memory=true concurrency=4 rate=200 thresholds='{"p95_ms": 2000, "min_rps": 20}'""")
    assert rc == 0, r.get("msg")
    assert r["changed"] is False and r["passed"] is True and r["failed_checks"] == []
    assert r["phases"]["open"]["intended"] == 200 and r["phases"]["open"]["requests"] == 200
    assert r["phases"]["closed"]["requests"] > 20
    assert r["throughput_rps"] > 20 and 0 < r["latency_p95_ms"] < 2000
    assert {c["name"]: c["status"] for c in r["checks"]}["memory"] == "skipped"
    assert r["health"]["model"]["model_version"] == "calibration"


def test_module_in_check_mode_reads_health_and_sends_no_load(server):
    before = server.stats()["requests"]
    rc, r = adhoc(server, "skip_memory=true concurrency=4 rate=200", "--check")
    assert rc == 0, r.get("msg")
    assert r["check_mode"] is True and r["changed"] is False and r["passed"] is False
    assert r["health"]["ok"] is True and "no load sent" in r["msg"]
    assert server.stats()["requests"] - before <= 2, server.stats()  # /healthz, not a load


def test_module_fails_with_the_figures_when_a_threshold_is_missed(server_factory):
    s = server_factory("--error-every", "10")
    rc, r = adhoc(s, "skip_memory=true rate=0 thresholds={'p95_ms':50,'min_success_rate':0.99}")
    assert rc != 0 and r["failed"] is True
    assert r["failed_checks"] == ["success"]
    assert "fail_on_threshold=false" in r["msg"]
    assert r["phases"]["closed"]["failures"]["status_500"] > 0  # the figures travel with the failure
    assert r["success_rate"] == pytest.approx(0.9, abs=0.01)


def test_module_records_without_failing_when_asked(server_factory):
    s = server_factory("--health-status", "503")
    rc, r = adhoc(s, "fail_on_threshold=false")
    assert rc == 0 and r["passed"] is False
    assert r["failed_checks"] == ["health"]
    assert "503" in r["health"]["problems"][0]


def test_module_without_docker_container_fails_memory(server):
    rc, r = adhoc(server, "fail_on_threshold=false rate=0 docker_socket=/nonexistent.sock")
    assert rc == 0 and "memory" in r["failed_checks"]
    assert r["resources"]["measured"] is False and r["memory_peak_mb"] is None


def test_module_refuses_bad_options_naming_the_fix(server):
    rc, r = adhoc(server, "thresholds={'min_success_rate':99}")
    assert rc != 0 and "0.99" in r["msg"]
    # NaN would pass every comparison and an infinite duration never end: refused before any request.
    rc, r = adhoc(server, "duration=nan thresholds={'p95_ms':'inf'}")
    assert rc != 0 and "duration=nan must be a finite number" in r["msg"], r
    assert "thresholds.p95_ms=inf must be a finite number" in r["msg"], r
    # The load engine's bounds, as the CLI's: a run that would not end within a day, or could not be sent.
    rc, r = adhoc(server, "duration=86401 timeout=0 rate=200000 min_cosine=2 thresholds={'max_memory_mb':0}")
    assert rc != 0, r
    for said in (
        "duration=86401.0 must be a finite number of seconds above 0, at most 86400",
        "timeout=0.0 must be a finite number of seconds above 0, at most 3600",
        "rate=200000.0 must be 0 (no open loop) or requests/s up to 100000",
        "min_cosine=2.0 must be a cosine from -1 to 1",
        "thresholds.max_memory_mb=0.0 must be a finite number of MiB above 0",
    ):
        assert said in r["msg"], r["msg"]
    rc, r = adhoc(server, "thresholds={'min_rps':150000}")
    assert rc != 0 and "rate defaults to thresholds.min_rps (150000 req/s)" in r["msg"], r
