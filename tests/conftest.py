"""Fixtures shared by every test: where the origin artifacts are, and a scratch dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
