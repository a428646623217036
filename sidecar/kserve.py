"""The KServe v2 (Open Inference Protocol) HTTP routes, so that standard clients and probes
(Triton's ``tritonclient``, KServe's health checks) can reach the encoder.

One model, ``tcn_encoder``: input ``imu_window`` FP32 ``[N, 100, 9]`` (raw sensor units, as
``/encode`` takes them; request parameter ``normalized: true`` for normalized windows), output
``latent_embeddings`` FP32 ``[N, 64]``. Tensors come as JSON ``data`` or in the binary tensor
data extension (``Inference-Header-Content-Length``), and answer in the form the request asks.
Errors are ``{"error": "..."}`` with a 4xx or 5xx status, as the protocol says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeinfer_contract import CHANNELS, INPUT_NAME, OUTPUT_NAME, WINDOW

from .batcher import NonFiniteOutput
from .inputs import IN_RANGE, InputError, describe, first_out_of_range, in_range
from .serving import note_non_finite

MODEL_NAME = "tcn_encoder"
HEADER_LENGTH = "inference-header-content-length"

# (state, windows, normalized) -> the batcher's result, or None when no model serves.
Infer = Callable[[Any, np.ndarray, bool], Awaitable[Any]]


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _ready(request: Request) -> bool:
    return request.app.state.sidecar.model is not None


def _model_or_404(request: Request) -> None:
    name = request.path_params["name"]
    if name != MODEL_NAME:
        raise ProtocolError(404, f"model {name!r} not found: this server serves {MODEL_NAME!r}")
    version = request.path_params.get("version")
    model = request.app.state.sidecar.model
    if version is not None and (model is None or version != model.version):
        serving = model.version if model is not None else "none"
        raise ProtocolError(404, f"model {name!r} version {version!r} not found: version {serving} serves")


async def live(request: Request) -> Response:
    return Response(status_code=200)


async def ready(request: Request) -> Response:
    # The protocol's "not ready" is a 4xx; the sidecar's /healthz says why.
    return Response(status_code=200 if _ready(request) else 400)


async def server_metadata(request: Request) -> Response:
    from . import __version__

    return _json({"name": "edgeinfer-sidecar", "version": __version__, "extensions": ["binary_tensor_data"]})


async def model_ready(request: Request) -> Response:
    try:
        _model_or_404(request)
    except ProtocolError as exc:
        return _error(exc.status, str(exc))
    return Response(status_code=200 if _ready(request) else 400)


async def model_metadata(request: Request) -> Response:
    try:
        _model_or_404(request)
    except ProtocolError as exc:
        return _error(exc.status, str(exc))
    model = request.app.state.sidecar.model
    return _json(
        {
            "name": MODEL_NAME,
            "versions": [model.version] if model is not None else [],
            "platform": f"edgeinfer_{model.backend_name}" if model is not None else "edgeinfer",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, WINDOW, CHANNELS]}],
            "outputs": [
                {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, model.config.latent_dim if model else -1]}
            ],
        }
    )


class InferRequest(NamedTuple):
    """An inference request, checked: its JSON header, the windows, and what it asks of the answer."""

    head: dict[str, Any]
    windows: np.ndarray  # float32 [N, 100, 9]
    normalized: bool
    binary_output: bool


def _object(value: Any, where: str) -> dict[str, Any]:
    """A ``parameters`` object: absent (null) reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(400, f"{where}: expected an object, got {describe(value)}")
    return value


def _flag(params: dict[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):  # a client's "false" (a string) must not read as true
        raise ProtocolError(400, f"{where}.{key}: expected true or false, got {describe(value)}")
    return value


def _holds_bool(data: Any) -> bool:
    stack = [data]
    while stack:
        v = stack.pop()
        if v is True or v is False:
            return True
        if isinstance(v, list):
            stack.extend(v)
    return False


def _outputs(head: dict[str, Any]) -> bool:
    """Whether the answer is binary (per output, else for all of them); a 400 for an output not served."""
    outputs = head.get("outputs")
    binary = _flag(_object(head.get("parameters"), "parameters"), "binary_data_output", "parameters")
    if outputs is None:
        return binary
    if not isinstance(outputs, list):
        raise ProtocolError(400, f"outputs: expected a list of outputs, got {describe(outputs)}")
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or out.get("name") != OUTPUT_NAME:
            name = out.get("name") if isinstance(out, dict) else out
            raise ProtocolError(400, f"outputs[{i}]: {name!r} unknown; this model has {OUTPUT_NAME!r}")
        params = _object(out.get("parameters"), f"outputs[{i}].parameters")
        if "binary_data" in params:
            binary = _flag(params, "binary_data", f"outputs[{i}].parameters")
    return binary


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tensor data after it (the binary tensor data extension)."""
    if header_length is None:
        return body, b""
    try:
        cut = int(header_length)
    except ValueError:
        raise ProtocolError(
            400, f"Inference-Header-Content-Length: expected an integer, got {header_length!r}"
        ) from None
    if not 0 < cut <= len(body):
        raise ProtocolError(400, f"Inference-Header-Content-Length={cut} lies outside the body of {len(body)} bytes")
    return body[:cut], body[cut:]


def parse_request(body: bytes, header_length: str | None, max_windows: int) -> InferRequest:
    """The request's JSON header, its ``imu_window`` tensor as float32 ``[N, 100, 9]`` and its parameters;
    a 400 naming the field for anything else."""
    head, binary = _split(body, header_length)
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(400, f"the inference request is not valid JSON: {exc}") from None
    inputs = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(400, f"inputs: expected one tensor named {INPUT_NAME!r}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise ProtocolError(400, f"inputs[0].name: expected {INPUT_NAME!r}, got {tensor.get('name')!r}")
    if tensor.get("datatype") != "FP32":
        raise ProtocolError(400, f"inputs[0].datatype: expected FP32, got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        and shape[1:] == [WINDOW, CHANNELS]
        and 1 <= shape[0] <= max_windows
    ):
        raise ProtocolError(
            400, f"inputs[0].shape: expected [N, {WINDOW}, {CHANNELS}] with 1 <= N <= {max_windows}, got {shape}"
        )
    count = shape[0] * WINDOW * CHANNELS
    size = _object(tensor.get("parameters"), "inputs[0].parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool):
            raise ProtocolError(
                400, f"inputs[0].parameters.binary_data_size: expected an integer, got {describe(size)}"
            )
        if size != count * 4 or len(binary) != size:
            raise ProtocolError(
                400,
                f"inputs[0]: binary_data_size {size} and {len(binary)} bytes after the header; shape {shape} needs {count * 4}",
            )
        x = np.frombuffer(binary, dtype="<f4").reshape(shape)
    else:
        x = _numbers(tensor.get("data"), b"true" in head or b"false" in head)
        if x.size != count:
            raise ProtocolError(400, f"inputs[0].data: {x.size} numbers for shape {shape}, expected {count}")
        x = x.reshape(shape)
    _check_range(x)
    normalized = _flag(_object(request.get("parameters"), "parameters"), "normalized", "parameters")
    return InferRequest(request, np.ascontiguousarray(x, dtype=np.float32), normalized, _outputs(request))


def _numbers(data: Any, maybe_bool: bool) -> np.ndarray:
    """JSON ``data`` as sent (float64, so that the range is judged before float32 rounds a value into
    it): numbers only, as /encode takes them. numpy would read "0.5" and true as numbers; a body
    with no ``true`` or ``false`` anywhere (the one-byte test) skips the walk for booleans."""
    try:
        x = np.asarray(data)
    except ValueError:  # lists of unequal lengths
        raise ProtocolError(400, "inputs[0].data: expected numbers, in a flat or evenly nested list") from None
    if x.dtype.kind not in "iuf" or (maybe_bool and _holds_bool(data)):
        raise ProtocolError(400, f"inputs[0].data: expected numbers ({IN_RANGE}), not strings, booleans or null")
    return x.astype(np.float64, copy=False)


def _check_range(x: np.ndarray) -> None:
    """The range of /encode's values (inputs.py): finite and within ±MAX_ABS_VALUE, or a 400 naming the first."""
    if in_range(x):
        return
    if not np.isfinite(x).all():
        raise ProtocolError(400, "inputs[0]: NaN or Infinity in the window")
    n, t, c = first_out_of_range(x)
    raise ProtocolError(400, f"inputs[0]: expected {IN_RANGE}, got {float(x[n, t, c])!r} at [{n}, {t}, {c}]")


def routes(infer: Infer, read_body: Callable[[Request, int], Awaitable[bytes]]) -> list[Route]:
    """The routes, around the sidecar's own inference (``infer``) and bounded body reader."""

    async def model_infer(request: Request) -> Response:
        state = request.app.state.sidecar
        try:
            _model_or_404(request)
            body = await read_body(request, state.settings.max_body_bytes)
            parsed = parse_request(body, request.headers.get(HEADER_LENGTH), state.settings.max_request_windows)
            result = await infer(state, parsed.windows, parsed.normalized)
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        except InputError as exc:
            return _error(exc.status, str(exc))
        except NonFiniteOutput as exc:
            note_non_finite(state, exc)
            return _error(500, f"non_finite_output: {exc}")
        except LookupError:
            result = None
        if result is None:
            return _error(503, f"no model serves: {state.reason}")
        y = np.ascontiguousarray(result.embeddings, dtype="<f4")
        out: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(y.shape)}
        answer: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": result.model.version, "outputs": [out]}
        if "id" in parsed.head:
            answer["id"] = parsed.head["id"]
        if not parsed.binary_output:
            out["data"] = y.reshape(-1)
            return _json(answer)
        blob = y.tobytes()
        out["parameters"] = {"binary_data_size": len(blob)}
        head = orjson.dumps(answer)
        return Response(
            head + blob,
            200,
            {"Inference-Header-Content-Length": str(len(head))},
            media_type="application/octet-stream",
        )

    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", model_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", model_infer, methods=["POST"]),
    ]
