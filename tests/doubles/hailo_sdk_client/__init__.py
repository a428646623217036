"""A test double of the Hailo Dataflow Compiler's Python API (``hailo_sdk_client``).

It follows the documented call sequence and signatures (``ClientRunner(hw_arch=...)``,
``translate_onnx_model``, ``load_model_script``, ``optimize``, ``compile``,
``infer_context`` / ``infer``) and computes real outputs. ``optimize`` quantizes the
translated ONNX from the calibration set (ONNX Runtime static quantization, QDQ: int8
weights, uint8 activations, the output at 16 bit; see ``hailo_double_hef``), using the
first ``calibset_size`` windows of the model script (64 when it names none, the DFC's
default). The emulator runs that graph in ``SDK_QUANTIZED`` and the fp32 graph in
``SDK_NATIVE``, on NHWC input converted to NCHW. ``compile()`` returns a test HEF
(``b"\\x01HEF"``, a header, the quantized graph) that the ``hailo_platform`` double
loads and runs: the HEF serves what the emulator measured. It is not a HEF that HailoRT
can load.

Failures to simulate, via the environment variable ``HAILO_DOUBLE_FAIL``:
``parser`` (translate raises ParsingWithRecommendationException), ``bad_magic``
(compile returns bytes without the magic), ``poor_fidelity`` (the emulator
quantizes weights to 3 bits before calibrating, a real but poor approximation).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from .model_translator.exceptions import MisspellNodeError, ParsingWithRecommendationException, UnsupportedModelError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    import hailo_double_hef as _hef
finally:
    sys.path.pop(0)

__version__ = "3.33.0"
_PAIRED_HAILORT = "4.23"  # DFC 3.33 compiles for HailoRT 4.23 (hailo.md)
DEFAULT_CALIBSET_SIZE = 64
IS_TEST_DOUBLE = True
_SUPPORTED_OPS = {
    "Conv",
    "Relu",
    "Add",
    "GlobalAveragePool",
    "Flatten",
    "Gemm",
    "MatMul",
    "Concat",
    "MaxPool",
    "AveragePool",
    "Sigmoid",
}
_ARCHS = {"hailo8", "hailo8l", "hailo8r", "hailo10h", "hailo15h", "hailo15m"}
_COMMANDS = re.compile(
    r"^\s*(?:\w+\s*=\s*)?(normalization|model_optimization_flavor|model_optimization_config|quantization_param|performance_param|resources_param|allocator_param)\(.*\)\s*$"
)


def _fail(mode: str) -> bool:
    return os.environ.get("HAILO_DOUBLE_FAIL", "") == mode


class InferenceContext(enum.Enum):
    SDK_NATIVE = "native"
    SDK_FP_OPTIMIZED = "fp_optimized"
    SDK_QUANTIZED = "quantized"
    SDK_HAILO_HW = "hw"


def _fake_quant_per_channel(w: np.ndarray, bits: int) -> np.ndarray:
    q = 2 ** (bits - 1) - 1
    flat = w.reshape(w.shape[0], -1)
    scale = np.abs(flat).max(axis=1, keepdims=True) / q
    scale[scale == 0] = 1.0
    return (np.round(flat / scale).clip(-q, q) * scale).reshape(w.shape).astype(np.float32)


class ClientRunner:
    def __init__(self, hw_arch: str = "hailo8", har: str | None = None):
        if hw_arch not in _ARCHS:
            raise ValueError(f"Unsupported hw_arch {hw_arch}")
        self.hw_arch = hw_arch
        self._model: onnx.ModelProto | None = None
        self._net_name = ""
        self._script = ""
        self._quantized: bytes | None = None
        self._state = "empty"
        self._input_shape: list[int] = []

    # --- translation -----------------------------------------------------
    def translate_onnx_model(
        self, model, net_name, start_node_names=None, end_node_names=None, net_input_shapes=None, **kwargs
    ):
        if _fail("parser"):
            raise ParsingWithRecommendationException(
                "simulated parser failure", recommended_end_node_names=["latent_embeddings"]
            )
        if not re.fullmatch(r"[a-z0-9_]+", net_name):
            raise ValueError(f"net_name {net_name!r} must match [a-z0-9_]+")
        proto = onnx.load(model) if isinstance(model, str) else model
        inits = {i.name for i in proto.graph.initializer}
        inputs = {
            i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input
            if i.name not in inits
        }
        names = {n.name for n in proto.graph.node} | {o for n in proto.graph.node for o in n.output}
        for s in start_node_names or []:
            if s not in inputs and s not in names:
                raise MisspellNodeError(f"start node {s} not found in the model")
        for e in end_node_names or []:
            if e not in names:
                raise MisspellNodeError(f"end node {e} not found in the model")
        for name, shape in (net_input_shapes or {}).items():
            if inputs.get(name) != list(shape):
                raise UnsupportedModelError(
                    f"net_input_shapes[{name}]={list(shape)} does not match the model ({inputs.get(name)})"
                )
        bad = sorted({n.op_type for n in proto.graph.node if n.op_type not in _SUPPORTED_OPS | {"Constant"}})
        if bad:
            raise UnsupportedModelError(f"unsupported layers: {', '.join(bad)}")
        self._model, self._net_name, self._state = proto, net_name, "translated"
        self._input_shape = next(iter(inputs.values()))
        return net_name, {}

    def load_model_script(self, model_script: str, append: bool = False):
        if self._state == "empty":
            raise RuntimeError("load_model_script before translate_onnx_model")
        text = (
            Path(model_script).read_text()
            if "\n" not in model_script and os.path.isfile(model_script)
            else model_script
        )
        for line in text.splitlines():
            if line.strip() and not line.strip().startswith("#") and not _COMMANDS.match(line):
                raise ValueError(f"model script: unknown command {line!r}")
        self._script = (self._script + "\n" + text) if append else text

    # --- optimization ----------------------------------------------------
    def optimize(self, calib_data, data_type=None, work_dir=None):
        if self._state != "translated":
            raise RuntimeError(f"optimize in state {self._state}; translate first")
        data = next(iter(calib_data.values())) if isinstance(calib_data, dict) else calib_data
        data = np.asarray(data)
        n, c, h, w = self._input_shape
        if data.ndim != 4 or data.shape[1:] != (h, w, c) or data.dtype != np.float32:
            raise ValueError(f"calibration data {data.dtype} {data.shape}; expected float32 (N,{h},{w},{c}) NHWC")
        if len(data) < 1024:
            raise ValueError(f"calibration set of {len(data)} images; at least 1024 expected")
        size = re.search(r"calibset_size\s*=\s*(\d+)", self._script)
        data = data[: int(size.group(1)) if size else DEFAULT_CALIBSET_SIZE]
        norm = re.search(r"normalization\(\s*\[([^\]]*)\]\s*,\s*\[([^\]]*)\]\s*\)", self._script)
        normalization = None
        if norm:  # the HEF normalizes on chip; the calibration data is raw (hailo.md)
            normalization = tuple([float(v) for v in part.split(",")] for part in norm.groups())
        bits = 3 if _fail("poor_fidelity") else None
        source = self._emulated_model(bits) if bits else self._model.SerializeToString()  # type: ignore[union-attr]
        nchw = np.ascontiguousarray(data.transpose(0, 3, 1, 2))
        self._quantized = _hef.quantize(source, nchw, "nchw", 16, normalization, work_dir)
        self._state = "quantized"

    # --- emulation -------------------------------------------------------
    @contextlib.contextmanager
    def infer_context(self, target: InferenceContext, **kwargs):
        if target is InferenceContext.SDK_QUANTIZED and self._state not in ("quantized", "compiled"):
            raise RuntimeError("SDK_QUANTIZED needs an optimized model")
        yield {"target": target}

    def _emulated_model(self, bits: int) -> bytes:
        """The translated model with its Conv and Gemm weights rounded to ``bits``."""
        assert self._model is not None
        proto = onnx.ModelProto()
        proto.CopyFrom(self._model)
        weights = {n.input[1] for n in proto.graph.node if n.op_type in ("Conv", "Gemm")}
        for init in proto.graph.initializer:
            if init.name in weights:
                init.CopyFrom(
                    numpy_helper.from_array(_fake_quant_per_channel(numpy_helper.to_array(init), bits), init.name)
                )
        return proto.SerializeToString()

    def infer(self, context, dataset, batch_size: int = 1, data_count=None):
        target = context["target"]
        x = np.asarray(next(iter(dataset.values())) if isinstance(dataset, dict) else dataset, dtype=np.float32)
        quantized = target is InferenceContext.SDK_QUANTIZED
        blob = self._quantized if quantized else self._model.SerializeToString()  # type: ignore[union-attr]
        sess = _hef.session(blob)
        name = sess.get_inputs()[0].name
        nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return np.concatenate([sess.run(None, {name: nchw[i : i + 1]})[0] for i in range(len(nchw))])

    # --- compilation -----------------------------------------------------
    def compile(self) -> bytes:
        if self._state != "quantized":
            raise RuntimeError(f"compile in state {self._state}; optimize first")
        assert self._model is not None and self._quantized is not None
        self._state = "compiled"
        out = ort.InferenceSession(self._quantized, providers=["CPUExecutionProvider"]).get_outputs()[0]
        header = {
            "test_double": True,
            "net_name": self._net_name,
            "network": self._net_name,
            "hw_arch": self.hw_arch,
            "hailort_version": _PAIRED_HAILORT,
            "layout": "nchw",
            "input_shape": self._input_shape,
            "input_units": "raw" if "normalization(" in self._script else "normalized",
            "inputs": [
                {"name": f"{self._net_name}/input_layer1", "shape": [1, self._input_shape[3], self._input_shape[1]]}
            ],
            "outputs": [{"name": f"{self._net_name}/fc1", "shape": [int(out.shape[-1])]}],
            "onnx_sha256": hashlib.sha256(self._model.SerializeToString()).hexdigest(),
            "model_script": self._script,
            "ops": sorted({n.op_type for n in self._model.graph.node}),
        }
        hef = _hef.pack(header, self._quantized)
        return b"JSON" + hef[4:] if _fail("bad_magic") else hef

    def save_har(self, path: str) -> None:
        import json

        with open(path, "w") as fh:
            json.dump({"test_double": True, "state": self._state, "net_name": self._net_name}, fh)
