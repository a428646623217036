"""``adopt``: a release from an existing ONNX with the production model's interface.

There is no checkpoint, so the references (golden set, batch variant check) come from
ONNX Runtime on the adopted graph itself, and there is no Hailo graph to compile.
Like ``build``, everything is staged beside ``--out`` and renamed into place at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeinfer_contract import FILES, INPUT_NAME, OUTPUT_NAME, GoldenSet, Normalization, sha256_file

from ._io import staging_dir
from .checks import (
    check_interface,
    check_release_arguments,
    load_onnx,
)
from .config import normalization_of, provenance, read_config
from .golden import make_golden
from .model import Architecture
from .parity import check_parity, session
from .release_steps import NO_HEF, edge_serving, int8_stage, seal, stage_calibration, write_model_config
from .windows import parity_windows


def _batch_variant(proto: onnx.ModelProto, norm: Any) -> tuple[bytes | None, dict[str, Any]]:
    """The same graph with batch axis ``N``, kept only if it reproduces the batch-1 graph."""
    batch = onnx.ModelProto()
    batch.CopyFrom(proto)
    for vi in (batch.graph.input[0], batch.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    del batch.graph.value_info[:]
    names, windows = parity_windows(norm)
    sess = session(proto)
    ref = np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: windows[i : i + 1]})[0] for i in range(len(windows))])
    latent = ref.shape[1]
    try:
        report = check_parity(
            batch, "batch", INPUT_NAME, ["N", 100, 9], OUTPUT_NAME, ["N", latent], names, windows, ref, batched=True
        )
    except Exception as exc:  # onnxruntime refuses the graph: no batch variant
        return None, {"skipped": True, "note": f"dynamic batch not possible for this graph: {exc}"}
    if not report.passed:
        return None, {"skipped": True, "note": "; ".join(report.problems)}
    return batch.SerializeToString(), report.to_dict()


def _onnxruntime_reference(proto: onnx.ModelProto) -> Callable[[np.ndarray], np.ndarray]:
    """The adopted graph's embeddings of a window batch, one window a run (the graph is batch 1)."""
    sess = session(proto)

    def reference(x: np.ndarray) -> np.ndarray:
        return np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + 1]})[0] for i in range(len(x))])

    return reference


def _stage_onnx(stage: Path, src: Path, proto: onnx.ModelProto, norm: Normalization) -> dict[str, Any]:
    """The adopted graph as model.onnx, and its batch variant when it holds; returns the batch report."""
    shutil.copyfile(src, stage / FILES["onnx"])
    blob, batch_report = _batch_variant(proto, norm)
    if blob is not None:
        (stage / FILES["onnx_batch"]).write_bytes(blob)
    return batch_report


def _adopted_config(
    stage: Path,
    src: Path,
    proto: onnx.ModelProto,
    cfg_in: dict[str, Any],
    norm: Normalization,
    model_id: str,
    model_version: str,
    onnx_sha: str,
) -> dict[str, Any]:
    """model_config.json: the given config's architecture and files, with the adopted ONNX's provenance."""
    prov = provenance(
        next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        None,
        None,
        source_kind="onnx",
        source_onnx=src.name,
        source_onnx_sha256=onnx_sha,
    )
    files = dict(cfg_in.get("files") or {})
    files.update(onnx_model=FILES["onnx"], adopted_from=src.name)
    return write_model_config(
        stage,
        files,
        norm=norm,
        model_id=model_id,
        model_version=model_version,
        arch=Architecture.from_config(cfg_in),
        prov=prov,
        untrained=False,
        base=cfg_in,
    )


def adopt(
    onnx_path: str | Path,
    config: str | Path,
    out: str | Path,
    model_version: str,
    signing_key: str | Path | None = None,
    model_id: str | None = None,
    golden_count: int = 64,
    calibration_count: int = 2000,
    calibration_source: str | Path | None = None,
    int8_floor: float | None = None,
    require_int8: bool = False,
) -> dict[str, Any]:
    """Wrap an existing ONNX with the production model's interface (``imu_window`` [1,100,9] ->
    ``latent_embeddings`` [1,64]) into a release; references come from ONNX Runtime."""
    # Every argument is checked before the first graph is run: a mistake costs no calibration.
    out_dir = check_release_arguments(model_version, out, signing_key, golden_count, calibration_count, int8_floor)
    src = Path(onnx_path)
    proto = load_onnx(src, "--onnx")
    check_interface(proto, src, "--onnx")
    cfg_in = read_config(config)
    norm = normalization_of(cfg_in)
    assert norm is not None  # read_config checked it
    onnx_sha = sha256_file(src)
    mid = model_id or f"tcn-vae-onnx-{onnx_sha[:12]}"
    reference = _onnxruntime_reference(proto)
    result: dict[str, Any] = {
        "changed": True,
        "release": str(out_dir),
        "source_onnx_sha256": onnx_sha,
        "model_version": model_version,
        "model_id": mid,
    }
    with staging_dir(out_dir) as stage:
        result["batch"] = _stage_onnx(stage, src, proto, norm)
        golden: GoldenSet = make_golden(
            reference, norm, mid, golden_count, reference_name="onnxruntime", source_onnx_sha256=onnx_sha
        )
        golden.save(stage / FILES["golden"])
        calib, result["calibration"] = stage_calibration(stage, norm, calibration_count, calibration_source)
        result["int8"] = int8_stage(stage, calib, golden, norm, int8_floor, require_int8)
        result["hailo"] = {
            "skipped": True,
            "note": f"adopt has no checkpoint to export the Hailo graph from ('lint-hailo' on this ONNX lists why it cannot be compiled as is): {NO_HEF}",
        }
        result["edge_serving"] = edge_serving(result["hailo"])
        cfg = _adopted_config(stage, src, proto, cfg_in, norm, mid, model_version, onnx_sha)
        source = {"source_sha256": onnx_sha, "source_kind": "onnx", "untrained": False}
        seal(stage, out_dir, model_version, signing_key, result, cfg, source)
    return result
