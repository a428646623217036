"""The fault matrix's bench: one fleet of three loopback edges serving v1, shared by the
module's cases, each of which must leave every edge serving a model that passed its gates.

The session-wide fixtures of the deploy tests (the sidecar image, the artifacts built
once per model version) are reused from tests/integration/deploy/conftest.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.deploy import make_bench
from testbed.fleet import Fleet, remove_compose_project
from tests.integration.deploy.conftest import artifacts_dir, sidecar_image  # noqa: F401 - fixtures

# edge-3's install root is a tmpfs of its own, mounted before v1 lands there, so that the
# disk-full case can fill it without touching this machine's disk.
TMPFS_EDGE = "edge-3"
TMPFS_SIZE = "160m"


def mount_tmpfs(path: str, size: str) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path], check=True)


def unmount(path: str) -> None:
    subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture(scope="module")
def fleet3(sidecar_image: str, artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    """Three edges serving v1 (deployed once), shared by a module's cases."""
    tmp = tmp_path_factory.mktemp("faults")
    fleet = Fleet.up(3, tmp / "fleet")
    mounted = fleet.edge(TMPFS_EDGE).root
    try:
        mount_tmpfs(mounted, TMPFS_SIZE)
        bench = make_bench(fleet, artifacts_dir, sidecar_image, tmp)
        # The bench's starting state, not a case: all three edges in one batch.
        run = bench.deploy("v1", seed=1, edgeinfer_serial=["100%"])
        assert run.rc == 0, run.explain()
        yield bench
    finally:
        for edge in fleet.edges:
            remove_compose_project(edge.compose_project)
        unmount(mounted)
        fleet.down()


@pytest.fixture(scope="module")
def matrix(fleet3):
    """The shared fleet and what each of its edges serves (v1 everywhere to begin with)."""
    from tests.integration.faults.matrix import Matrix

    v1 = fleet3.release_of("v1")
    return Matrix(fleet3, {e.name: v1 for e in fleet3.fleet.edges})
