"""This machine's speed: ONNX Runtime at batch 1 on one thread, against the reference.

The sidecar's latency targets were set on a machine that ran the production encoder at
about 2,100 inferences/s this way; this VM runs it anywhere from a quarter of that to the
same. `make test` prints this row first, so every test log says how fast its day was.

    python bench/speed.py [--seconds S] [--model M]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The ONNX of the model in production, from the shared fixtures.
ORIGIN_ONNX = (
    Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared")) / "fixtures" / "origin-v72pct"
) / "tcn_encoder_for_edgeinfer.onnx"

# The speed of the machine the targets were set on. Below SLOW_MACHINE of it, an absolute
# latency figure measures the machine more than the sidecar.
REFERENCE_ORT_BATCH1 = 2100.0
SLOW_MACHINE = 0.75


def ort_rate(model: Path | str, threads: int, batch: int, seconds: float) -> float:
    """ONNX Runtime in this process: inferences/s of ``model`` at ``batch`` on ``threads`` threads."""
    return ort_rates(model, threads, batch, seconds)[0]


def ort_rates(model: Path | str, threads: int, batch: int, seconds: float) -> tuple[float, float]:
    """Inferences per second of wall time, and per second of this process's CPU time (what other
    work on a shared core takes from the wall-time figure does not change the CPU-time one)."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
    s = ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])
    x = np.repeat(np.random.default_rng(0).standard_normal((1, 100, 9)).astype(np.float32), batch, axis=0)
    for _ in range(20):
        s.run(None, {"imu_window": x})
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        s.run(None, {"imu_window": x})
        n += batch
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def machine_speed(batch1_rate: float) -> float:
    """This machine's speed as a share of the reference, from the batch-1, one-thread rate."""
    return batch1_rate / REFERENCE_ORT_BATCH1


def row(rate: float) -> str:
    speed = machine_speed(rate)
    note = "" if speed >= SLOW_MACHINE else f"; below {SLOW_MACHINE:g} x: absolute latency figures are inconclusive"
    return (
        f"machine speed: ONNX Runtime batch 1 on one thread, {rate:,.0f} inferences/s "
        f"= {speed:.2f} x the {REFERENCE_ORT_BATCH1:,.0f}/s reference{note}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="how long to run ONNX Runtime (default 3)")
    p.add_argument("--model", type=Path, default=ORIGIN_ONNX, help="the ONNX model (default: the production encoder)")
    args = p.parse_args(argv)
    if not args.model.is_file():
        p.error(f"--model {args.model}: no such file (set EDGEINFER_SHARED to the shared/ folder)")
    print(row(ort_rate(args.model, 1, 1, args.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
