"""The A/B comparison figures (sidecar/compare.py) against independent computations of the same quantities."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from sidecar.compare import (
    SERIES_POINTS,
    adjusted_rand,
    compare,
    cosine_stats,
    knn_indices,
    knn_jaccard,
    linear_cka,
    motif_agreement,
    per_window,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def embeddings(n: int = 300, d: int = 64, seed: int = 0) -> np.ndarray:
    """Embeddings with structure (a few clusters), as an encoder gives, not isotropic noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, d)) * 3
    return (centres[rng.integers(0, 8, n)] + rng.standard_normal((n, d))).astype(np.float32)


def rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def cka_from_gram(x: np.ndarray, y: np.ndarray) -> float:
    """CKA through the n x n Gram matrices (HSIC with a linear kernel): another route to the same number."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k = h @ (x.astype(np.float64) @ x.T) @ h
    m = h @ (y.astype(np.float64) @ y.T) @ h
    return float(np.sum(k * m) / np.sqrt(np.sum(k * k) * np.sum(m * m)))


def test_linear_cka_equals_the_gram_matrix_form():
    x = embeddings(120, 64, seed=1)
    y = embeddings(120, 32, seed=2) + 0.5 * x[:, :32]
    assert linear_cka(x, y) == pytest.approx(cka_from_gram(x, y), rel=1e-9)


def test_linear_cka_is_one_under_rotation_and_isotropic_scale_and_low_for_unrelated_spaces():
    x = embeddings(seed=3)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 7.5 * x @ rotation(64, 4)) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, embeddings(seed=5)) < 0.5
    # not invariant to an arbitrary linear map: an anisotropic scaling lowers it
    stretch = np.ones(64)
    stretch[:4] = 50.0
    assert linear_cka(x, x * stretch) < 0.9


def test_linear_cka_of_a_constant_space_is_none():
    x = embeddings(seed=6)
    assert linear_cka(x, np.ones_like(x)) is None


def brute_force_jaccard(x: np.ndarray, y: np.ndarray, k: int) -> float:
    def neighbours(e: np.ndarray, i: int) -> set[int]:
        unit = e / np.linalg.norm(e, axis=1, keepdims=True)
        dist = 1 - unit @ unit[i]
        order = [j for j in np.argsort(dist, kind="stable") if j != i]
        return set(order[:k])

    scores = []
    for i in range(x.shape[0]):
        a, b = neighbours(x, i), neighbours(y, i)
        scores.append(len(a & b) / len(a | b))
    return float(np.mean(scores))


def test_knn_jaccard_equals_a_brute_force_count():
    x = embeddings(80, 16, seed=7)
    y = x + 0.8 * embeddings(80, 16, seed=8)
    assert knn_jaccard(x, y, 5) == pytest.approx(brute_force_jaccard(x, y, 5), abs=1e-12)


def test_knn_indices_never_name_the_window_itself_and_do_not_depend_on_the_block_size(monkeypatch):
    e = embeddings(600, 8, seed=9)
    idx = knn_indices(e, 10)
    assert idx.shape == (600, 10)
    assert not (idx == np.arange(600)[:, None]).any()
    monkeypatch.setattr("sidecar.compare.KNN_BLOCK", 600)
    np.testing.assert_array_equal(np.sort(knn_indices(e, 10), axis=1), np.sort(idx, axis=1))


def test_knn_jaccard_is_one_under_rotation_low_for_unrelated_and_none_with_too_few_windows():
    x = embeddings(seed=10)
    assert knn_jaccard(x, 3 * x @ rotation(64, 11), 10) == pytest.approx(1.0)
    assert knn_jaccard(x, np.random.default_rng(12).standard_normal(x.shape), 10) < 0.1
    assert knn_jaccard(x[:10], x[:10], 10) is None


def test_adjusted_rand_ignores_label_names_and_is_near_zero_for_independent_labels():
    rng = np.random.default_rng(13)
    a = rng.integers(0, 5, 2000)
    renamed = np.array([3, 0, 4, 1, 2])[a]
    assert adjusted_rand(a, renamed) == pytest.approx(1.0)
    assert abs(adjusted_rand(a, rng.integers(0, 5, 2000))) < 0.02
    assert adjusted_rand(np.zeros(5, int), np.zeros(5, int)) is None


def test_adjusted_rand_equals_its_definition_over_pairs():
    a = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    b = np.array([1, 1, 0, 0, 0, 2, 2, 2])
    same_a = [a[i] == a[j] for i, j in itertools.combinations(range(8), 2)]
    same_b = [b[i] == b[j] for i, j in itertools.combinations(range(8), 2)]
    index = sum(p and q for p, q in zip(same_a, same_b, strict=True))
    expected = sum(same_a) * sum(same_b) / len(same_a)
    top = (sum(same_a) + sum(same_b)) / 2
    assert adjusted_rand(a, b) == pytest.approx((index - expected) / (top - expected))


def test_motif_agreement_needs_prototypes_on_both_sides():
    x = embeddings(seed=14)
    protos = x[:6] / np.linalg.norm(x[:6], axis=1, keepdims=True)
    assert motif_agreement(x, x, protos, None) is None
    same = motif_agreement(x, x, protos, protos)
    assert same == {"prototypes": [6, 6], "same_label": 1.0, "adjusted_rand": 1.0}
    # prototypes numbered differently: the labels disagree, the partition does not
    renumbered = motif_agreement(x, x, protos, protos[::-1])
    assert renumbered["same_label"] < 0.5 and renumbered["adjusted_rand"] == pytest.approx(1.0)
    other_count = motif_agreement(x, x, protos, protos[:4])
    assert other_count["same_label"] is None


def test_cosine_is_reported_only_for_the_same_network():
    x = embeddings(seed=15)
    y = x + 0.01 * np.random.default_rng(16).standard_normal(x.shape).astype(np.float32)
    stats = cosine_stats(x, y)
    assert 0.99 < stats["min"] <= stats["p5"] <= stats["mean"] < 1.0
    assert compare(x, y, 10, same_network=True)["cosine"]["mean"] == pytest.approx(stats["mean"], abs=1e-6)
    assert compare(x, y, 10, same_network=False)["cosine"] is None


def test_compare_with_no_or_one_window_reports_nothing_it_cannot_compute():
    empty = compare(np.empty((0, 64), np.float32), np.empty((0, 64), np.float32), 10, same_network=True)
    assert empty["windows"] == 0 and empty["linear_cka"] is None and empty["cosine"] is None
    one = compare(np.ones((1, 64), np.float32), np.ones((1, 64), np.float32), 10, same_network=False)
    assert one["linear_cka"] is None and one["knn_jaccard"] is None


def test_the_comparison_and_the_shadow_import_neither_torch_nor_scipy():
    """The sidecar image carries numpy, not torch or scipy."""
    import subprocess
    import sys

    code = (
        "import sys, sidecar.app, sidecar.compare, sidecar.shadow; print(sorted({'torch', 'scipy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_per_window_series_averages_to_the_report_and_stays_bounded():
    x = embeddings(300, seed=3)
    y = x @ rotation(64, 4)
    series = per_window(x, y, 10, same_network=False)
    assert series["windows"] == 300 and series["windows_per_point"] == 1.0 and series["cosine"] is None
    assert len(series["knn_jaccard"]) == 300
    assert np.mean(series["knn_jaccard"]) == pytest.approx(knn_jaccard(x, y, 10), abs=1e-3)
    big = embeddings(SERIES_POINTS * 2 + 7, seed=5)
    same = per_window(big, big, 10, same_network=True)
    assert len(same["knn_jaccard"]) == len(same["cosine"]) == SERIES_POINTS
    assert min(same["cosine"]) > 0.999
    assert per_window(x[:5], y[:5], 10, same_network=False)["knn_jaccard"] is None
