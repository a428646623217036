"""Fixtures of the sidecar tests: a real sidecar process per test, the origin model's release."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeinfer_contract import ModelConfig
from testbed.sidecar import Server, production_release, start_server, stop_server


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(model_dir: Path, env: dict[str, str] | None = None, wait: bool = True) -> Server:
        s = start_server(tmp_path, model_dir, env, wait)
        started.append(s)
        return s

    yield start
    for s in started:
        stop_server(s)


@pytest.fixture(scope="session")
def origin_onnx(origin_dir: Path) -> Path:
    return origin_dir / "tcn_encoder_for_edgeinfer.onnx"


@pytest.fixture(scope="session")
def origin_config(origin_dir: Path) -> ModelConfig:
    return ModelConfig.load(origin_dir / "model_config.json")


@pytest.fixture
def models(tmp_path: Path, origin_dir: Path) -> Path:
    """/models layout: releases/v72pct-<sha8> and current -> it."""
    root = tmp_path / "models"
    production_release(root, origin_dir)
    return root
