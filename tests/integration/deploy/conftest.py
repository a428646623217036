"""Fixtures of the deploy tests: the bench's image and releases, built once a run, and a fresh
loopback fleet per test (testbed.deploy)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from testbed.ansible_run import REPO, run_playbook
from testbed.deploy import BENCH_RELEASES, IMAGE, DeployBench, bench_vars, gpusrv_inventory, make_bench


@pytest.fixture(scope="session")
def sidecar_image(base_image: str) -> str:
    """The sidecar image of this tree, which the deploys run: built once per test run (from
    Docker's cache when nothing changed), under a lock that parallel test workers share."""
    from filelock import FileLock

    ca = "/etc/ssl/certs/ca-certificates.crt"
    cmd = [sys.executable, "-m", "sidecar.build_image", "--tag", IMAGE, "--base-image", base_image, "--quiet"]
    if Path(ca).exists():
        cmd += ["--ca-file", ca]
    with FileLock(Path(tempfile.gettempdir()) / "edgeinfer-sidecar-image.lock"):
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return IMAGE


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """GPUSRV's artifacts dir for the whole run: the bench's signing key and the releases of
    BENCH_RELEASES, built once by playbooks/build.yml before the first deploy, under a lock
    that the pytest-xdist workers share; each deploy then finds its release built, as a
    second deploy of a version does."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # every worker's basetemp lies in the run's own
        root = root.parent
    artifacts = root / "artifacts"
    with FileLock(str(root / "artifacts.lock")):
        built = artifacts / "bench-releases.json"
        if not built.exists():
            tmp = root / "artifacts-build"
            tmp.mkdir(parents=True, exist_ok=True)
            base = bench_vars(artifacts, tmp / "records", IMAGE)
            for version, seed in BENCH_RELEASES.items():
                extra = dict(base, edgeinfer_build_model_version=version, edgeinfer_build_demo_seed=seed)
                run = run_playbook(REPO / "playbooks" / "build.yml", gpusrv_inventory(tmp), extra, tmp_path=tmp)
                assert run.rc == 0, run.explain()
            built.write_text(json.dumps(BENCH_RELEASES) + "\n")
    return artifacts


@pytest.fixture
def deploy_bench(fleet_factory, sidecar_image: str, artifacts_dir: Path, tmp_path: Path, request) -> DeployBench:
    """A fresh loopback fleet (one edge unless parametrized) with nothing deployed yet."""
    return make_bench(fleet_factory(getattr(request, "param", 1)), artifacts_dir, sidecar_image, tmp_path)
