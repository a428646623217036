"""Deploy and rollback through ansible-runner, for real, against a loopback edge: the Python
API for the deploys, the CLI for the rollback, with this tree as the project directory. The
outcome is read where AWX reads it: the job events and the artifacts directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

from .conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.fleet, pytest.mark.slow]

IMAGE = "edgeinfer/sidecar:0.1.0"


@pytest.fixture(scope="module")
def sidecar_image(base_image: str) -> str:
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        cmd = [sys.executable, "-m", "sidecar.build_image", "--tag", IMAGE, "--base-image", base_image, "--quiet"]
        if Path("/etc/ssl/certs/ca-certificates.crt").exists():
            cmd += ["--ca-file", "/etc/ssl/certs/ca-certificates.crt"]
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=900)
    return IMAGE


def _inventory(fleet, path: Path) -> Path:
    """The fleet's edges plus GPUSRV on this machine, in one file."""
    inv = yaml.safe_load(fleet.inventory_path.read_text())
    inv["all"]["children"]["gpusrv"] = {
        "hosts": {"gpusrv-local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    }
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def _extravars(tmp: Path, version: str, seed: int) -> dict[str, Any]:
    return {
        "edgeinfer_build_python": sys.executable,
        "edgeinfer_build_artifacts_dir": str(tmp / "artifacts"),
        "edgeinfer_build_model_version": version,
        "edgeinfer_build_demo_seed": seed,
        "edgeinfer_records_dir": str(tmp / "records"),
        "edgeinfer_image": IMAGE,
        "edgeinfer_image_delivery": "present",
        # The seed's gates, with the throughput floor lowered for a shared 2-core machine.
        "edgeinfer_benchmark_duration": 2,
        "edgeinfer_benchmark_warmup": 0.5,
        "edgeinfer_benchmark_min_rps": 50,
        "edgeinfer_health_timeout": 60,
    }


def _stats_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1, [e.get("event") for e in events][-10:]
    return stats[0]["event_data"]


def _healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def test_deploy_and_rollback_through_ansible_runner(fleet_factory, sidecar_image: str, tmp_path: Path, monkeypatch):
    fleet = fleet_factory(1)
    edge = fleet.edges[0]
    inventory = _inventory(fleet, tmp_path / "inventory.yml")
    pdd = tmp_path / "runner"
    pdd.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    monkeypatch.setenv("PATH", env["PATH"])  # ansible-runner looks ansible-playbook up on its own PATH

    # -- two deploys through the Python API (v1, then v2: v1 becomes the rollback target)
    releases = {}
    for ident, (version, seed) in {"deploy-v1": ("v1", 0), "deploy-v2": ("v2", 1)}.items():
        r = ansible_runner.run(
            private_data_dir=str(pdd),
            project_dir=str(REPO),
            playbook="playbooks/deploy.yml",
            inventory=str(inventory),
            extravars=_extravars(tmp_path, version, seed),
            envvars=env,
            ident=ident,
            quiet=True,
        )
        events = list(r.events)
        assert (r.status, r.rc) == ("successful", 0), "".join(e.get("stdout", "") + "\n" for e in events[-40:])
        stats = _stats_event(events)
        assert stats["failures"] == {} and stats["dark"] == {}
        assert edge.name in stats["changed"]
        # set_stats -> the AWX artifact: one record per edge
        record = stats["artifact_data"]["edgeinfer_records"][edge.name]
        assert record["outcome"] == "deployed" and record["model_version"] == version
        assert record["gates"]["golden"]["min_cosine"] >= 0.999
        assert record["gates"]["benchmark"]["passed"] is True
        releases[version] = record["release"]
        # the artifacts directory ansible-runner leaves: rc, status, stdout, one file per event
        art = pdd / "artifacts" / ident
        assert (art / "rc").read_text().strip() == "0"
        assert (art / "status").read_text().strip() == "successful"
        assert "PLAY RECAP" in (art / "stdout").read_text()
        assert len(list((art / "job_events").glob("*.json"))) == len(events)
        # the controller-side record beside it
        assert json.loads((tmp_path / "records" / edge.name / f"{record['deploy_id']}.json").read_text()) == record
        assert _healthz(edge.sidecar_port)["model_version"] == version

    assert releases["v1"] != releases["v2"]

    # -- rollback through the CLI, its inputs in the private data dir as AWX lays them out
    (pdd / "env").mkdir(exist_ok=True)
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(_extravars(tmp_path, "v2", 1)))
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
    cli = [
        str(bin_dir / "ansible-runner"),
        "run",
        str(pdd),
        "--project-dir",
        str(REPO),
        "-p",
        "playbooks/rollback.yml",
        "--inventory",
        str(inventory),
        "--ident",
        "rollback",
        "-j",
    ]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=900, env=dict(os.environ, **env))
    cli_events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    stats = _stats_event(cli_events)
    assert stats["failures"] == {} and stats["dark"] == {}
    record = stats["artifact_data"]["edgeinfer_records"][edge.name]
    assert record["outcome"] == "rolled_back", record
    assert record["before"]["release"] == releases["v2"]
    assert record["after"]["release"] == releases["v1"]
    art = pdd / "artifacts" / "rollback"
    assert (art / "status").read_text().strip() == "successful"
    assert _healthz(edge.sidecar_port)["model_version"] == "v1"
