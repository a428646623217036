"""The Hailo calibration set: float32 NHWC (N,1,100,9), normalized exactly as at run time.

The generated Hailo model script carries no ``normalization`` layer: the sidecar
normalizes on the host, so the calibration data is normalized here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer_contract import Normalization

from .errors import InputError
from .windows import load_npy, load_user_windows, normalize, synthetic_windows, to_nhwc

DEFAULT_COUNT = 2000
MIN_WINDOWS = 1024
MEAN_WARN = 1.0  # |mean| of a normalized channel, in units of the model's std
STD_WARN = (0.1, 3.0)  # std of a normalized channel, relative to the model's std


def channel_stats(
    raw: np.ndarray, normalized: np.ndarray, norm: Normalization
) -> tuple[list[dict[str, Any]], list[str]]:
    stats, warnings = [], []
    for i, name in enumerate(norm.channel_order):
        r, z = raw[..., i], normalized[..., i]
        s = {
            "channel": name,
            "raw_mean": float(r.mean()),
            "raw_std": float(r.std()),
            "model_mean": norm.mean[i],
            "model_std": norm.std[i],
            "normalized_mean": float(z.mean()),
            "normalized_std": float(z.std()),
            "normalized_min": float(z.min()),
            "normalized_max": float(z.max()),
        }
        stats.append(s)
        if abs(s["normalized_mean"]) > MEAN_WARN:
            warnings.append(
                f"{name}: mean {s['raw_mean']:.3g} is {s['normalized_mean']:+.2f} model std from the model's mean {norm.mean[i]:.3g}"
            )
        if not STD_WARN[0] <= s["normalized_std"] <= STD_WARN[1]:
            warnings.append(
                f"{name}: std {s['raw_std']:.3g} is {s['normalized_std']:.2f}x the model's std {norm.std[i]:.3g} "
                f"(expected {STD_WARN[0]}-{STD_WARN[1]}x)"
            )
    return stats, warnings


def make_calibration(
    norm: Normalization,
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    source: str | Path | None = None,
    min_windows: int = MIN_WINDOWS,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(NHWC array, report). From ``source`` (.npy/.csv raw windows) or synthetic motion."""
    if count < min_windows:
        raise InputError(f"count: {count}; expected at least {min_windows} windows (fewer wreck INT8 accuracy)")
    if source is None:
        raw = synthetic_windows(count, seed=seed)
        source_name = "synthetic"
    else:
        raw = load_user_windows(source)
        if len(raw) < min_windows:
            raise InputError(f"{source}: {len(raw)} windows; expected at least {min_windows} for calibration")
        if len(raw) > count:
            raw = raw[np.sort(np.random.default_rng(seed).choice(len(raw), size=count, replace=False))]
        source_name = str(source)
    normalized = normalize(raw, norm)
    stats, warnings = channel_stats(raw, normalized, norm)
    arr = to_nhwc(normalized)
    report = {
        "source": source_name,
        "count": int(arr.shape[0]),
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "bytes": int(arr.nbytes),
        "layout": "NHWC (N,1,100,9), normalized with the model's z-score parameters",
        "normalization_hash": norm.hash(),
        "seed": seed if source is None else None,
        "channels": stats,
        "warnings": warnings,
    }
    return arr, report


def save_calibration(path: str | Path, arr: np.ndarray) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp.npy")
    try:
        np.save(tmp, arr, allow_pickle=False)
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)


def load_calibration(path: str | Path) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"calibration: {p} does not exist")
    arr = load_npy(p, "calibration")
    if arr.ndim != 4 or arr.shape[1:] != (1, 100, 9) or arr.dtype != np.float32:
        raise InputError(f"calibration: {p} is {arr.dtype} {list(arr.shape)}; expected float32 [N,1,100,9]")
    return arr
