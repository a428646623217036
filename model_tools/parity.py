"""Check an exported graph against the PyTorch model: names, then shapes, then values.

Every mismatch of a stage is collected before failing; values are compared only
once names and shapes agree (they cannot be fed otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from .checks import dims
from .errors import ParityError

COSINE_FLOOR = 0.99999
MAX_ABS_DIFF = 1e-4


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine; two zero rows count as identical, one zero row as a miss."""
    a64, b64 = a.astype(np.float64).reshape(len(a), -1), b.astype(np.float64).reshape(len(b), -1)
    na, nb = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
    dot = (a64 * b64).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    cos = np.where((na == 0) & (nb == 0), 1.0, cos)
    return np.where(np.isfinite(cos), cos, -1.0)


@dataclass
class ParityReport:
    target: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    min_cosine: float | None = None
    max_abs_diff: float | None = None
    cosine_floor: float = COSINE_FLOOR
    max_abs_limit: float = MAX_ABS_DIFF

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def session(model: onnx.ModelProto | bytes | str, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    blob = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])


def check_parity(
    model: onnx.ModelProto,
    target: str,
    input_name: str,
    input_shape: Sequence[int | str],
    output_name: str,
    output_shape: Sequence[int | str],
    names: list[str],
    inputs: np.ndarray,
    reference: np.ndarray,
    batched: bool = False,
    cosine_floor: float = COSINE_FLOOR,
    max_abs: float = MAX_ABS_DIFF,
) -> ParityReport:
    """``inputs`` already in the graph's layout, ``reference`` [N, latent] from PyTorch."""
    report = ParityReport(target=target, cosine_floor=cosine_floor, max_abs_limit=max_abs)
    g = model.graph
    init_names = {i.name for i in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in init_names]
    if [i.name for i in graph_inputs] != [input_name]:
        report.problems.append(f"inputs: {[i.name for i in graph_inputs]} != expected [{input_name!r}]")
    if [o.name for o in g.output] != [output_name]:
        report.problems.append(f"outputs: {[o.name for o in g.output]} != expected [{output_name!r}]")
    if report.problems:
        report.problems.append("shapes and values not checked: the names differ")
        return report
    for kind, vi, want in (("input", graph_inputs[0], input_shape), ("output", g.output[0], output_shape)):
        got = dims(vi)
        ok = len(got) == len(want) and all(
            (isinstance(w, str) and isinstance(d, str)) or d == w for d, w in zip(got, want, strict=False)
        )
        if not ok:
            report.problems.append(f"{kind} {vi.name}: shape {got} != expected {list(want)}")
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            report.problems.append(f"{kind} {vi.name}: element type {vi.type.tensor_type.elem_type} != float32 (1)")
    if report.problems:
        report.problems.append("values not checked: the shapes differ")
        return report
    sess = session(model)
    if batched:
        got = sess.run([output_name], {input_name: inputs})[0]
    else:
        got = np.concatenate([sess.run([output_name], {input_name: inputs[i : i + 1]})[0] for i in range(len(inputs))])
    got = got.reshape(len(inputs), -1)
    ref = reference.reshape(len(inputs), -1)
    if got.shape != ref.shape:
        report.problems.append(f"output {output_name}: runtime shape {list(got.shape)} != reference {list(ref.shape)}")
        return report
    cos = cosine_rows(got, ref)
    diff = np.abs(got.astype(np.float64) - ref).max(axis=1)
    diff = np.where(np.isfinite(diff), diff, np.inf)
    report.min_cosine, report.max_abs_diff = float(cos.min()), float(diff.max())
    for name, c, d in zip(names, cos, diff, strict=True):
        report.windows.append({"window": name, "cosine": float(c), "max_abs_diff": float(d)})
        if c < cosine_floor:
            report.problems.append(f"window {name}: cosine {c:.7f} < {cosine_floor}")
        if d > max_abs:
            report.problems.append(f"window {name}: max abs diff {d:.3g} > {max_abs:g}")
    return report


def raise_on_failure(report: ParityReport, what: str) -> None:
    if not report.passed:
        raise ParityError(
            f"{what} does not reproduce the PyTorch model, nothing written: " + "; ".join(report.problems),
            parity=report.to_dict(),
        )


ReferenceFn = Callable[[np.ndarray], np.ndarray]
