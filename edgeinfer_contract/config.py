"""model_config.json: normalization, embedding stamp and provenance of a release."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import CHANNELS, LATENT_DIM, WINDOW, ContractError
from .normalization import Normalization, embedding_stamp


@dataclass(frozen=True)
class ModelConfig:
    """``model_config.json``: the schema of the production model's export, plus our additions.

    Reads the production model's file (no hash, no stamp) as well as what model_tools
    writes; missing derived fields are computed, never invented.
    """

    raw: dict[str, Any]
    normalization: Normalization
    model_id: str
    latent_dim: int
    sequence_length: int
    input_dim: int
    untrained: bool

    @property
    def normalization_hash(self) -> str:
        return self.normalization.hash()

    @property
    def stamp(self) -> dict[str, Any]:
        return embedding_stamp(self.model_id, self.latent_dim, self.normalization_hash)

    @classmethod
    def from_dict(cls, data: Any, default_model_id: str = "unknown") -> ModelConfig:
        if not isinstance(data, Mapping):
            raise ContractError("model_config", "expected a JSON object")
        if "normalization" not in data:
            raise ContractError("normalization", "missing; model_config.json must carry the z-score parameters")
        norm = Normalization.from_dict(data["normalization"])
        declared = data.get("normalization_hash")
        if declared is not None and declared != norm.hash():
            raise ContractError(
                "normalization_hash",
                f"does not match the normalization parameters (declared {declared}, computed {norm.hash()})",
            )
        specs = data.get("model_specs", {})
        if not isinstance(specs, Mapping):
            raise ContractError("model_specs", "expected an object")
        # An older form of the export's schema kept the architecture at the top level.
        latent = specs.get("latent_dimension", data.get("latent_dim", LATENT_DIM))
        seq = specs.get("sequence_length", data.get("sequence_length", WINDOW))
        input_dim = data.get("input_dim", CHANNELS)
        for name, value in (
            ("model_specs.latent_dimension", latent),
            ("model_specs.sequence_length", seq),
            ("input_dim", input_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ContractError(name, f"expected a positive integer, got {value!r}")
        stamp = data.get("embedding_stamp") or {}
        model_id = stamp.get("model_id") if isinstance(stamp, Mapping) else None
        if not model_id:
            export = data.get("export_info", {})
            model_id = (
                data.get("model_id")
                or (export.get("model_id") if isinstance(export, Mapping) else None)
                or default_model_id
            )
        untrained = bool((data.get("export_info") or {}).get("untrained", False))
        return cls(
            raw=dict(data),
            normalization=norm,
            model_id=str(model_id),
            latent_dim=latent,
            sequence_length=seq,
            input_dim=input_dim,
            untrained=untrained,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], default_model_id: str | None = None) -> ModelConfig:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ContractError("model_config", f"{p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ContractError("model_config", f"{p} is not valid JSON: {exc}") from None
        return cls.from_dict(data, default_model_id or p.parent.name or "unknown")
