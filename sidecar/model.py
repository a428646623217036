"""A release that has passed its self-check, as it serves: files, backend, normalization, and what it reports."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer_contract import ModelConfig

from .backends import Backend, FallbackBackend


@dataclass(frozen=True)
class Choice:
    """Which backend the loader picked and why: ``code`` for metrics, ``reason`` for people."""

    hailo: bool
    code: str
    reason: str


@dataclass
class Model:
    """A release that has passed its self-check and can serve."""

    directory: Path
    version: str
    sha256: str
    onnx_file: str
    hef_file: str
    config: ModelConfig
    backend: Backend
    mean: np.ndarray
    std: np.ndarray
    channel_order: tuple[str, ...]
    self_check: dict[str, Any]
    choice: Choice
    motif_prototypes: np.ndarray | None = None
    hailo_fallback: str | None = None
    hailo_fallback_status: int | None = None
    build_quality: dict[str, Any] | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def served_file(self) -> str:
        return self.hef_file if self.backend_name == "hailo" else self.onnx_file

    @property
    def ran_out_of_hailo(self) -> bool:
        return isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason is not None

    @property
    def backend_reason(self) -> str:
        """Why this backend serves now: the loader's choice, or the fallback that overrode it since."""
        if isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason:
            return f"hailo fell back at run time: {self.backend.fallback_reason}"
        return self.choice.reason

    @property
    def backend_reason_code(self) -> str:
        return "hailo_fallback_run_time" if self.ran_out_of_hailo else self.choice.code

    @property
    def fallback_status(self) -> int | None:
        if isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason:
            return self.backend.fallback_status
        return self.hailo_fallback_status

    # Computed once: each is a sha256 over the canonical JSON of the normalization, and
    # every response names the stamp.
    @cached_property
    def stamp(self) -> dict[str, Any]:
        return self.config.stamp

    @cached_property
    def normalization_hash(self) -> str:
        return self.config.normalization_hash

    @property
    def fallback_reason(self) -> str | None:
        if isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason:
            return self.backend.fallback_reason
        return self.hailo_fallback

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.mean) / self.std).astype(np.float32, copy=False)

    def motif_scores(self, emb: np.ndarray) -> np.ndarray | None:
        """Cosine of each embedding with each shipped prototype; None when the release has none."""
        if self.motif_prototypes is None:
            return None
        e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return e @ self.motif_prototypes.T

    def info(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "model_sha256": self.sha256,
            "model_dir": str(self.directory),
            "served_file": self.served_file,
            "backend": self.backend_name,
            "backend_detail": self.backend.detail,
            "backend_reason": self.backend_reason,
            "backend_reason_code": self.backend_reason_code,
            "hailo_fallback": self.fallback_reason,
            "hailo_status": self.fallback_status,
            "build_quality": self.build_quality,
            "normalization_hash": self.normalization_hash,
            "embedding_stamp": self.stamp,
            "untrained": self.config.untrained,
            "self_check": self.self_check,
        }
