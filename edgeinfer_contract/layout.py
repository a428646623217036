"""The tensor layout of the encoder, the file names of a release, and the error every reader of
the format raises."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

INPUT_NAME = "imu_window"
OUTPUT_NAME = "latent_embeddings"
WINDOW = 100
CHANNELS = 9
LATENT_DIM = 64
CHANNEL_ORDER = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")

FILES = {
    "onnx": "model.onnx",
    "onnx_batch": "model_batch.onnx",
    "onnx_hailo": "model_hailo.onnx",
    "onnx_int8": "model_int8.onnx",
    "hef": "model.hef",
    "config": "model_config.json",
    "golden": "golden.json",
    "manifest": "manifest.json",
    "signature": "manifest.json.sig",
    "calibration": "calibration.npy",
    "hailo_metadata": "deployment_metadata.json",
    "motif_prototypes": "motif_prototypes.json",
}


class ContractError(ValueError):
    """An artifact does not follow the release format.

    ``field`` names the offending key (dotted path) so that callers can tell
    the user exactly what to fix.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _finite_floats(value: Any, field: str, length: int) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ContractError(field, f"expected a list of {length} numbers, got {type(value).__name__}")
    if len(value) != length:
        raise ContractError(field, f"expected {length} numbers, got {len(value)}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ContractError(f"{field}[{i}]", f"expected a finite number, got {v!r}")
        out.append(float(v))
    return tuple(out)
