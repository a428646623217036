"""Inference backends: ONNX Runtime on the CPU and HailoRT on a Hailo-8.

Every backend takes normalized float32 windows ``[N, 100, 9]`` and returns
``[N, 64]`` float32 embeddings. A backend whose model wants other units (a HEF
that normalizes on chip takes raw sensor units) converts them itself, so that a
fallback to another backend is fed what that one expects. ``run`` blocks. The
batcher runs it on its inference thread, or, for a lone window, on the event loop
when the backend's ``inline`` says that a run is CPU work that ends (batcher.py).
"""

from __future__ import annotations

import ctypes
import importlib
import re
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from edgeinfer_contract import CHANNELS, WINDOW

# HailoRT statuses after which the sidecar serves on the CPU instead (hailo.md), with
# libhailort's name for each (hailort.h) and what it means on an edge.
FALLBACK_STATUSES: dict[int, str] = {
    4: "HAILO_TIMEOUT: the device did not answer within EDGEINFER_HAILO_TIMEOUT_MS",
    26: "HAILO_INVALID_HEF: the HEF is for another architecture (older HailoRT) or not a valid HEF",
    64: "HAILO_DRIVER_NOT_INSTALLED: no Hailo PCIe driver",
    73: "HAILO_DEVICE_IN_USE: the device is in use by another process",
    74: "HAILO_OUT_OF_PHYSICAL_DEVICES: the device is in use by another process",
    76: "HAILO_INVALID_DRIVER_VERSION: the kernel driver and libhailort versions differ",
    78: "HAILO_INVALID_SERVICE_VERSION: hailort_service and libhailort versions differ",
    92: "HAILO_HEF_NOT_SUPPORTED: the HEF was compiled for a newer HailoRT",
    93: "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE: the HEF is for another architecture",
}
TIMEOUT_STATUS = 4


class BackendError(RuntimeError):
    """The backend could not be created or could not run."""


class HailoUnavailable(BackendError):
    """HailoRT failed with a status that calls for the CPU fallback."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    return None


class Backend(Protocol):
    name: str
    detail: str
    inline: bool  # a run may be made on the event loop: CPU work of about one inference

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the system; False where the C library cannot (not glibc).

    A closed ONNX Runtime session frees its memory into glibc's heap, which keeps most of it:
    without this, the sidecar's RSS rose by 15 MiB over its first 20 hot reloads and stayed there
    (bench/reload_memory.py).
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


class OrtBackend:
    name = "onnxruntime"
    inline = True

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises several unrelated types for a bad file
            raise BackendError(f"{path.name}: ONNX Runtime cannot load it: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise BackendError(f"{path.name}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        shape = list(inputs[0].shape)
        if len(shape) != 3 or shape[1:] != [WINDOW, CHANNELS]:
            raise BackendError(
                f"{path.name}: input {inputs[0].name} has shape {shape}; expected [N, {WINDOW}, {CHANNELS}]"
            )
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.dynamic_batch = not isinstance(shape[0], int)
        self.path = path
        self.detail = f"{path.name} ({'batched' if self.dynamic_batch else 'batch 1'}, {threads} threads)"

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.dynamic_batch or x.shape[0] == 1:
            y = self.session.run([self.output_name], {self.input_name: x})[0]
        else:
            y = np.concatenate(
                [self.session.run([self.output_name], {self.input_name: x[i : i + 1]})[0] for i in range(x.shape[0])]
            )
        return np.asarray(y, dtype=np.float32).reshape(x.shape[0], -1)

    def close(self) -> None:
        """Drop the session, and hand the memory it held back to the system."""
        self.session = None  # type: ignore[assignment]
        release_free_memory()


def hailo_status(exc: BaseException) -> int | None:
    """The HailoRT status of an exception raised by ``hailo_platform``.

    pyhailort raises a Python class (``HailoRTTimeout``, ``HailoRTInvalidHEFException``,
    or ``HailoRTException("libhailort failed with error: 74 (...)")``) from libhailort's
    status exception, whose ``args[0]`` is the status: the cause is looked at first, since
    the message of a timeout or an invalid HEF carries no number.
    """
    seen: BaseException | None = exc
    while seen is not None:
        status = _status_of(seen)
        if status is not None:
            return status
        seen = seen.__cause__
    if "timeout" in type(exc).__name__.lower():
        return TIMEOUT_STATUS
    text = str(exc)
    match = (
        re.search(r"error:\s*(\d+)", text)
        or re.search(r"status[ =:]*\(?(\d+)\)?", text, re.IGNORECASE)
        or re.search(r"\((\d+)\)", text)
    )
    return int(match.group(1)) if match else None


def unavailable(exc: BaseException) -> HailoUnavailable | None:
    """The fallback this HailoRT exception calls for, or None when it calls for none."""
    status = hailo_status(exc)
    if status not in FALLBACK_STATUSES:
        return None
    return HailoUnavailable(
        status, f"HailoRT status {status} ({FALLBACK_STATUSES[status]}): {type(exc).__name__}: {exc}"
    )


def import_hailo() -> ModuleType | None:
    try:
        return importlib.import_module("hailo_platform")
    except ImportError:
        return None


class HailoDevice:
    """The one VDevice of this process, created lazily inside the serving process and kept across reloads."""

    def __init__(self, hp: ModuleType, device_id: str | None) -> None:
        self.hp = hp
        self.device_id = device_id
        self.vdevice: Any = None
        self.lock = threading.Lock()

    def get(self) -> Any:
        with self.lock:
            if self.vdevice is None:
                params = self.hp.VDevice.create_params()
                params.scheduling_algorithm = self.hp.HailoSchedulingAlgorithm.ROUND_ROBIN
                if self.device_id:
                    params.device_ids = [self.device_id]
                self.vdevice = self.hp.VDevice(params)
            return self.vdevice

    def release(self) -> None:
        with self.lock:
            if self.vdevice is not None and hasattr(self.vdevice, "release"):
                self.vdevice.release()
            self.vdevice = None


class HailoBackend:
    """HailoRT 4.18+ through InferModel; 4.17 (no ``create_infer_model``) through InferVStreams."""

    name = "hailo"
    inline = False  # a run waits on the device, up to EDGEINFER_HAILO_TIMEOUT_MS

    def __init__(
        self,
        device: HailoDevice,
        hef_path: Path,
        timeout_ms: int,
        raw_input: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``raw_input``: the (mean, std) a HEF with on-chip normalization was built with; its
        windows are turned back into raw sensor units before they reach the device."""
        self.hp = device.hp
        self.timeout_ms = timeout_ms
        self.lock = threading.Lock()
        self._exit: Any = None
        self.raw_input = raw_input
        try:
            head = hef_path.read_bytes()[:4]
        except OSError as exc:
            raise BackendError(f"{hef_path}: cannot read the HEF: {exc}") from exc
        if head != b"\x01HEF":
            raise BackendError(f"{hef_path}: not a HEF (it does not start with b'\\x01HEF')")
        try:
            vdevice = device.get()
            if hasattr(vdevice, "create_infer_model"):
                self._open_infer_model(vdevice, hef_path)
            else:
                self._open_vstreams(vdevice, hef_path)
        except self.hp.HailoRTException as exc:
            self.close()
            fallback = unavailable(exc)
            if fallback is not None:
                raise fallback from exc
            raise BackendError(
                f"{hef_path.name}: HailoRT failed (status {hailo_status(exc)}): {type(exc).__name__}: {exc}"
            ) from exc
        if raw_input is not None:
            self.detail += ", raw input: normalization in the HEF"

    def _open_infer_model(self, vdevice: Any, hef_path: Path) -> None:
        hp = self.hp
        self.api = "InferModel"
        im = vdevice.create_infer_model(str(hef_path))
        im.set_batch_size(1)
        im.input().set_format_type(hp.FormatType.FLOAT32)
        im.output().set_format_type(hp.FormatType.FLOAT32)
        self.im = im
        self.input_shape = tuple(im.input().shape)
        self.output_shape = tuple(im.output().shape)
        self.output_name = im.output_names[0]
        ctx = im.configure()
        self.cim = ctx.__enter__()
        self._exit = ctx.__exit__
        self.detail = f"{hef_path.name} (HailoRT InferModel)"

    def _open_vstreams(self, vdevice: Any, hef_path: Path) -> None:
        hp = self.hp
        self.api = "InferVStreams"
        hef = hp.HEF(str(hef_path))
        params = hp.ConfigureParams.create_from_hef(hef, interface=hp.HailoStreamInterface.PCIe)
        self.network_group = vdevice.configure(hef, params)[0]
        self.input_params = hp.InputVStreamParams.make(self.network_group, format_type=hp.FormatType.FLOAT32)
        self.output_params = hp.OutputVStreamParams.make(self.network_group, format_type=hp.FormatType.FLOAT32)
        in_info = hef.get_input_vstream_infos()[0]
        out_info = hef.get_output_vstream_infos()[0]
        self.input_name, self.output_name = in_info.name, out_info.name
        self.input_shape, self.output_shape = tuple(in_info.shape), tuple(out_info.shape)
        self.detail = f"{hef_path.name} (HailoRT InferVStreams)"

    def run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if self.raw_input is not None:
            mean, std = self.raw_input
            x = x * std + mean
        frames = np.ascontiguousarray(x.reshape((n, *self.input_shape)), dtype=np.float32)
        try:
            with self.lock:
                if self.api == "InferModel":
                    bindings = []
                    for i in range(n):
                        b = self.cim.create_bindings(
                            output_buffers={self.output_name: np.empty(self.output_shape, np.float32)}
                        )
                        b.input().set_buffer(np.ascontiguousarray(frames[i]))
                        bindings.append(b)
                    self.cim.run(bindings, self.timeout_ms)
                    out = np.stack([b.output().get_buffer() for b in bindings])
                else:
                    hp = self.hp
                    with (
                        hp.InferVStreams(self.network_group, self.input_params, self.output_params) as pipe,
                        self.network_group.activate(self.network_group.create_params()),
                    ):
                        out = pipe.infer({self.input_name: frames})[self.output_name]
        except self.hp.HailoRTException as exc:
            fallback = unavailable(exc)
            if fallback is not None:
                raise fallback from exc
            raise
        return np.asarray(out, dtype=np.float32).reshape(n, -1)

    def close(self) -> None:
        if self._exit is not None:
            exit_, self._exit = self._exit, None
            exit_(None, None, None)


class FallbackBackend:
    """Hailo first; on a fallback status at run time, ONNX Runtime from then on (and say so)."""

    inline = False  # Hailo's run, and the session the fallback builds

    def __init__(self, primary: HailoBackend, make_cpu: Any) -> None:
        self.primary: HailoBackend | None = primary
        self.make_cpu = make_cpu
        self.cpu: OrtBackend | None = None
        self.fallback_reason: str | None = None
        self.fallback_status: int | None = None

    @property
    def name(self) -> str:
        return "hailo" if self.primary is not None else "onnxruntime"

    @property
    def detail(self) -> str:
        return self.primary.detail if self.primary is not None else (self.cpu.detail if self.cpu else "")

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.primary is not None:
            try:
                return self.primary.run(x)
            except HailoUnavailable as exc:
                self.fallback_reason, self.fallback_status = str(exc), exc.status
                primary, self.primary = self.primary, None
                primary.close()
        if self.cpu is None:
            self.cpu = self.make_cpu()
        return self.cpu.run(x)

    def close(self) -> None:
        if self.primary is not None:
            self.primary.close()
        if self.cpu is not None:
            self.cpu.close()
