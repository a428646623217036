"""Shared fixtures: an untrained checkpoint, its normalization, and the DFC test double."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeinfer_contract import Normalization

DOUBLES = Path(__file__).resolve().parents[2] / "doubles"
os.environ.setdefault("MODEL_TOOLS_QUIET", "1")


def _forget_dfc() -> None:
    for name in [m for m in sys.modules if m == "hailo_sdk_client" or m.startswith("hailo_sdk_client.")]:
        del sys.modules[name]


@pytest.fixture
def dfc_double(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``hailo_sdk_client`` is the test double in tests/doubles."""
    _forget_dfc()
    monkeypatch.syspath_prepend(str(DOUBLES))
    yield
    _forget_dfc()


@pytest.fixture
def no_dfc(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import hailo_sdk_client`` fails, as on a machine without the DFC."""
    _forget_dfc()
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_tools.release import init_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "untrained.pth"
    init_checkpoint(path, seed=3)
    return path


@pytest.fixture(scope="session")
def loaded(checkpoint: Path):  # noqa: ANN201
    from model_tools.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


@pytest.fixture(scope="session")
def norm(loaded) -> Normalization:  # noqa: ANN001
    assert loaded.normalization is not None
    return loaded.normalization


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from model_tools.signing import keygen

    d = tmp_path_factory.mktemp("keys")
    r = keygen(d / "release.pem")
    return Path(r["private_key"]), Path(r["public_key"])


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, keys: tuple[Path, Path]) -> tuple[Path, dict]:
    """One signed release built with the DFC double; tests that tamper copy it first."""
    from model_tools.release import build

    _forget_dfc()
    sys.path.insert(0, str(DOUBLES))
    try:
        out = tmp_path_factory.mktemp("rel") / "release"
        result = build(checkpoint, out, "0.1.0-test", signing_key=keys[0])
    finally:
        sys.path.remove(str(DOUBLES))
        _forget_dfc()
    return out, result
