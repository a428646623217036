"""Guide figures of the shadow's A/B report (sidecar/compare.py) on random-walk windows.

    .venv/bin/python scripts/ab_guide.py REFERENCE.onnx [OTHER.onnx ...] [--windows 1000] [--k 10]

Embeds ``--windows`` random-walk windows (normalized units) with each model, then prints linear
CKA and kNN Jaccard of: the reference against itself with 1 % Gaussian output noise (1 % of the
embeddings' standard deviation), the reference against each other model, and each pair of the
others. One JSON object per line.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from sidecar.compare import compare


def embed(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: w[None]})[0] for w in x])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", type=Path, nargs="+", help="the reference model first; input [1, 100, 9]")
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = np.cumsum(0.2 * rng.standard_normal((args.windows, 100, 9)), axis=1).astype(np.float32)
    emb = {p.as_posix(): embed(p, x) for p in args.onnx}
    ref_name, ref = next(iter(emb.items()))
    noisy = ref + 0.01 * ref.std() * rng.standard_normal(ref.shape).astype(np.float32)

    def line(a: str, b: str, figures: dict[str, object]) -> None:
        keep = ("windows", "linear_cka", "knn_jaccard", "cosine")
        print(json.dumps({"a": a, "b": b, **{key: figures[key] for key in keep}}))

    line(ref_name, "itself + 1 % noise", compare(ref, noisy, args.k, same_network=True))
    for name, e in list(emb.items())[1:]:
        line(ref_name, name, compare(ref, e, args.k, same_network=False))
    for (na, ea), (nb, eb) in itertools.combinations(list(emb.items())[1:], 2):
        line(na, nb, compare(ea, eb, args.k, same_network=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
