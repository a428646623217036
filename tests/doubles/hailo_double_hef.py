"""What the two Hailo doubles share: the test HEF file and the INT8 path behind it.

A real HEF is Hailo's own binary format and holds the quantized network. A test HEF
holds what the ``hailo_platform`` double needs to run the network the way the chip
would, so that a release directory (or a sidecar container) needs nothing else:

    b"\\x01HEF" b"DBL1" <header length, uint32 little endian> <header JSON> <payload>

The payload is an ONNX QDQ graph made by ONNX Runtime's static quantization from a
calibration set: per-channel int8 weights, uint8 activations over the calibration
range (MinMax), the embedding output at 16 bit as the model script's
``quantization_param(output_layer1, precision_mode=a16_w16)`` asks. Its answers carry
the error of an INT8 path, never fp32's exact numbers. How close that comes to the
Hailo-8's own numerics is not known: no Hailo-8 was used.

Both doubles run that graph through ``session``, with ONNX Runtime's graph optimizations
off: each QuantizeLinear / DequantizeLinear pair then rounds exactly as the scales say and
the arithmetic between them is float, the same on every CPU. Optimized, ONNX Runtime fuses
the pairs into integer kernels whose x86 form without VNNI (AVX2 only) adds u8 x s8
products pairwise into saturating int16, which cost the production model's emulator
cosine 0.974 on such a machine against over 0.98 with VNNI: a property of that kernel,
not of quantization, nor of the Hailo-8, which accumulates wider.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"\x01HEF"
TAG = b"DBL1"
FORMAT = 1
# Layouts of the embedded graph's input: the CPU graph [1,100,9] or the Hailo graph [1,9,1,100].
LAYOUTS = {"nwc": (1, 100, 9), "nchw": (1, 9, 1, 100)}

_quantized: dict[str, bytes] = {}  # compiling is deterministic: the same inputs give the same graph


class HefFormatError(ValueError):
    """The bytes are not a test HEF (or not a whole one)."""


def session(graph: bytes, threads: int = 0) -> Any:
    """An ONNX Runtime session of ``graph`` that computes the QDQ arithmetic alike on every CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(graph, sess_options=opts, providers=["CPUExecutionProvider"])


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    head = dict(header, format=FORMAT, payload_sha256=hashlib.sha256(payload).hexdigest(), payload_bytes=len(payload))
    text = json.dumps(head, sort_keys=True).encode()
    return MAGIC + TAG + struct.pack("<I", len(text)) + text + payload


def unpack(blob: bytes) -> tuple[dict[str, Any], bytes]:
    if blob[:4] != MAGIC:
        raise HefFormatError("does not start with b'\\x01HEF'")
    if blob[4:8] != TAG or len(blob) < 12:
        raise HefFormatError("not a test HEF of the Hailo doubles (no DBL1 tag)")
    (size,) = struct.unpack("<I", blob[8:12])
    try:
        header = json.loads(blob[12 : 12 + size])
    except ValueError as exc:
        raise HefFormatError(f"header is not JSON: {exc}") from None
    payload = blob[12 + size :]
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise HefFormatError(f"header format {header.get('format') if isinstance(header, dict) else None!r}")
    if len(payload) != header.get("payload_bytes") or hashlib.sha256(payload).hexdigest() != header.get(
        "payload_sha256"
    ):
        raise HefFormatError("payload does not match its sha256 (truncated or corrupted file)")
    return header, payload


def _with_normalization(model: Any, mean: Sequence[float], std: Sequence[float], layout: str) -> Any:
    """Prepend ``(x - mean) / std`` as Mul and Add, what the model script's ``normalization`` layer does."""
    from onnx import helper, numpy_helper

    shape = (9,) if layout == "nwc" else (9, 1, 1)
    scale = (1.0 / np.asarray(std, np.float32)).reshape(shape)
    bias = (-np.asarray(mean, np.float32) * scale.reshape(-1)).reshape(shape)
    name = model.graph.input[0].name
    inner = f"{name}__normalized"
    for node in model.graph.node:
        node.input[:] = [inner if i == name else i for i in node.input]
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(scale, "hef_norm_scale"),
            numpy_helper.from_array(bias.astype(np.float32), "hef_norm_bias"),
        ]
    )
    nodes = [
        helper.make_node("Mul", [name, "hef_norm_scale"], [f"{name}__scaled"], name="hef_normalization_mul"),
        helper.make_node("Add", [f"{name}__scaled", "hef_norm_bias"], [inner], name="hef_normalization_add"),
    ]
    rest = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes + rest)
    return model


def quantize(
    onnx_model: bytes,
    calibration: np.ndarray,
    layout: str,
    output_bits: int = 16,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    work_dir: str | Path | None = None,
) -> bytes:
    """The QDQ graph of ``onnx_model`` calibrated on ``calibration`` (batch-first, in the graph's layout).

    With ``normalization`` the graph takes raw windows and normalizes them itself; the
    calibration windows are then raw as well (hailo.md: calibration data must be raw
    when the model script holds ``normalization``).
    """
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calib = np.ascontiguousarray(calibration, dtype=np.float32)
    if calib.shape[1:] != LAYOUTS[layout][1:]:
        raise ValueError(
            f"calibration shape {list(calib.shape)}; expected [N, {', '.join(map(str, LAYOUTS[layout][1:]))}]"
        )
    key = hashlib.sha256(
        onnx_model + calib.tobytes() + json.dumps([layout, output_bits, normalization]).encode()
    ).hexdigest()
    if key in _quantized:
        return _quantized[key]
    model = onnx.load_from_string(onnx_model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset < 13:  # per-channel QDQ needs the axis attribute of opset 13
        model = version_converter.convert_version(model, 13)
    if normalization is not None:
        model = _with_normalization(model, normalization[0], normalization[1], layout)
    # Calibrated in batches of 128: the activation ranges (MinMax) are the same as one window at a time.
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]
    input_name, output_name = model.graph.input[0].name, model.graph.output[0].name

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.at = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.at >= len(calib):
                return None
            self.at += 128
            return {input_name: calib[self.at - 128 : self.at]}

    extra: dict[str, Any] = {"CalibTensorRangeSymmetric": False}
    if output_bits == 16:
        extra["TensorQuantOverrides"] = {output_name: [{"quant_type": QuantType.QUInt16}]}
    with tempfile.TemporaryDirectory(prefix=".hailo-double-", dir=work_dir) as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(model, str(src))
        # ONNX Runtime's quantizer advises on the root logger (pre-processing, opset 21 for 16 bit).
        logging.disable(logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(
                    str(src),
                    str(dst),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options=extra,
                    calibration_providers=["CPUExecutionProvider"],
                )
        finally:
            logging.disable(logging.NOTSET)
        blob = dst.read_bytes()
    _quantized[key] = blob
    return blob
