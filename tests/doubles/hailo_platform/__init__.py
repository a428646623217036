"""A test double of HailoRT's ``hailo_platform`` that follows the documented API.

It computes real outputs: a test HEF (``b"\\x01HEF"`` + a JSON header, see
``write_hef``) names an ONNX graph, and the double runs that graph with ONNX
Runtime behind VDevice / InferModel / bindings (HailoRT 4.18+) or HEF /
ConfigureParams / InferVStreams (4.17). It never returns made-up numbers.

Environment knobs (read when the object is used, so a test can set them per server):

- ``HAILO_DOUBLE_VERSION``: ``4.18`` (default, has ``VDevice.create_infer_model``) or ``4.17``.
- ``HAILO_DOUBLE_FAIL_STATUS``: a HailoRT status (26, 93, 92, 76, 74, 64, ...) to raise,
  at the point named by ``HAILO_DOUBLE_FAIL_AT``: ``vdevice`` (default), ``configure`` or ``run``.

Like HailoRT, one VDevice per process: a second live VDevice fails with status 74
(device busy), and a VDevice used from a forked child fails too.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "4.18.0-double"
DOUBLE = True


class HailoRTException(Exception):
    pass


class HailoRTStatusException(HailoRTException):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class HailoStreamInterface(enum.Enum):
    PCIe = 0
    ETH = 1


def _version() -> str:
    return os.environ.get("HAILO_DOUBLE_VERSION", "4.18")


def _maybe_fail(point: str) -> None:
    status = os.environ.get("HAILO_DOUBLE_FAIL_STATUS")
    if status and os.environ.get("HAILO_DOUBLE_FAIL_AT", "vdevice") == point:
        raise HailoRTStatusException(f"Failed at {point} (double). See hailort.log, status={int(status)}")


def write_hef(path: str | os.PathLike[str], onnx_path: str | os.PathLike[str], hw_arch: str = "hailo8") -> Path:
    """Write a test HEF that this double can load; the ONNX must take [1,100,9] and return [1,64]."""
    header = {
        "double": True,
        "hw_arch": hw_arch,
        "onnx": str(Path(onnx_path).resolve()),
        "network": "tcn_encoder",
        "inputs": [{"name": "tcn_encoder/input_layer1", "shape": [1, 100, 9]}],
        "outputs": [{"name": "tcn_encoder/fc1", "shape": [64]}],
    }
    p = Path(path)
    p.write_bytes(b"\x01HEF" + json.dumps(header).encode())
    return p


class _Net:
    """The compiled network behind a test HEF."""

    def __init__(self, hef_path: str) -> None:
        blob = Path(hef_path).read_bytes()
        if blob[:4] != b"\x01HEF":
            raise HailoRTStatusException(f"Invalid HEF {hef_path}, status=26")
        try:
            self.header = json.loads(blob[4:])
        except ValueError:
            raise HailoRTStatusException(f"Corrupted HEF {hef_path}, status=26") from None
        import onnxruntime as ort

        self.session = ort.InferenceSession(self.header["onnx"], providers=["CPUExecutionProvider"])
        self.input_name = self.header["inputs"][0]["name"]
        self.output_name = self.header["outputs"][0]["name"]
        self.input_shape = tuple(self.header["inputs"][0]["shape"])
        self.output_shape = tuple(self.header["outputs"][0]["shape"])

    def run_frame(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape != self.input_shape or frame.dtype != np.float32:
            raise HailoRTStatusException(
                f"buffer {frame.shape} {frame.dtype} != frame {self.input_shape} float32, status=6"
            )
        x = frame.reshape(1, 100, 9)
        ort_in = self.session.get_inputs()[0].name
        return self.session.run(None, {ort_in: x})[0].reshape(self.output_shape).astype(np.float32)


_live: dict[str, Any] = {"vdevice": None, "pid": None}


class _VDeviceParams:
    def __init__(self) -> None:
        self.scheduling_algorithm = HailoSchedulingAlgorithm.NONE
        self.device_ids: list[str] | None = None


class Device:
    @staticmethod
    def scan() -> list[str]:
        return ["0001:01:00.0"]


class VDevice:
    @staticmethod
    def create_params() -> _VDeviceParams:
        return _VDeviceParams()

    def __init__(self, params: _VDeviceParams | None = None) -> None:
        _maybe_fail("vdevice")
        if _live["vdevice"] is not None:
            raise HailoRTStatusException("Failed to create vdevice: the device is in use by another VDevice, status=74")
        self.params = params or _VDeviceParams()
        self.pid = os.getpid()
        self.released = False
        _live["vdevice"], _live["pid"] = self, self.pid

    def _check(self) -> None:
        if self.released:
            raise HailoRTStatusException("VDevice was released, status=8")
        if os.getpid() != self.pid:
            raise HailoRTStatusException("VDevice used from another process than its creator, status=74")

    def __getattribute__(self, name: str) -> Any:
        if name == "create_infer_model" and _version() < "4.18":
            raise AttributeError("'VDevice' object has no attribute 'create_infer_model' (HailoRT 4.17)")
        return object.__getattribute__(self, name)

    def create_infer_model(self, hef_source: str, name: str = "") -> InferModel:
        self._check()
        _maybe_fail("configure")
        if self.params.scheduling_algorithm == HailoSchedulingAlgorithm.NONE:
            raise HailoRTStatusException("InferModel needs the model scheduler (ROUND_ROBIN), status=6")
        return InferModel(_Net(hef_source))

    def configure(self, hef: HEF, configure_params: dict[str, Any] | None = None) -> list[ConfiguredNetwork]:
        self._check()
        _maybe_fail("configure")
        return [ConfiguredNetwork(hef.net)]

    def release(self) -> None:
        self.released = True
        if _live["vdevice"] is self:
            _live["vdevice"] = None

    def __enter__(self) -> VDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- HailoRT >= 4.18: InferModel ---------------------------------------------------------------


class _InferStream:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = shape
        self.format_type = FormatType.AUTO

    def set_format_type(self, format_type: FormatType) -> None:
        self.format_type = format_type


class InferModel:
    def __init__(self, net: _Net) -> None:
        self.net = net
        self._in = _InferStream(net.input_name, net.input_shape)
        self._out = _InferStream(net.output_name, net.output_shape)
        self.batch_size = 0

    @property
    def input_names(self) -> list[str]:
        return [self._in.name]

    @property
    def output_names(self) -> list[str]:
        return [self._out.name]

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def input(self, name: str | None = None) -> _InferStream:
        return self._in

    def output(self, name: str | None = None) -> _InferStream:
        return self._out

    def configure(self) -> ConfiguredInferModel:
        for s in (self._in, self._out):
            if s.format_type != FormatType.FLOAT32:
                raise HailoRTStatusException(
                    f"{s.name}: the double supports FLOAT32 only, got {s.format_type}, status=6"
                )
        return ConfiguredInferModel(self)


class _BoundBuffer:
    def __init__(self, shape: tuple[int, ...], buffer: np.ndarray | None = None) -> None:
        self.shape = shape
        self.buffer = buffer

    def set_buffer(self, buffer: np.ndarray) -> None:
        self.buffer = buffer

    def get_buffer(self) -> np.ndarray:
        if self.buffer is None:
            raise HailoRTStatusException("no buffer bound, status=6")
        return self.buffer


class Bindings:
    def __init__(self, model: InferModel, output_buffers: dict[str, np.ndarray]) -> None:
        self._in = _BoundBuffer(model.net.input_shape)
        out = output_buffers.get(model.net.output_name)
        if out is None or tuple(out.shape) != model.net.output_shape:
            raise HailoRTStatusException(
                f"output buffer for {model.net.output_name} must have shape {model.net.output_shape}, status=6"
            )
        self._out = _BoundBuffer(model.net.output_shape, out)

    def input(self, name: str | None = None) -> _BoundBuffer:
        return self._in

    def output(self, name: str | None = None) -> _BoundBuffer:
        return self._out


class ConfiguredInferModel:
    def __init__(self, model: InferModel) -> None:
        self.model = model
        self.active = False

    def __enter__(self) -> ConfiguredInferModel:
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False

    def create_bindings(
        self, input_buffers: dict[str, np.ndarray] | None = None, output_buffers: dict[str, np.ndarray] | None = None
    ) -> Bindings:
        return Bindings(self.model, output_buffers or {})

    def run(self, bindings: list[Bindings], timeout: int) -> None:
        if not self.active:
            raise HailoRTStatusException("ConfiguredInferModel used outside its context, status=8")
        _maybe_fail("run")
        for b in bindings:
            frame = b.input().get_buffer()
            b.output().get_buffer()[...] = self.model.net.run_frame(frame)


# --- HailoRT 4.17: HEF + InferVStreams ---------------------------------------------------------


class VStreamInfo:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = shape
        self.quant_info = None


class HEF:
    def __init__(self, hef_source: str) -> None:
        self.net = _Net(hef_source)

    def get_input_vstream_infos(self) -> list[VStreamInfo]:
        return [VStreamInfo(self.net.input_name, self.net.input_shape)]

    def get_output_vstream_infos(self) -> list[VStreamInfo]:
        return [VStreamInfo(self.net.output_name, self.net.output_shape)]

    def get_network_group_names(self) -> list[str]:
        return [self.net.header["network"]]


class ConfigureParams:
    @staticmethod
    def create_from_hef(hef: HEF, interface: HailoStreamInterface) -> dict[str, Any]:
        return {hef.net.header["network"]: {"interface": interface}}


class _VStreamParams:
    @staticmethod
    def make(
        network_group: ConfiguredNetwork, format_type: FormatType = FormatType.AUTO, **kwargs: Any
    ) -> dict[str, Any]:
        return {"format_type": format_type}


class InputVStreamParams(_VStreamParams):
    pass


class OutputVStreamParams(_VStreamParams):
    pass


class _Activation:
    def __init__(self, ng: ConfiguredNetwork) -> None:
        self.ng = ng

    def __enter__(self) -> _Activation:
        self.ng.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.ng.active = False


class ConfiguredNetwork:
    def __init__(self, net: _Net) -> None:
        self.net = net
        self.active = False

    def create_params(self) -> dict[str, Any]:
        return {}

    def activate(self, params: dict[str, Any] | None = None) -> _Activation:
        return _Activation(self)


class InferVStreams:
    def __init__(
        self, configured_network: ConfiguredNetwork, input_params: dict[str, Any], output_params: dict[str, Any]
    ) -> None:
        if (
            input_params.get("format_type") != FormatType.FLOAT32
            or output_params.get("format_type") != FormatType.FLOAT32
        ):
            raise HailoRTStatusException("the double supports FLOAT32 vstreams only, status=6")
        self.ng = configured_network

    def __enter__(self) -> InferVStreams:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def infer(self, input_data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.ng.active:
            raise HailoRTStatusException("network group is not activated, status=8")
        _maybe_fail("run")
        x = input_data[self.ng.net.input_name]
        if x.ndim != len(self.ng.net.input_shape) + 1:
            raise HailoRTStatusException(
                f"expected a batch of frames {self.ng.net.input_shape}, got {x.shape}, status=6"
            )
        return {self.ng.net.output_name: np.stack([self.ng.net.run_frame(f) for f in x])}
