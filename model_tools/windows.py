"""IMU windows: synthetic motion, the fixed parity set, and the user's own recordings.

Raw windows are ``[N, 100, 9]`` float32 in sensor units, channels
``ax ay az`` (m/s^2), ``gx gy gz`` (rad/s), ``mx my mz`` (uT). Models see them
normalized: ``(raw - mean) / std`` per channel.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgeinfer_contract import CHANNELS, WINDOW, Normalization

from .errors import InputError

SAMPLE_RATE_HZ = 50.0
GRAVITY = 9.81
MAG_FIELD_UT = np.array([22.4, -8.7, 43.2])
KINDS = ("stationary", "walking", "running", "mixed")
# Cadence (Hz), vertical/forward acceleration amplitude (m/s^2), gyro amplitude (rad/s).
_MOTION = {"walking": ((1.6, 2.2), (1.5, 3.0), (0.3, 1.0)), "running": ((2.5, 3.3), (5.0, 10.0), (1.5, 3.0))}


def _rot_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _one(kind: str, rng: np.random.Generator, steps: int = WINDOW) -> np.ndarray:
    t = np.arange(steps) / SAMPLE_RATE_HZ
    out = np.zeros((steps, CHANNELS))
    tilt = rng.normal(0.0, 0.05, size=2)  # small device tilt (rad)
    g = GRAVITY * np.array([np.sin(tilt[0]), np.sin(tilt[1]), np.cos(tilt[0]) * np.cos(tilt[1])])
    out[:, 0:3] = g + rng.normal(0.0, 0.02, size=(steps, 3))
    out[:, 3:6] = rng.normal(0.0, 0.005, size=(steps, 3))
    heading = rng.uniform(-1.0, 1.0)
    hard_iron = rng.normal(0.0, 20.0, size=3)  # per-device offset; real magnetometers vary this much
    sway = np.zeros(steps)
    if kind in _MOTION:
        (f_lo, f_hi), (a_lo, a_hi), (w_lo, w_hi) = _MOTION[kind]
        f, a, w = rng.uniform(f_lo, f_hi), rng.uniform(a_lo, a_hi), rng.uniform(w_lo, w_hi)
        phase = rng.uniform(0, 2 * np.pi)
        step = np.sin(2 * np.pi * f * t + phase)
        out[:, 2] += a * step
        out[:, 0] += 0.5 * a * np.sin(2 * np.pi * f * t + phase + np.pi / 2)
        out[:, 1] += 0.3 * a * np.sin(np.pi * f * t + phase)
        out[:, 3] += w * np.sin(np.pi * f * t + phase)
        out[:, 4] += 0.6 * w * np.sin(2 * np.pi * f * t + phase)
        out[:, 5] += 0.3 * w * np.sin(np.pi * f * t + phase + 1.0)
        sway = 0.1 * np.sin(np.pi * f * t + phase)
    for i in range(steps):
        out[i, 6:9] = _rot_z(heading + sway[i]) @ MAG_FIELD_UT
    out[:, 6:9] += hard_iron + rng.normal(0.0, 0.5, size=(steps, 3))
    return out


def synthetic_windows(n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> np.ndarray:
    """``n`` raw windows cycling through ``kinds``; ``mixed`` switches activity mid-window."""
    for k in kinds:
        if k not in KINDS:
            raise InputError(f"kinds: unknown motion {k!r}; expected one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    windows = np.empty((n, WINDOW, CHANNELS), dtype=np.float32)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "mixed":
            a, b = rng.choice(["stationary", "walking", "running"], size=2, replace=False)
            cut = int(rng.integers(20, WINDOW - 20))
            windows[i] = np.concatenate([_one(str(a), rng)[:cut], _one(str(b), rng)[cut:]])
        else:
            windows[i] = _one(kind, rng)
    return windows


def normalize(raw: np.ndarray, norm: Normalization) -> np.ndarray:
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return ((raw.astype(np.float32) - mean) / std).astype(np.float32)


def denormalize(x: np.ndarray, norm: Normalization) -> np.ndarray:
    return (x * np.asarray(norm.std, dtype=np.float32) + np.asarray(norm.mean, dtype=np.float32)).astype(np.float32)


def parity_windows(norm: Normalization, seed: int = 1234) -> tuple[list[str], np.ndarray]:
    """The fixed export-check set, normalized: zeros, stationary, walking, running, seeded random."""
    names = ["zeros", "stationary", "walking", "running", "mixed"]
    synth = normalize(synthetic_windows(4, seed=seed, kinds=("stationary", "walking", "running", "mixed")), norm)
    rng = np.random.default_rng(seed)
    rand = rng.standard_normal((4, WINDOW, CHANNELS)).astype(np.float32)
    names += [f"random_{i}" for i in range(len(rand))]
    return names, np.concatenate([np.zeros((1, WINDOW, CHANNELS), np.float32), synth, rand])


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """[N, 100, 9] -> [N, 1, 100, 9] (what the Hailo tools call NHWC)."""
    return np.ascontiguousarray(x[:, None, :, :], dtype=np.float32)


def to_nchw(x: np.ndarray) -> np.ndarray:
    """[N, 100, 9] -> [N, 9, 1, 100] (the Hailo ONNX graph's input)."""
    return np.ascontiguousarray(x.transpose(0, 2, 1)[:, :, None, :], dtype=np.float32)


def _windowed(series: np.ndarray, stride: int, source: str) -> np.ndarray:
    if series.shape[0] < WINDOW:
        raise InputError(f"{source}: {series.shape[0]} rows; expected at least {WINDOW} (one window)")
    starts = range(0, series.shape[0] - WINDOW + 1, stride)
    return np.stack([series[s : s + WINDOW] for s in starts])


def load_npy(p: Path, what: str) -> np.ndarray:
    """A plain numeric ``.npy`` array; a pickle, a truncated or a foreign file is an InputError naming ``what``."""
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise InputError(f"{what}: {p} is not a plain numeric .npy array ({exc})") from None


def load_user_windows(path: str | Path, stride: int = WINDOW) -> np.ndarray:
    """Raw windows from ``.npy`` ([N,100,9], [N,1,100,9] or a [T,9] series) or ``.csv`` (9 columns, header optional)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"windows file {p} does not exist")
    if p.suffix == ".npy":
        arr = load_npy(p, "windows")
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 2 and arr.shape[1] == CHANNELS:
            arr = _windowed(arr, stride, str(p))
        if arr.ndim != 3 or arr.shape[1:] != (WINDOW, CHANNELS):
            raise InputError(
                f"{p}: shape {arr.shape}; expected [N,{WINDOW},{CHANNELS}], [N,1,{WINDOW},{CHANNELS}] or [T,{CHANNELS}]"
            )
    elif p.suffix == ".csv":
        rows: list[list[float]] = []
        with p.open(newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != CHANNELS:
                    raise InputError(
                        f"{p}:{lineno}: {len(row)} columns; expected {CHANNELS} (ax,ay,az,gx,gy,gz,mx,my,mz)"
                    )
                try:
                    rows.append([float(c) for c in row])
                except ValueError:
                    if rows or lineno > 1:
                        raise InputError(f"{p}:{lineno}: non-numeric value in {row!r}") from None
        arr = _windowed(np.asarray(rows, dtype=np.float64).reshape(-1, CHANNELS), stride, str(p))
    else:
        raise InputError(f"{p}: unsupported suffix {p.suffix!r}; expected .npy or .csv")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"{p}: contains NaN or infinite values")
    return arr
