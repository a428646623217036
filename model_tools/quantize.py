"""INT8 static quantization with ONNX Runtime: the CPU-side estimate of what INT8 costs."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import version_converter

from edgeinfer_contract import INPUT_NAME, OUTPUT_NAME, QUALITY_FLOORS, GoldenSet, Normalization, sha256_file

from ._io import progress
from .checks import check_floor, check_interface, check_out, load_onnx
from .errors import InputError, QuantizationError
from .golden import golden_inputs
from .parity import cosine_rows, session

# The build holds INT8 to the floor the edge's self-check holds it to: one table, in
# edgeinfer_contract, so that what passes here passes there.
DEFAULT_FLOOR = QUALITY_FLOORS["int8"]


def fidelity(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    cos = cosine_rows(got, ref)
    return {
        "cosine_min": float(cos.min()),
        "cosine_p5": float(np.percentile(cos, 5)),
        "cosine_mean": float(cos.mean()),
        "max_abs_diff": float(np.abs(got.astype(np.float64).reshape(len(ref), -1) - ref).max()),
        "windows": len(ref),
    }


def run_each(sess: Any, x: np.ndarray, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME) -> np.ndarray:
    return np.concatenate([sess.run([output_name], {input_name: x[i : i + 1]})[0] for i in range(len(x))])


def _calibration_windows(calibration: np.ndarray) -> np.ndarray:
    """The calibration set as contiguous float32 [N,100,9]: the Hailo layout [N,1,100,9] is accepted too."""
    if calibration.ndim == 4:
        calibration = calibration[:, 0]
    if calibration.ndim != 3 or calibration.shape[1:] != (100, 9):
        raise InputError(f"calibration: shape {list(calibration.shape)}; expected [N,1,100,9] or [N,100,9]")
    return np.ascontiguousarray(calibration, dtype=np.float32)


def _calibration_reader(calib: np.ndarray) -> Any:
    """ONNX Runtime's calibration reader over ``calib``, one window a batch."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(calib):
                return None
            self.i += 1
            return {INPUT_NAME: calib[self.i - 1 : self.i]}

    return _Reader()


def _quantize(model_input: Path, tmp: Path, calib: np.ndarray) -> None:
    """QDQ, per-channel int8 weights, int8 activations (MinMax), written to ``tmp``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(
            str(model_input),
            str(tmp),
            _calibration_reader(calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False},
            calibration_providers=["CPUExecutionProvider"],
            use_external_data_format=False,
        )


def _staging_paths(out: Path) -> tuple[Path, Path]:
    """A temp file beside ``out`` for the INT8 graph, and a name for the opset-13 copy of the input."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    return tmp, tmp.with_suffix(".opset13.onnx")


def _golden_fidelity(
    fp32: Path, int8: Path, golden: GoldenSet, norm: Normalization
) -> tuple[dict[str, float], dict[str, float]]:
    """Both graphs against the golden set's references: the fp32 figures say what INT8 alone costs."""
    x, ref = golden_inputs(golden, norm)
    return fidelity(run_each(session(str(fp32)), x), ref), fidelity(run_each(session(str(int8)), x), ref)


def quantize_check(
    fp32_onnx: str | Path,
    calibration: np.ndarray,
    golden: GoldenSet,
    norm: Normalization,
    out_path: str | Path,
    floor: float | None = None,
) -> dict[str, Any]:
    """Quantize ``fp32_onnx`` (input [1,100,9]) and check it on the golden set; write only if it passes.

    ``floor``: the least cosine on every golden window; None for QUALITY_FLOORS["int8"].
    """
    floor_source = "edgeinfer_contract.QUALITY_FLOORS['int8']" if floor is None else "--floor"
    floor = DEFAULT_FLOOR if check_floor(floor, "--floor") is None else floor
    src, out = Path(fp32_onnx), check_out(out_path, "--out")
    model = load_onnx(src, "--onnx")
    # A graph of another interface would fail inside ONNX Runtime, after the calibration.
    check_interface(model, src, "--onnx", any_batch=True)
    calib = _calibration_windows(calibration)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    progress(f"quantize-check: calibrating INT8 on {len(calib)} windows")
    tmp, upgraded = _staging_paths(out)
    try:
        model_input = src
        if opset < 13:  # per-channel QDQ needs the axis attribute of opset 13
            onnx.save(version_converter.convert_version(model, 13), str(upgraded))
            model_input = upgraded
        _quantize(model_input, tmp, calib)
        fp32, int8 = _golden_fidelity(src, tmp, golden, norm)
        result = {
            "file": out.name,
            "floor": floor,
            "floor_source": floor_source,
            "calibration_windows": len(calib),
            "opset": max(opset, 13),
            "format": "QDQ, per-channel int8 weights, int8 activations (MinMax)",
            "int8_vs_reference": int8,
            "fp32_onnx_vs_reference": fp32,
        }
        if int8["cosine_min"] < floor:
            raise QuantizationError(
                f"INT8 min cosine {int8['cosine_min']:.5f} on the golden set is below the floor {floor}; "
                "nothing written (check the calibration set, or keep this model on fp32)",
                result=result,
            )
        tmp.chmod(0o644)
        os.replace(tmp, out)
        result["bytes"] = out.stat().st_size
        result["sha256"] = sha256_file(out)
        return result
    finally:
        tmp.unlink(missing_ok=True)
        upgraded.unlink(missing_ok=True)
