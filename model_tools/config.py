"""``model_config.json``: the production export's fields, plus normalization hash, embedding stamp and provenance."""

from __future__ import annotations

import copy
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinfer_contract import (
    CHANNELS,
    GUIDE_NORMALIZATION,
    INPUT_NAME,
    OUTPUT_NAME,
    WINDOW,
    ContractError,
    ModelConfig,
    Normalization,
    embedding_stamp,
)

from . import __version__
from .errors import InputError
from .model import Architecture

# Placeholder normalization for demo models made by ``init``. A trained model brings its own.
DEMO_NORMALIZATION = GUIDE_NORMALIZATION


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_commit() -> dict[str, Any] | None:
    """The commit of the checkout model_tools runs from, when it is a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "model_tools"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"commit": head.stdout.strip(), "model_tools_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(opset: int | None, source_sha256: str | None, source_name: str | None, **extra: Any) -> dict[str, Any]:
    import numpy
    import onnx
    import onnxruntime
    import torch

    return {
        "created": now_iso(),
        "model_tools": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "opset": opset,
        "source_checkpoint": source_name,
        "source_checkpoint_sha256": source_sha256,
        "git": git_commit(),
        **extra,
    }


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a model_config.json (the production model's or ours) and check it with the release format."""
    try:
        cfg = ModelConfig.load(path)
    except ContractError as exc:
        # The contract's messages about the file itself ("X does not exist") name it already.
        where = "model_config (--config)" if exc.field == "model_config" else f"model_config {path}: {exc.field}"
        raise InputError(f"{where}: {exc.message}", field=exc.field) from None
    return cfg.raw


def normalization_of(config: dict[str, Any] | None) -> Normalization | None:
    if not config or "normalization" not in config:
        return None
    try:
        return Normalization.from_dict(config["normalization"])
    except ContractError as exc:
        raise InputError(f"model_config: {exc}", field=exc.field) from None


def build_model_config(
    *,
    norm: Normalization,
    model_id: str,
    model_version: str,
    arch: Architecture,
    prov: dict[str, Any],
    untrained: bool,
    files: dict[str, Any],
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A model_config for a release; the fields of ``base`` (such as the production export's) are kept, ours overwrite
    theirs."""
    cfg: dict[str, Any] = copy.deepcopy(base) if base else {}
    export_info = dict(cfg.get("export_info") or {})
    export_info.update(
        timestamp=prov["created"],
        export_version=export_info.get("export_version", "2.0.0"),
        model_version=model_version,
        model_id=model_id,
        untrained=untrained,
        exporter=f"model_tools {__version__}",
    )
    if untrained:
        export_info["model_accuracy"] = "untrained (seeded random weights; not a trained model)"
        export_info.pop("improvement", None)
    cfg["export_info"] = export_info
    specs = dict(cfg.get("model_specs") or {})
    specs.update(
        input_shape=[1, WINDOW, CHANNELS],
        output_shape=[1, arch.latent_dim],
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_format="normalized_imu_window",
        output_format="latent_embeddings",
        sequence_length=arch.sequence_length,
        latent_dimension=arch.latent_dim,
    )
    cfg["model_specs"] = specs
    cfg["architecture"] = arch.to_dict()
    cfg["normalization"] = norm.to_dict()
    cfg["normalization_hash"] = norm.hash()
    cfg["embedding_stamp"] = embedding_stamp(model_id, arch.latent_dim, norm.hash())
    deployment = dict(cfg.get("deployment") or {})
    deployment.setdefault("target_platform", "raspberry_pi_5_hailo_8")
    deployment.setdefault(
        "performance_requirements", {"latency_p95_ms": 50, "throughput_req_sec": 250, "memory_mb": 512}
    )
    deployment.pop("next_steps", None)
    cfg["deployment"] = deployment
    cfg["files"] = files
    cfg["provenance"] = prov
    ModelConfig.from_dict(cfg)  # what the sidecar will do; fails here rather than there
    return cfg
