"""Compare two embedding models on the same windows (numpy only; shared/reference/ab.md).

Two separately trained encoders give latent spaces with different bases, so the cosine
between model A's and model B's embedding of one window means nothing unless A and B are
the same network (a re-quantization, a recompile). What can be compared is the geometry
each model gives the same set of windows: linear CKA and k-nearest-neighbour overlap.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def linear_cka(x: np.ndarray, y: np.ndarray) -> float | None:
    """Linear CKA (Kornblith et al., 2019) of ``x`` [n, d1] and ``y`` [n, d2], rows paired.

    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred Xc, Yc: 1 for the
    same geometry up to a rotation and an isotropic scale. None when either side is constant.
    Cost O(n d1 d2); no n x n matrix.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka: {x.shape[0]} rows against {y.shape[0]}")
    xc = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    yc = y.astype(np.float64) - y.mean(axis=0, dtype=np.float64)
    cross = float(np.linalg.norm(yc.T @ xc) ** 2)
    denom = float(np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    if not np.isfinite(denom) or denom <= 0.0:
        return None
    return cross / denom


# Rows of the similarity matrix computed at a time: the memory stays at a few MiB (256 x n
# similarities and their argpartition) instead of several n x n arrays.
KNN_BLOCK = 256


def knn_indices(e: np.ndarray, k: int) -> np.ndarray:
    """For each row, the indices of its ``k`` nearest other rows by cosine distance: [n, k]."""
    n = e.shape[0]
    if not 0 < k < n:
        raise ValueError(f"knn_indices: k={k} needs 0 < k < n={n}")
    unit = e.astype(np.float32) / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12).astype(np.float32)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, KNN_BLOCK):
        stop = min(start + KNN_BLOCK, n)
        dist = -(unit[start:stop] @ unit.T)
        dist[np.arange(stop - start), np.arange(start, stop)] = np.inf  # a window is not its own neighbour
        out[start:stop] = np.argpartition(dist, k - 1, axis=1)[:, :k]
    return out


def knn_jaccard(x: np.ndarray, y: np.ndarray, k: int) -> float | None:
    """Mean over windows of |N_x(i) ∩ N_y(i)| / |N_x(i) ∪ N_y(i)|, N the k nearest other windows.

    None when there are not more than ``k`` windows.
    """
    per_window = knn_jaccard_per_window(x, y, k)
    return None if per_window is None else float(np.mean(per_window))


def knn_jaccard_per_window(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray | None:
    """Each window's |N_x(i) ∩ N_y(i)| / |N_x(i) ∪ N_y(i)|: [n]; None when there are not more than ``k`` windows."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"knn_jaccard: {x.shape[0]} rows against {y.shape[0]}")
    if x.shape[0] <= k:
        return None
    a, b = knn_indices(x, k), knn_indices(y, k)
    inter = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return np.asarray(inter / (2 * k - inter), dtype=np.float64)


def motif_assignments(e: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """The index of the most similar prototype (cosine) for each embedding; prototypes are unit rows."""
    unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return np.asarray(np.argmax(unit @ prototypes.T, axis=1))


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float | None:
    """Adjusted Rand index of two labelings of the same items (Hubert and Arabie, 1985).

    1 for the same partition whatever the labels' names, about 0 for independent ones.
    None when it is undefined (both put every item in one cluster, or fewer than 2 items).
    """
    n = a.shape[0]
    if n < 2:
        return None
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)

    def pairs(c: np.ndarray) -> float:
        return float((c * (c - 1) // 2).sum())

    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2)
    top = (rows + cols) / 2
    if top == expected:
        return None
    return (index - expected) / (top - expected)


def motif_agreement(
    x: np.ndarray, y: np.ndarray, protos_x: np.ndarray | None, protos_y: np.ndarray | None
) -> dict[str, Any] | None:
    """How the two models' motif assignments (nearest prototype) agree; None unless both ship prototypes.

    ``same_label``: the share of windows given the same prototype index, meaningful when both
    releases number the same motifs alike (same count); ``adjusted_rand``: agreement of the two
    partitions, whatever the prototypes are called.
    """
    if protos_x is None or protos_y is None:
        return None
    ax, ay = motif_assignments(x, protos_x), motif_assignments(y, protos_y)
    same = float(np.mean(ax == ay)) if protos_x.shape[0] == protos_y.shape[0] else None
    return {
        "prototypes": [int(protos_x.shape[0]), int(protos_y.shape[0])],
        "same_label": same,
        "adjusted_rand": adjusted_rand(ax, ay),
    }


def cosine_per_window(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-window cosine of the two embeddings [n]: only meaningful for the same network."""
    if x.shape != y.shape:
        raise ValueError(f"cosine_stats: shapes {list(x.shape)} and {list(y.shape)} differ")
    num = np.sum(x.astype(np.float64) * y, axis=1)
    den = np.linalg.norm(x.astype(np.float64), axis=1) * np.linalg.norm(y.astype(np.float64), axis=1)
    return np.asarray(num / np.maximum(den, 1e-12))


def cosine_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per-window cosine of the two embeddings, summarized: only meaningful for the same network."""
    cos = cosine_per_window(x, y)
    return {"mean": float(cos.mean()), "min": float(cos.min()), "p5": float(np.percentile(cos, 5))}


def _round(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(v, digits)


def compare(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    *,
    same_network: bool,
    protos_x: np.ndarray | None = None,
    protos_y: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every figure of the A/B report over paired embeddings ``x`` (model A) and ``y`` (model B)."""
    n = int(x.shape[0])
    out: dict[str, Any] = {"windows": n, "linear_cka": None, "knn_jaccard": None, "knn_k": k}
    if n >= 2:
        out["linear_cka"] = _round(linear_cka(x, y))
        out["knn_jaccard"] = _round(knn_jaccard(x, y, k))
    motif = motif_agreement(x, y, protos_x, protos_y) if n else None
    if motif is not None:
        motif["same_label"] = _round(motif["same_label"])
        motif["adjusted_rand"] = _round(motif["adjusted_rand"])
    out["motif_agreement"] = motif
    comparable = same_network and n > 0 and x.shape == y.shape
    out["cosine"] = {key: round(v, 6) for key, v in cosine_stats(x, y).items()} if comparable else None
    return out


# Points of the per-window series at most: the series of a 20,000-window ring is binned to this many.
SERIES_POINTS = 500


def _binned(values: np.ndarray) -> list[float]:
    parts = np.array_split(values, min(SERIES_POINTS, values.shape[0])) if values.shape[0] else []
    return [round(float(p.mean()), 4) for p in parts]


def per_window(x: np.ndarray, y: np.ndarray, k: int, *, same_network: bool) -> dict[str, Any]:
    """The per-window agreement in the order of the windows, oldest first, binned to at most SERIES_POINTS points.

    ``knn_jaccard``: each window's neighbour overlap (the report's knn_jaccard is their mean); ``cosine``:
    each window's cosine, only for the same network (else null). ``windows_per_point``: windows averaged
    into each point (1 up to SERIES_POINTS windows).
    """
    n = int(x.shape[0])
    knn = knn_jaccard_per_window(x, y, k) if n > k else None
    cos = cosine_per_window(x, y) if same_network and n > 0 and x.shape == y.shape else None
    return {
        "windows": n,
        "windows_per_point": round(n / min(SERIES_POINTS, n), 3) if n else None,
        "knn_jaccard": _binned(knn) if knn is not None else None,
        "cosine": _binned(cos) if cos is not None else None,
    }
