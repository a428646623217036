"""Benchmark of model_tools on this machine; prints a markdown section (``--json PATH`` for figures).

    .venv/bin/python bench/bench_model_tools.py [--json out.json]

1. ``export`` (cpu + batch + hailo, each verified against PyTorch) + ``quantize-check``
   (2000 calibration windows, 64 golden windows), wall time, on a seeded untrained model.
2. ONNX Runtime latency, 1 thread, batch 1: the CPU graph (Conv1d, [1,100,9]),
   the Conv2d/Hailo graph ([1,9,1,100]), the INT8 graph, and the production model's ONNX if found.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MODEL_TOOLS_QUIET", "1")

if TYPE_CHECKING:
    from edgeinfer_contract import Normalization


def latency_ms(path: Path, x: np.ndarray, runs: int = 2000) -> dict[str, float]:
    from model_tools.parity import session

    sess = session(str(path), threads=1)
    name = sess.get_inputs()[0].name
    for _ in range(200):
        sess.run(None, {name: x})
    times = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times[i] = time.perf_counter() - t
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p95_ms": float(np.percentile(times, 95) * 1e3),
        "mean_ms": float(times.mean() * 1e3),
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--runs", type=int, default=2000)
    return ap.parse_args()


def export_and_quantize(d: Path) -> tuple[dict[str, float], dict[str, Any], Normalization]:
    """1. Export and quantize-check a seeded untrained model in ``d``: the wall times in seconds
    (export, quantize, total), quantize_check's result, and the model's normalization."""
    from edgeinfer_contract import FILES
    from model_tools.calibrate import make_calibration
    from model_tools.checkpoint import load_checkpoint
    from model_tools.export import export, reference_embeddings
    from model_tools.golden import make_golden
    from model_tools.quantize import quantize_check
    from model_tools.release import init_checkpoint

    init_checkpoint(d / "untrained.pth", seed=0)
    t0 = time.perf_counter()
    loaded = load_checkpoint(d / "untrained.pth")
    norm = loaded.normalization
    assert norm is not None
    export(loaded, norm, d)
    t_export = time.perf_counter() - t0
    golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, loaded.default_model_id)
    calib, _ = make_calibration(norm)
    t1 = time.perf_counter()
    q = quantize_check(d / FILES["onnx"], calib, golden, norm, d / FILES["onnx_int8"])
    t_quant = time.perf_counter() - t1
    t_total = time.perf_counter() - t0
    return {"export": t_export, "quantize": t_quant, "total": t_total}, q, norm


def graph_latencies(d: Path, norm: Normalization, runs: int) -> dict[str, dict[str, float]]:
    """2. ONNX Runtime latency of each graph exported in ``d``, and of the production model's ONNX if found."""
    from edgeinfer_contract import FILES
    from model_tools.windows import normalize, synthetic_windows, to_nchw

    x = normalize(synthetic_windows(1, seed=5), norm)
    lat = {
        "cpu (Conv1d, [1,100,9])": latency_ms(d / FILES["onnx"], x, runs),
        "hailo form (Conv2d, [1,9,1,100])": latency_ms(d / FILES["onnx_hailo"], to_nchw(x), runs),
        "int8 (QDQ, [1,100,9])": latency_ms(d / FILES["onnx_int8"], x, runs),
    }
    production = (
        Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared"))
        / "fixtures/origin-v72pct/tcn_encoder_for_edgeinfer.onnx"
    )
    if production.is_file():
        lat["production ONNX (Conv1d + Slice chomps)"] = latency_ms(production, x, runs)
    return lat


def print_section(figures: dict[str, Any], runs: int) -> None:
    """The Markdown section of docs/benchmarks.md."""
    print("## model_tools benchmark\n")
    print(
        f"Machine: {figures['machine']}; Python {figures['python']}, torch {figures['torch']}, ONNX Runtime {figures['onnxruntime']}.\n"
    )
    print("Command: `.venv/bin/python bench/bench_model_tools.py`\n")
    print("| step | seconds |\n|---|---|")
    print(f"| export cpu + batch + hailo, each verified against PyTorch | {figures['export_and_verify_s']} |")
    print(f"| quantize-check (2000 calibration windows, 64 golden) | {figures['quantize_check_s']} |")
    print(f"| **total** (budget 60 s) | **{figures['export_verify_quantize_total_s']}** |\n")
    c = figures["int8_cosine"]
    print(
        f"INT8 vs fp32 on the golden set (untrained model): min {c['cosine_min']}, p5 {c['cosine_p5']}, mean {c['cosine_mean']}.\n"
    )
    print(f"ONNX Runtime latency, 1 thread, batch 1, {runs} runs after 200 warm-up:\n")
    print("| graph | p50 ms | p95 ms | mean ms |\n|---|---|---|---|")
    for k, r in figures["latency"].items():
        print(f"| {k} | {r['p50_ms']} | {r['p95_ms']} | {r['mean_ms']} |")


def main() -> int:
    args = parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        seconds, q, norm = export_and_quantize(d)
        lat = graph_latencies(d, norm, args.runs)

    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, {platform.processor() or platform.platform()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "export_and_verify_s": round(seconds["export"], 2),
        "quantize_check_s": round(seconds["quantize"], 2),
        "export_verify_quantize_total_s": round(seconds["total"], 2),
        "int8_cosine": {k: round(v, 6) for k, v in q["int8_vs_reference"].items() if k.startswith("cosine")},
        "latency": {k: {m: round(v, 3) for m, v in r.items()} for k, r in lat.items()},
    }
    print_section(figures, args.runs)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
