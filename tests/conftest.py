"""Fixtures shared by every test: where the origin artifacts are, and a scratch dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The collection, importable as ansible_collections.edgeinfer.deploy (module_utils unit tests).
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))


def shared_dir() -> Path:
    """The read-only ``shared/`` folder that lies beside the checkout (``EDGEINFER_SHARED`` overrides)."""
    return Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def origin_dir() -> Path:
    """The real production artifacts: ONNX, encoder-only checkpoint, model_config.json."""
    d = shared_dir() / "fixtures" / "origin-v72pct"
    if not (d / "tcn_encoder_for_edgeinfer.onnx").is_file():
        pytest.fail(f"origin fixtures not found at {d}; set EDGEINFER_SHARED to the shared/ folder")
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def _docker_ok() -> bool:
    import shutil
    import subprocess

    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A running Docker engine. Missing in CI is a failure, elsewhere a skip naming the fix."""
    if not _docker_ok():
        msg = "no Docker engine answers `docker info`; run scripts/bootstrap.sh (make setup does)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def base_image(docker_engine: None) -> str:
    """The local air-gapped base image that scripts/bootstrap.sh builds."""
    import subprocess

    name = os.environ.get("EDGEINFER_BASE_IMAGE", "edgeinfer/base:bookworm")
    if subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode != 0:
        msg = f"base image {name} missing; run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return name


@pytest.fixture
def fleet_factory(tmp_path_factory: pytest.TempPathFactory):
    """Start loopback SSH fleets: ``fleet_factory(3)``; every fleet is torn down after the test."""
    from testbed.fleet import Fleet

    started: list[Fleet] = []

    def make(n: int) -> Fleet:
        f = Fleet.up(n, tmp_path_factory.mktemp("fleet"))
        started.append(f)
        return f

    yield make
    for f in started:
        f.down()


# The fixtures that put a test in the integration tier (Docker engine, loopback SSH fleet).
# Marked here from each test's fixture closure, so a test cannot forget its marker and run
# in the parallel unit tier (make test-quick) where no engine or sshd may be.
_TIER_FIXTURES = {"docker_engine": "docker", "fleet_factory": "fleet"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _TIER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and not item.get_closest_marker(marker):
                item.add_marker(marker)
