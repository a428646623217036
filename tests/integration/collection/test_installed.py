"""The collection as a user gets it: built by `ansible-galaxy collection build`, installed with
`ansible-galaxy collection install -p`, its playbooks run by FQCN from an unrelated directory
with no ansible.cfg; and the design's commands from the repository root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # Only what names the tools; no ANSIBLE_* of the caller's, no ansible.cfg of the repository.
    base = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ["HOME"], "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**base, **env}, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collections path that holds edgeinfer.deploy, installed from its tarball."""
    tmp = tmp_path_factory.mktemp("installed")
    built = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp / "dist"), str(REPO)], tmp
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = (tmp / "dist").glob("edgeinfer-deploy-*.tar.gz")
    path = tmp / "collections"
    # The dependencies (community.docker, awx.awx) are Galaxy's to resolve; this bench has no Galaxy.
    inst = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p", str(path), str(tarball)],
        tmp,
    )
    assert inst.returncode == 0, inst.stdout + inst.stderr
    assert (path / "ansible_collections" / "edgeinfer" / "deploy" / "MANIFEST.json").is_file()
    return path


@pytest.mark.parametrize("playbook", ["deploy", "rollback", "validate", "ab"])
def test_the_installed_collections_playbooks_parse_by_fqcn(installed: Path, tmp_path: Path, playbook: str) -> None:
    proc = run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "--syntax-check", f"edgeinfer.deploy.{playbook}"],
        tmp_path,
        ANSIBLE_COLLECTIONS_PATH=str(installed),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"playbook: {installed}/ansible_collections/edgeinfer/deploy/playbooks/{playbook}.yml" in proc.stdout, (
        proc.stdout
    )


def test_the_installed_validate_playbook_runs_its_role_and_module_and_refuses_an_empty_edge(
    installed: Path, tmp_path: Path
) -> None:
    """A real run, from a directory that is not the repository: the play finds its role and the
    module in the installed collection, asks the edge what it serves, and refuses the edge that
    serves nothing, naming it and the missing link."""
    root = tmp_path / "edge-root"
    inventory = tmp_path / "inventory.json"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "edgeinfer_root": str(root)}
    inventory.write_text(json.dumps({"edges": {"hosts": {"edge-empty": host}}}))
    proc = run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "edgeinfer.deploy.validate"],
        tmp_path,
        ANSIBLE_COLLECTIONS_PATH=str(installed),
        ANSIBLE_ROLES_PATH=str(tmp_path / "no-roles-here"),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "TASK [edgeinfer.deploy.edgeinfer : Validate | What the edge serves]" in out, out
    assert f"nothing is deployed on edge-empty ({root}/models/current is missing)" in out, out
    assert "edge-empty                 : ok=" in out and "failed=1" in out, out


@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml"])
def test_the_design_commands_run_from_the_repository_root(playbook: str) -> None:
    """`ansible-playbook deploy.yml` and `ansible-playbook rollback.yml` in the repository root
    are the plays of playbooks/, imported (one home for each play)."""
    proc = run(
        [str(BIN / "ansible-playbook"), "--list-tasks", playbook],
        REPO,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    direct = run(
        [str(BIN / "ansible-playbook"), "--list-tasks", f"playbooks/{playbook}"],
        REPO,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
    )
    # The same plays and tasks, whichever path names them (the first line names the file).
    assert proc.stdout.splitlines()[2:] == direct.stdout.splitlines()[2:] and "play #1" in proc.stdout, proc.stdout


def test_the_installed_benchmark_module_runs_on_an_edge_python_that_has_only_its_payload(
    installed: Path, tmp_path: Path
) -> None:
    """The load engine reaches an edge only in the module's payload (module_utils/_load and _contract):
    a system Python with none of the project's packages, in a directory outside the repository, runs
    the installed edgeinfer_benchmark against a calibration server and measures."""
    from testbed.testserver import CalibrationServer

    engine = installed / "ansible_collections" / "edgeinfer" / "deploy" / "plugins" / "module_utils" / "_load"
    assert {p.name for p in engine.glob("*.py")} == {p.name for p in (REPO / "edgeinfer_load").glob("*.py")}
    edge_python = "/usr/bin/python3"
    for package in ("edgeinfer_load", "edgeinfer_contract"):
        bare = subprocess.run([edge_python, "-I", "-c", f"import {package}"], capture_output=True, check=False)
        assert bare.returncode != 0, f"the edge Python has {package} of its own: this test would prove nothing"
    server = CalibrationServer()
    try:
        proc = run(
            [
                str(BIN / "ansible"),
                "localhost",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={edge_python}",
                "-m",
                "edgeinfer.deploy.edgeinfer_benchmark",
                "-a",
                f"url={server.url} duration=1 warmup=0 rate=50 concurrency=2 skip_memory=true",
            ],
            tmp_path,
            ANSIBLE_COLLECTIONS_PATH=str(installed),
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_STDOUT_CALLBACK="json",
        )
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["passed"] is True and result["phases"]["open"]["intended"] == 50, result
    assert result["health"]["model"]["model_version"] == "calibration", result
