"""golden.json: reference windows and their embeddings, and the cosine every golden check uses."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import CHANNELS, LATENT_DIM, WINDOW, ContractError


@dataclass(frozen=True)
class GoldenSet:
    """Reference windows in raw sensor units and their fp32 reference embeddings.

    Stored as JSON so that anything on the edge, even a Python without numpy,
    can replay it against ``/encode``.
    """

    windows: list[list[list[float]]]
    embeddings: list[list[float]]
    model_id: str = "unknown"
    normalization_hash: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.windows)

    @classmethod
    def from_dict(cls, data: Any) -> GoldenSet:
        if not isinstance(data, Mapping):
            raise ContractError("golden", "expected a JSON object")
        if data.get("input_units", "raw") != "raw":
            raise ContractError("golden.input_units", f"expected 'raw', got {data.get('input_units')!r}")
        windows, embs = data.get("windows"), data.get("embeddings")
        if not isinstance(windows, list) or not windows:
            raise ContractError("golden.windows", "expected a non-empty list of 100x9 windows")
        if not isinstance(embs, list) or len(embs) != len(windows):
            raise ContractError("golden.embeddings", f"expected {len(windows)} embeddings, one per window")
        for i, w in enumerate(windows):
            if (
                not isinstance(w, list)
                or len(w) != WINDOW
                or any(not isinstance(r, list) or len(r) != CHANNELS for r in w)
            ):
                raise ContractError(f"golden.windows[{i}]", f"expected {WINDOW}x{CHANNELS} numbers")
        dim = len(embs[0]) if isinstance(embs[0], list) else -1
        for i, e in enumerate(embs):
            if not isinstance(e, list) or len(e) != dim or dim <= 0:
                raise ContractError(f"golden.embeddings[{i}]", f"expected {dim if dim > 0 else LATENT_DIM} numbers")
        return cls(
            windows=windows,
            embeddings=embs,
            model_id=str(data.get("model_id", "unknown")),
            normalization_hash=str(data.get("normalization_hash", "")),
            meta={k: v for k, v in data.items() if k not in ("windows", "embeddings")},
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.meta)
        out.update(
            schema=1,
            input_units="raw",
            model_id=self.model_id,
            normalization_hash=self.normalization_hash,
            windows=self.windows,
            embeddings=self.embeddings,
        )
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GoldenSet:
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise ContractError("golden", f"{p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ContractError("golden", f"{p} is not valid JSON: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in plain Python; NaN or a zero vector gives -1 (a miss)."""
    if len(a) != len(b):
        return -1.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if not (math.isfinite(dot) and math.isfinite(na) and math.isfinite(nb)) or na == 0 or nb == 0:
        return -1.0
    return dot / (na * nb)
