"""Export a loaded TCN-VAE to ONNX for the CPU and Hailo targets; verify before writing.

Targets (file names from ``edgeinfer_contract.FILES``):

* ``cpu``   -> ``model.onnx``: ``imu_window`` [1,100,9] -> ``latent_embeddings`` [1,64]
* ``batch`` -> ``model_batch.onnx``: the same with a dynamic batch axis ``N``
* ``hailo`` -> ``model_hailo.onnx``: Conv2d (1,k) on NCHW [1,9,1,100], static, no Slice/Pad/Transpose
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from edgeinfer_contract import FILES, INPUT_NAME, OUTPUT_NAME, Normalization

from ._io import progress
from .checkpoint import LoadedModel
from .checks import check_out
from .errors import InputError, ParityError
from .model import TCNVAE, ExportEncoder
from .parity import ParityReport, check_parity, raise_on_failure
from .windows import parity_windows, to_nchw

TARGETS = {"cpu": FILES["onnx"], "batch": FILES["onnx_batch"], "hailo": FILES["onnx_hailo"]}
DEFAULT_OPSET = 13
# What torch 2.13's TorchScript exporter writes (torch.onnx._constants: 7 to 20); every one of them
# exports this model and passes the parity check. The Hailo DFC parses 11 to 13.
EXPORT_OPSETS = range(7, 21)
HAILO_OPSETS = (11, 12, 13)


def check_opset(opset: int, targets: tuple[str, ...]) -> None:
    """Refuse an opset the exporter (or, for the hailo target, the DFC) cannot take, naming ``--opset``."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in EXPORT_OPSETS:
        raise InputError(
            f"--opset: {opset!r}; expected {EXPORT_OPSETS.start} to {EXPORT_OPSETS.stop - 1} "
            f"(torch's ONNX exporter), default {DEFAULT_OPSET}",
            field="opset",
        )
    if "hailo" in targets and opset not in HAILO_OPSETS:
        raise InputError(
            f"--opset: {opset} for target hailo; expected one of {', '.join(map(str, HAILO_OPSETS))} "
            "(what the Hailo Dataflow Compiler parses)",
            field="opset",
        )


def _torch_to_onnx(module: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool, opset: int) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buf,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            do_constant_folding=True,
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}} if dynamic_batch else None,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def reference_embeddings(model: TCNVAE, windows: np.ndarray) -> np.ndarray:
    """PyTorch mu for normalized [N,100,9] windows (the model with weight norm, in eval mode)."""
    with torch.no_grad():
        return model.eval()(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))).numpy()


def build_graph(
    model: TCNVAE, target: str, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None
) -> onnx.ModelProto:
    if target not in TARGETS:
        raise InputError(f"target: {target!r}; expected one of {', '.join(TARGETS)}")
    hailo = target == "hailo"
    module = ExportEncoder(model, "nchw" if hailo else "nlc")
    seq, ch = model.arch.sequence_length, model.arch.input_dim
    example = torch.zeros(1, ch, 1, seq) if hailo else torch.zeros(1, seq, ch)
    proto = _torch_to_onnx(module, example, dynamic_batch=target == "batch", opset=opset)
    # The last node carries the output's name too: the DFC takes node names as end nodes.
    proto.graph.node[-1].name = OUTPUT_NAME
    proto.producer_name = "model_tools"
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def verify_graph(proto: onnx.ModelProto, model: TCNVAE, target: str, norm: Normalization) -> ParityReport:
    names, windows = parity_windows(norm)
    reference = reference_embeddings(model, windows)
    seq, ch, latent = model.arch.sequence_length, model.arch.input_dim, model.arch.latent_dim
    if target == "hailo":
        return check_parity(
            proto, target, INPUT_NAME, [1, ch, 1, seq], OUTPUT_NAME, [1, latent], names, to_nchw(windows), reference
        )
    if target == "batch":
        return check_parity(
            proto,
            target,
            INPUT_NAME,
            ["N", seq, ch],
            OUTPUT_NAME,
            ["N", latent],
            names,
            windows,
            reference,
            batched=True,
        )
    return check_parity(proto, target, INPUT_NAME, [1, seq, ch], OUTPUT_NAME, [1, latent], names, windows, reference)


def write_atomic(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export(
    loaded: LoadedModel,
    norm: Normalization,
    out_dir: str | Path,
    targets: tuple[str, ...] = ("cpu", "batch", "hailo"),
    opset: int = DEFAULT_OPSET,
    model_id: str | None = None,
) -> dict[str, Any]:
    """Export and verify every target, then write them all; a failure of any writes none."""
    from .lint_hailo import lint_model

    out = check_out(out_dir, "--out", directory=True)
    check_opset(opset, targets)
    meta = {
        "model_id": model_id or loaded.default_model_id,
        "normalization_hash": norm.hash(),
        "source_sha256": loaded.sha256,
    }
    if loaded.untrained:
        meta["untrained"] = "true"
    blobs: dict[str, bytes] = {}
    result: dict[str, Any] = {"opset": opset, "targets": {}}
    for target in targets:
        progress(f"export {target}: tracing and checking against PyTorch")
        proto = build_graph(loaded.model, target, opset, meta)
        report = verify_graph(proto, loaded.model, target, norm)
        raise_on_failure(report, f"export {target}")
        entry: dict[str, Any] = {"file": TARGETS[target], "parity": report.to_dict()}
        if target == "hailo":
            lint = lint_model(proto)
            if not lint.passed:
                raise ParityError(
                    f"export hailo: the graph breaks Hailo-8 constraints: {lint.summary()}", lint=lint.to_dict()
                )
            entry["lint_hailo"] = lint.to_dict()
        blobs[target] = proto.SerializeToString()
        result["targets"][target] = entry
    out.mkdir(parents=True, exist_ok=True)
    for target, blob in blobs.items():
        write_atomic(out / TARGETS[target], blob)
        result["targets"][target]["bytes"] = len(blob)
    return result
