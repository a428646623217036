"""The quality floor of each way of serving, asked by every golden check."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from .layout import ContractError

# The quality floor of each way of serving: the least cosine similarity, on every golden
# window, between what the edge computes and golden.json's reference embeddings. The
# sidecar's self-check, the deploy's golden gate and the build's INT8 checks all ask here.
# INT8 (ONNX Runtime's static quantization or the Hailo-8) carries a quantization error
# that fp32 does not, so its floor is lower.
QUALITY_FLOORS: Mapping[str, float] = {"fp32": 0.999, "int8": 0.98, "hailo": 0.98}


def serving_precision(backend: str, served_file: str = "") -> str:
    """The row of QUALITY_FLOORS for a backend (``onnxruntime`` or ``hailo``) serving ``served_file``."""
    if backend == "hailo":
        return "hailo"
    if backend != "onnxruntime":
        raise ContractError("backend", f"expected onnxruntime or hailo, got {backend!r}")
    return "int8" if "int8" in PurePosixPath(served_file).name else "fp32"


def _check_precision(precision: Any, where: str) -> None:
    if precision not in QUALITY_FLOORS or precision == "fp32":
        measured = ", ".join(k for k in QUALITY_FLOORS if k != "fp32")
        raise ContractError(where, f"expected one of {measured} (a quantized way of serving), got {precision!r}")


def quality_floor(backend: str, served_file: str = "") -> float:
    """The golden-set floor of a backend serving ``served_file`` (see QUALITY_FLOORS)."""
    return QUALITY_FLOORS[serving_precision(backend, served_file)]
