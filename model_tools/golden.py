"""The golden set: fixed raw windows and their fp32 reference embeddings (``golden.json``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeinfer_contract import GoldenSet, Normalization

from .checks import check_count
from .windows import KINDS, normalize, synthetic_windows

DEFAULT_COUNT = 64
DEFAULT_SEED = 20250905


def make_golden(
    reference: Callable[[np.ndarray], np.ndarray],
    norm: Normalization,
    model_id: str,
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    reference_name: str = "pytorch",
    **meta: Any,
) -> GoldenSet:
    """``reference`` maps normalized [N,100,9] windows to [N,latent] embeddings."""
    check_count(count, "count")  # an empty golden set would let every golden check pass
    raw = synthetic_windows(count, seed=seed, kinds=KINDS)
    emb = reference(normalize(raw, norm)).astype(np.float32)
    return GoldenSet(
        windows=raw.astype(np.float32).tolist(),
        embeddings=emb.tolist(),
        model_id=model_id,
        normalization_hash=norm.hash(),
        meta={
            "reference": reference_name,
            "generator": "synthetic",
            "kinds": list(KINDS),
            "seed": seed,
            "count": count,
            **meta,
        },
    )


def golden_inputs(golden: GoldenSet, norm: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """(normalized windows [N,100,9], reference embeddings [N,latent]) as float32."""
    raw = np.asarray(golden.windows, dtype=np.float32)
    return normalize(raw, norm), np.asarray(golden.embeddings, dtype=np.float32)
