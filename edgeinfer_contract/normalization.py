"""Per-channel z-score normalization, which travels with the model as data, and the embedding
stamp that names an embedding space."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .layout import CHANNEL_ORDER, CHANNELS, ContractError, _finite_floats


@dataclass(frozen=True)
class Normalization:
    """Per-channel z-score parameters; they travel with the model as data."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: tuple[str, ...] = CHANNEL_ORDER
    method: str = "z_score_per_channel"

    @classmethod
    def from_dict(cls, data: Any, field: str = "normalization") -> Normalization:
        if not isinstance(data, Mapping):
            raise ContractError(field, "expected an object with method, mean, std, channel_order")
        method = data.get("method", "z_score_per_channel")
        if method != "z_score_per_channel":
            raise ContractError(f"{field}.method", f"expected 'z_score_per_channel', got {method!r}")
        for key in ("mean", "std"):
            if key not in data:
                raise ContractError(f"{field}.{key}", f"missing; expected a list of {CHANNELS} numbers")
        mean = _finite_floats(data["mean"], f"{field}.mean", CHANNELS)
        std = _finite_floats(data["std"], f"{field}.std", CHANNELS)
        for i, s in enumerate(std):
            if s <= 0:
                raise ContractError(f"{field}.std[{i}]", f"expected a positive number, got {s!r}")
        order = data.get("channel_order", list(CHANNEL_ORDER))
        if (
            not isinstance(order, Sequence)
            or isinstance(order, str)
            or len(order) != CHANNELS
            or not all(isinstance(c, str) for c in order)
            or len(set(order)) != CHANNELS
        ):
            raise ContractError(f"{field}.channel_order", f"expected {CHANNELS} distinct channel names, got {order!r}")
        return cls(mean=mean, std=std, channel_order=tuple(order), method=method)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": list(self.channel_order),
        }

    def hash(self) -> str:
        """sha256 of the canonical JSON of the parameters (full hex).

        Floats are written with ``repr`` (shortest round-trip form), so the
        same float32 values read from any config give the same hash.
        """
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# The per-channel constants the deployment guide publishes (those of the model in production).
# A trained model brings its own in model_config.json; these make demo models and plausible raw
# windows where no model's own constants are at hand.
GUIDE_NORMALIZATION = Normalization(
    mean=(0.12, -0.08, 9.78, 0.002, -0.001, 0.003, 22.4, -8.7, 43.2),
    std=(3.92, 3.87, 2.45, 1.24, 1.31, 0.98, 28.5, 31.2, 24.8),
)


def embedding_stamp(model_id: str, latent_dim: int, normalization_hash: str) -> dict[str, Any]:
    """What makes two models' embeddings comparable: a silent same-dimension
    swap changes the stamp even when the shapes still match."""
    return {
        "model_id": model_id,
        "latent_dim": int(latent_dim),
        "normalization_hash": normalization_hash,
        "stamp": f"{model_id}/{int(latent_dim)}/{normalization_hash[:12]}",
    }
