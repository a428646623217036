"""A test double of HailoRT's ``hailo_platform`` that follows the documented API.

It computes real outputs with the error of an INT8 path: a test HEF (``write_hef``, or
the ``hailo_sdk_client`` double's ``compile()``) holds an ONNX QDQ graph quantized from
a calibration set (see ``hailo_double_hef``), and this double runs it with ONNX
Runtime behind VDevice / InferModel / bindings (HailoRT 4.18+) or HEF /
ConfigureParams / InferVStreams (4.17). It never returns fp32's exact numbers, nor
made-up ones.

Failures are raised as pyhailort raises them: libhailort's status exception
(``args[0]`` is the status) wrapped in the Python class that pyhailort's
``ExceptionWrapper`` picks for it (``HailoRTTimeout`` for 4, ``HailoRTInvalidHEFException``
for 26, else ``HailoRTException("libhailort failed with error: N (NAME)")``), raised
``from`` the status exception. The message of a timeout or an invalid HEF has no number:
the status is on ``__cause__``.

The state of the simulated machine, read when an object is used (so a test can set it
per server):

- ``HAILO_DOUBLE_VERSION``: libhailort's version, ``4.18`` by default; ``4.17`` has no
  ``VDevice.create_infer_model``. A HEF needing a newer HailoRT fails with 92.
- ``HAILO_DOUBLE_DRIVER_VERSION``: the kernel driver's version, by default the same;
  another one fails VDevice creation with 76.
- ``HAILO_DOUBLE_ARCH``: the device, ``hailo8`` by default (``hailo8l``, ...). A HEF for
  another architecture fails at configure with 93 (26 on 4.17: hailo.md says older runtimes
  report 26; which release changed it is unconfirmed).
- ``HAILO_DOUBLE_DEVICE``: a file that stands for ``/dev/hailo0``. When set, a missing
  file fails VDevice creation with 64 (no driver), and a VDevice holds an exclusive
  ``flock`` on it, so that a second owner (another process, or another open file in
  this one) fails with 74, as a device in use does.
- ``HAILO_DOUBLE_DEVICE_MS``: device time per frame; a run that needs more than its
  ``timeout_ms`` waits ``timeout_ms`` and raises ``HailoRTTimeout`` (status 4).
- ``HAILO_DOUBLE_FAIL_STATUS``: any status to raise at ``HAILO_DOUBLE_FAIL_AT``:
  ``vdevice`` (default), ``configure`` or ``run``.

Like HailoRT, one VDevice per process: a second live VDevice fails with status 74,
and a VDevice used from a forked child fails too.
"""

from __future__ import annotations

import enum
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    import hailo_double_hef as _hef
finally:
    sys.path.pop(0)

__version__ = "4.18.0-double"
DOUBLE = True

# hailort.h, HAILO_STATUS_VARIABLES: the statuses this double raises.
STATUS_NAMES = {
    4: "HAILO_TIMEOUT",
    6: "HAILO_INVALID_OPERATION",
    8: "HAILO_INTERNAL_FAILURE",
    13: "HAILO_OPEN_FILE_FAILURE",
    26: "HAILO_INVALID_HEF",
    64: "HAILO_DRIVER_NOT_INSTALLED",
    73: "HAILO_DEVICE_IN_USE",
    74: "HAILO_OUT_OF_PHYSICAL_DEVICES",
    76: "HAILO_INVALID_DRIVER_VERSION",
    78: "HAILO_INVALID_SERVICE_VERSION",
    91: "HAILO_HEF_FILE_CORRUPTED",
    92: "HAILO_HEF_NOT_SUPPORTED",
    93: "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE",
}


class _pyhailort:  # noqa: N801 - stands for the compiled module hailo_platform.pyhailort._pyhailort
    class HailoRTStatusException(Exception):  # noqa: N818 - libhailort's name
        """What the C++ bindings raise: ``args[0]`` is the status. Not a HailoRTException."""


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTInvalidHEFException(HailoRTException):
    pass


class HailoRTInvalidOperationException(HailoRTException):
    pass


class HailoRTNetworkGroupNotActivatedException(HailoRTException):
    pass


def _exception_for(status: int) -> HailoRTException:
    """pyhailort's ExceptionWrapper.create_exception_from_status, for the statuses above."""
    name = STATUS_NAMES.get(status, "HAILO_UNKNOWN_STATUS")
    if status == 4:
        return HailoRTTimeout("Received a timeout - hailort has failed because a timeout had occurred")
    if status == 6:
        return HailoRTInvalidOperationException("Invalid operation. See hailort.log for more information")
    if status == 26:
        return HailoRTInvalidHEFException("Invalid HEF. See hailort.log for more information")
    return HailoRTException(f"libhailort failed with error: {status} ({name})")


def _raise(status: int, log: str) -> None:
    """Raise as pyhailort does; ``log`` is what libhailort would write to hailort.log."""
    cause = _pyhailort.HailoRTStatusException(status, log)
    raise _exception_for(status) from cause


def _version() -> str:
    return os.environ.get("HAILO_DOUBLE_VERSION", "4.18")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def _maybe_fail(point: str) -> None:
    status = os.environ.get("HAILO_DOUBLE_FAIL_STATUS")
    if status and os.environ.get("HAILO_DOUBLE_FAIL_AT", "vdevice") == point:
        _raise(int(status), f"failed at {point} (HAILO_DOUBLE_FAIL_STATUS)")


def write_hef(
    path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    calibration: np.ndarray,
    hw_arch: str = "hailo8",
    hailort: str = "4.17",
    normalization: tuple[list[float], list[float]] | None = None,
) -> Path:
    """Write a self-contained test HEF of a CPU graph (input [1,100,9], output [1,64]).

    ``calibration``: windows [N,100,9], at least 1024 (hailo.md), normalized, or raw when
    ``normalization`` (mean, std) puts the normalization inside the HEF. ``hailort``: the
    oldest HailoRT that loads it (the one its DFC pairs with).
    """
    if len(calibration) < 1024:
        raise ValueError(f"calibration set of {len(calibration)} windows; at least 1024 expected")
    p = Path(path)
    payload = _hef.quantize(Path(onnx_path).read_bytes(), calibration, "nwc", 16, normalization, p.parent)
    header = {
        "double": True,
        "hw_arch": hw_arch,
        "hailort_version": hailort,
        "network": "tcn_encoder",
        "layout": "nwc",
        "input_units": "raw" if normalization is not None else "normalized",
        "inputs": [{"name": "tcn_encoder/input_layer1", "shape": [1, 100, 9]}],
        "outputs": [{"name": "tcn_encoder/fc1", "shape": [64]}],
    }
    p.write_bytes(_hef.pack(header, payload))
    return p


class _Net:
    """The compiled network behind a test HEF."""

    def __init__(self, hef_path: str) -> None:
        try:
            blob = Path(hef_path).read_bytes()
        except OSError as exc:
            _raise(13, f"cannot read {hef_path}: {exc}")
        try:
            self.header, payload = _hef.unpack(blob)
        except _hef.HefFormatError as exc:
            _raise(26, f"{hef_path}: {exc}")
        needs = str(self.header.get("hailort_version", "4.17"))
        if _version_tuple(needs) > _version_tuple(_version()):
            _raise(92, f"HEF needs HailoRT {needs}, this is {_version()}")
        self.session = _hef.session(payload, threads=1)
        self.ort_input = self.session.get_inputs()[0].name
        self.layout = self.header["layout"]
        self.hw_arch = self.header["hw_arch"]
        self.input_name = self.header["inputs"][0]["name"]
        self.output_name = self.header["outputs"][0]["name"]
        self.input_shape = tuple(self.header["inputs"][0]["shape"])
        self.output_shape = tuple(self.header["outputs"][0]["shape"])

    def check_device(self, arch: str) -> None:
        if self.hw_arch != arch:
            status = 26 if _version_tuple(_version()) < (4, 18) else 93
            _raise(status, f"HEF format is not compatible with device. Device arch: {arch}, HEF arch: {self.hw_arch}")

    def run_frame(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape != self.input_shape or frame.dtype != np.float32:
            _raise(6, f"buffer {frame.shape} {frame.dtype} != frame {self.input_shape} float32")
        x = frame.reshape(1, 100, 9)
        if self.layout == "nchw":
            x = np.ascontiguousarray(x.transpose(0, 2, 1).reshape(1, 9, 1, 100))
        return self.session.run(None, {self.ort_input: x})[0].reshape(self.output_shape).astype(np.float32)


def _device_arch() -> str:
    return os.environ.get("HAILO_DOUBLE_ARCH", "hailo8")


def _wait_device(frames: int, timeout_ms: int) -> None:
    per_frame = float(os.environ.get("HAILO_DOUBLE_DEVICE_MS", "0") or 0)
    if per_frame * frames > timeout_ms:
        time.sleep(timeout_ms / 1000)
        _raise(4, f"run of {frames} frames needs {per_frame * frames:.0f} ms, timeout {timeout_ms} ms")


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


_live: dict[str, Any] = {"vdevice": None}


class _VDeviceParams:
    def __init__(self) -> None:
        self.scheduling_algorithm = HailoSchedulingAlgorithm.NONE
        self.device_ids: list[str] | None = None


class Device:
    @staticmethod
    def scan() -> list[str]:
        node = os.environ.get("HAILO_DOUBLE_DEVICE")
        return [] if node and not os.path.exists(node) else ["0001:01:00.0"]


def _open_device() -> IO[bytes] | None:
    """The device node, held with an exclusive lock for as long as the VDevice lives."""
    node = os.environ.get("HAILO_DOUBLE_DEVICE")
    if not node:
        return None
    if not os.path.exists(node):
        _raise(64, f"{node} does not exist: the hailo_pci driver is not loaded")
    driver = os.environ.get("HAILO_DOUBLE_DRIVER_VERSION") or _version()
    if _version_tuple(driver) != _version_tuple(_version()):
        _raise(76, f"driver version {driver} does not match libhailort {_version()}")
    fh = open(node, "rb")  # noqa: SIM115 - held until release()
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        _raise(74, "Failed to create vdevice. there are not enough free devices. requested: 1, found: 0")
    return fh


class VDevice:
    @staticmethod
    def create_params() -> _VDeviceParams:
        return _VDeviceParams()

    def __init__(self, params: _VDeviceParams | None = None) -> None:
        _maybe_fail("vdevice")
        if _live["vdevice"] is not None:
            _raise(74, "Failed to create vdevice. there are not enough free devices. requested: 1, found: 0")
        self._node = _open_device()
        self.params = params or _VDeviceParams()
        self.pid = os.getpid()
        self.released = False
        _live["vdevice"] = self

    def _check(self) -> None:
        if self.released:
            _raise(6, "VDevice was released")
        if os.getpid() != self.pid:
            _raise(74, "VDevice used from another process than its creator")

    def __getattribute__(self, name: str) -> Any:
        if name == "create_infer_model" and _version_tuple(_version()) < (4, 18):
            raise AttributeError("'VDevice' object has no attribute 'create_infer_model' (HailoRT 4.17)")
        return object.__getattribute__(self, name)

    def create_infer_model(self, hef_source: str, name: str = "") -> InferModel:
        self._check()
        net = _Net(hef_source)
        _maybe_fail("configure")
        net.check_device(_device_arch())
        if self.params.scheduling_algorithm == HailoSchedulingAlgorithm.NONE:
            _raise(6, "InferModel needs the model scheduler (ROUND_ROBIN)")
        return InferModel(net)

    def configure(self, hef: HEF, configure_params: dict[str, Any] | None = None) -> list[ConfiguredNetwork]:
        self._check()
        _maybe_fail("configure")
        hef.net.check_device(_device_arch())
        return [ConfiguredNetwork(hef.net)]

    def release(self) -> None:
        self.released = True
        if self._node is not None:
            self._node.close()  # closing the file drops its flock
            self._node = None
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
                _raise(6, f"{s.name}: the double supports FLOAT32 only, got {s.format_type}")
        return ConfiguredInferModel(self)


class _BoundBuffer:
    def __init__(self, shape: tuple[int, ...], buffer: np.ndarray | None = None) -> None:
        self.shape = shape
        self.buffer = buffer

    def set_buffer(self, buffer: np.ndarray) -> None:
        self.buffer = buffer

    def get_buffer(self) -> np.ndarray:
        if self.buffer is None:
            _raise(6, "no buffer bound")
        assert self.buffer is not None
        return self.buffer


class Bindings:
    def __init__(self, model: InferModel, output_buffers: dict[str, np.ndarray]) -> None:
        self._in = _BoundBuffer(model.net.input_shape)
        out = output_buffers.get(model.net.output_name)
        if out is None or tuple(out.shape) != model.net.output_shape:
            _raise(6, f"output buffer for {model.net.output_name} must have shape {model.net.output_shape}")
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
            _raise(6, "ConfiguredInferModel used outside its context")
        _maybe_fail("run")
        _wait_device(len(bindings), timeout)
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
        return {"format_type": format_type, "timeout_ms": kwargs.get("timeout_ms", 10000)}


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
            _raise(6, "the double supports FLOAT32 vstreams only")
        self.ng = configured_network
        self.timeout_ms = int(output_params.get("timeout_ms", 10000))

    def __enter__(self) -> InferVStreams:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def infer(self, input_data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.ng.active:
            raise HailoRTNetworkGroupNotActivatedException("Network group is not activated")
        _maybe_fail("run")
        x = input_data[self.ng.net.input_name]
        if x.ndim != len(self.ng.net.input_shape) + 1:
            _raise(6, f"expected a batch of frames {self.ng.net.input_shape}, got {x.shape}")
        _wait_device(len(x), self.timeout_ms)
        return {self.ng.net.output_name: np.stack([self.ng.net.run_frame(f) for f in x])}
