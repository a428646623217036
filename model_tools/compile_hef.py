"""``compile``: a HEF through the Hailo Dataflow Compiler Python API, checked before it is written.

Sequence (hailo_sdk_client 3.x): ``ClientRunner(hw_arch)`` -> ``translate_onnx_model``
-> ``load_model_script`` -> ``optimize(calib)`` -> emulator (``SDK_QUANTIZED``) on
the golden set vs ONNX Runtime -> ``compile()`` -> ``\\x01HEF`` magic -> write
``model.hef`` and ``deployment_metadata.json``. Nothing is written on any failure.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgeinfer_contract import FILES, INPUT_NAME, OUTPUT_NAME, QUALITY_FLOORS, GoldenSet, Normalization

from ._io import progress, write_json
from .checks import check_floor, check_out
from .config import now_iso
from .errors import CompileError, DfcMissingError, HailoLintError, QuantizationError
from .export import write_atomic
from .golden import golden_inputs
from .lint_hailo import lint_file
from .parity import session
from .quantize import fidelity
from .windows import to_nchw, to_nhwc

HEF_MAGIC = b"\x01HEF"
HW_ARCHS = ("hailo8", "hailo8l", "hailo8r")
# The emulator (SDK_QUANTIZED) is held to the floor the edge's self-check holds the Hailo-8
# to (one table, in edgeinfer_contract). The emulator is compared with ONNX Runtime on
# model_hailo.onnx, the edge with golden.json's PyTorch references: the two fp32 graphs
# agree to far better than the gap between the fp32 and hailo floors.
DEFAULT_FLOOR = QUALITY_FLOORS["hailo"]
# DFC 3.x compiles for HailoRT 4.x: a HEF must be loaded by the HailoRT its DFC pairs with.
HAILORT_FOR_DFC = {
    "3.27": "4.17",
    "3.28": "4.18",
    "3.29": "4.19",
    "3.30": "4.20",
    "3.31": "4.21",
    "3.32": "4.22",
    "3.33": "4.23",
}
INSTALL_HINT = (
    "the Hailo Dataflow Compiler (python module hailo_sdk_client) is not installed. It is not on PyPI: "
    "download 'Dataflow Compiler' for Linux x86_64 from https://hailo.ai/developer-zone/software-downloads/ "
    "(free account), pick the DFC 3.x that pairs with the edge's HailoRT (3.33 <-> HailoRT 4.23, 3.28 <-> 4.18, ...), "
    "and run 'pip install hailo_dataflow_compiler-3.XX.0-py3-none-linux_x86_64.whl' in this Python environment"
)


def import_dfc() -> ModuleType:
    try:
        return importlib.import_module("hailo_sdk_client")
    except ImportError as exc:
        raise DfcMissingError(INSTALL_HINT, import_error=str(exc)) from None


def dfc_available() -> bool:
    try:
        import_dfc()
    except DfcMissingError:
        return False
    return True


def dfc_version(dfc: ModuleType) -> str:
    version = getattr(dfc, "__version__", None)
    if not version:
        from importlib import metadata

        try:
            version = metadata.version("hailo_dataflow_compiler")
        except metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def paired_hailort(version: str) -> str | None:
    return HAILORT_FOR_DFC.get(".".join(version.split(".")[:2]))


def model_script(calib_count: int) -> str:
    """The model script: no on-chip normalization (the host normalizes), 16-bit embedding output."""
    return "\n".join(
        [
            "model_optimization_flavor(optimization_level=2, compression_level=0)",
            f"model_optimization_config(calibration, batch_size=8, calibset_size={min(calib_count, 2048)})",
            "quantization_param(output_layer1, precision_mode=a16_w16)",
            "performance_param(compiler_optimization_level=max)",
            "",
        ]
    )


def _stage(stage: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the DFC raises its own exception classes, without a documented common base
        raise CompileError(
            f"DFC {stage} failed: {type(exc).__name__}: {exc}", stage=stage, exception=type(exc).__name__
        ) from None


def _check_inputs(src: Path, calibration: np.ndarray, hw_arch: str, net_name: str) -> None:
    """Refuse what the DFC would fail on, late and obscurely: an unknown arch, a bad name, a graph
    that breaks the Hailo-8 rules, a calibration set of the wrong layout."""
    if hw_arch not in HW_ARCHS:
        raise CompileError(f"hw_arch: {hw_arch!r}; expected one of {', '.join(HW_ARCHS)} (Hailo-8 family, DFC 3.x)")
    if not re.fullmatch(r"[a-z0-9_]+", net_name):
        raise CompileError(f"net_name: {net_name!r}; expected [a-z0-9_]+")
    lint = lint_file(src)
    if not lint.passed:
        raise HailoLintError(f"{src} breaks Hailo-8 constraints: {lint.summary()}", lint=lint.to_dict())
    if calibration.ndim != 4 or calibration.shape[1:] != (1, 100, 9) or calibration.dtype != np.float32:
        raise CompileError(f"calibration: {calibration.dtype} {list(calibration.shape)}; expected float32 [N,1,100,9]")


def _translate_and_optimize(
    dfc: ModuleType, src: Path, calibration: np.ndarray, hw_arch: str, net_name: str, version: str
) -> tuple[Any, str]:
    """The runner after parsing, the model script and INT8 calibration; with the script it was given."""
    progress(f"compile: DFC {version}, hw_arch {hw_arch}: translate")
    runner = _stage("ClientRunner", dfc.ClientRunner, hw_arch=hw_arch)
    _stage(
        "translate_onnx_model",
        runner.translate_onnx_model,
        str(src),
        net_name,
        start_node_names=[INPUT_NAME],
        end_node_names=[OUTPUT_NAME],
        net_input_shapes={INPUT_NAME: [1, 9, 1, 100]},
    )
    script = model_script(len(calibration))
    _stage("load_model_script", runner.load_model_script, script)
    progress(f"compile: optimize (INT8 calibration on {len(calibration)} windows)")
    _stage("optimize", runner.optimize, calibration)
    return runner, script


def _emulator_fidelity(
    dfc: ModuleType,
    runner: Any,
    src: Path,
    golden: GoldenSet,
    norm: Normalization,
    floor: float,
    floor_source: str,
) -> tuple[dict[str, Any], np.ndarray]:
    """The quantized model in the emulator against ONNX Runtime on the golden windows; below
    ``floor`` nothing is compiled. Returns the fidelity figures and the ONNX Runtime outputs."""
    x, _ = golden_inputs(golden, norm)
    ort_sess = session(str(src))
    nchw = to_nchw(x)
    reference = np.concatenate([ort_sess.run([OUTPUT_NAME], {INPUT_NAME: nchw[i : i + 1]})[0] for i in range(len(x))])
    progress("compile: emulator (SDK_QUANTIZED) vs ONNX Runtime on the golden set")
    with runner.infer_context(dfc.InferenceContext.SDK_QUANTIZED) as ctx:
        emulated = np.asarray(_stage("infer", runner.infer, ctx, to_nhwc(x)), dtype=np.float32)
    if emulated.size != reference.size:
        raise CompileError(f"emulator output shape {list(emulated.shape)}; expected {len(x)} x {reference.shape[-1]}")
    fid: dict[str, Any] = fidelity(emulated.reshape(reference.shape), reference)
    fid["floor"] = floor
    fid["floor_source"] = floor_source
    if fid["cosine_min"] < floor:
        raise QuantizationError(
            f"Hailo emulator (SDK_QUANTIZED) min cosine {fid['cosine_min']:.5f} vs ONNX Runtime is below {floor}; "
            "no HEF written (check the calibration set and the model script)",
            fidelity=fid,
        )
    return fid, reference


def _compile(runner: Any) -> bytes:
    """``compile()``'s HEF, refused unless it starts with the magic every real HEF starts with."""
    progress("compile: compile()")
    hef = _stage("compile", runner.compile)
    if not isinstance(hef, (bytes, bytearray)) or bytes(hef[:4]) != HEF_MAGIC:
        head = bytes(hef[:8]) if isinstance(hef, (bytes, bytearray)) else type(hef).__name__
        raise CompileError(
            f"compile() returned {head!r}, not a HEF (expected it to start with {HEF_MAGIC!r}); nothing written"
        )
    return bytes(hef)


def _write(out: Path, hef: bytes, metadata: dict[str, Any]) -> None:
    """model.hef, then deployment_metadata.json, each replaced whole: a reader never sees half a file."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / FILES["hef"], hef)
    tmp_meta = out / f".{FILES['hailo_metadata']}.tmp"
    write_json(tmp_meta, metadata)
    tmp_meta.replace(out / FILES["hailo_metadata"])


def compile_hef(
    hailo_onnx: str | Path,
    calibration: np.ndarray,
    golden: GoldenSet,
    norm: Normalization,
    out_dir: str | Path,
    hw_arch: str = "hailo8",
    net_name: str = "tcn_encoder",
    floor: float | None = None,
    calibration_sha256: str | None = None,
) -> dict[str, Any]:
    """``floor``: the least emulator cosine on every golden window; None for QUALITY_FLOORS["hailo"]."""
    floor_source = "edgeinfer_contract.QUALITY_FLOORS['hailo']" if floor is None else "--floor"
    floor = DEFAULT_FLOOR if check_floor(floor, "--floor") is None else floor
    # Checked before the DFC's minutes of work, not when model.hef is written.
    src, out = Path(hailo_onnx), check_out(out_dir, "--out", directory=True)
    _check_inputs(src, calibration, hw_arch, net_name)
    dfc = import_dfc()
    version = dfc_version(dfc)
    runner, script = _translate_and_optimize(dfc, src, calibration, hw_arch, net_name, version)
    fid, reference = _emulator_fidelity(dfc, runner, src, golden, norm, floor, floor_source)
    hef = _compile(runner)
    metadata = {
        "created": now_iso(),
        "dfc_version": version,
        "dfc_test_double": bool(getattr(dfc, "IS_TEST_DOUBLE", False)),
        "hw_arch": hw_arch,
        "hailort_version": paired_hailort(version),
        "net_name": net_name,
        "input": {"name": INPUT_NAME, "onnx_shape": [1, 9, 1, 100], "nhwc_shape": [1, 1, 100, 9], "normalized": True},
        # The model script holds no normalization: the host normalizes (the sidecar reads this).
        "input_units": "normalized",
        "output": {"name": OUTPUT_NAME, "shape": [1, reference.shape[-1]]},
        "source_onnx_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "calibration_sha256": calibration_sha256 or hashlib.sha256(calibration.tobytes()).hexdigest(),
        "calibration_windows": len(calibration),
        "model_script": script,
        "fidelity": {"emulator_vs_onnxruntime": fid},
        "hef_sha256": hashlib.sha256(hef).hexdigest(),
        "hef_bytes": len(hef),
        "normalization_hash": norm.hash(),
    }
    _write(out, hef, metadata)
    return {"hef": FILES["hef"], "metadata": FILES["hailo_metadata"], **metadata}
