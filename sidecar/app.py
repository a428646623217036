"""The HTTP service: the routes, the ASGI entry point and the lifespan (what serves, and its reload: serving.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from . import capture_api, kserve, shadow_api
from .backends import HailoDevice, import_hailo
from .batcher import Batcher, NonFiniteOutput
from .capture import Reservoir
from .config import Settings
from .inputs import InputError, parse_binary, parse_json, reorder
from .metrics import Metrics
from .model import Model
from .openapi import OPENAPI
from .serving import State, do_reload, note_non_finite, publish_model

log = logging.getLogger("sidecar")

ROUTES = (
    "/encode",
    "/infer",
    "/healthz",
    "/metrics",
    "/admin/reload",
    "/admin/shadow",
    "/admin/shadow/report",
    "/admin/capture",
    "/openapi.json",
)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # orjson rather than the stdlib encoder: with the stdlib, writing the 64 floats of an embedding
    # is the largest Python cost of a request; orjson writes numpy float32 arrays directly,
    # each as the shortest text that reads back as the same float32.
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, media_type="application/json"
    )


def error(status: int, code: str, detail: str, **extra: Any) -> Response:
    return json_response({"error": code, "detail": detail, **extra}, status)


def header(request: Request, name: bytes) -> str:
    """A request header's value, '' when absent: one pass over the raw list, lowercased by the server.

    Starlette's ``request.headers`` builds a Headers object and lowers and encodes the name on
    each lookup; the model routes read three headers of every request, and this is a third of
    that cost."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


async def read_body(request: Request, limit: int) -> bytes:
    declared = header(request, b"content-length") or None
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InputError("content-length", "a byte count", declared, 400) from None
        if size > limit:
            raise InputError("body", f"at most {limit} bytes", f"{size} bytes", 413)
    chunks, total = [], 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise InputError("body", f"at most {limit} bytes", f"more than {limit} bytes", 413)
            chunks.append(chunk)
    except ClientDisconnect:
        # The client left, or the server closed the connection at EDGEINFER_BODY_TIMEOUT_S:
        # nothing is sent, and the request is counted as a 408.
        raise InputError("body", "the whole request body", f"{total} bytes before the connection closed", 408) from None
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return header(request, b"content-type").split(";")[0].strip().lower()


async def _windows(
    request: Request, state: State, window_key: str, batch_key: str | None, binary: bool
) -> tuple[np.ndarray, bool, bool, dict[str, Any]]:
    kind = media_type(request)
    if binary and kind == "application/octet-stream":
        body = await read_body(request, state.settings.max_body_bytes)
        arr, is_batch = parse_binary(body, state.settings.max_request_windows)
        query = request.query_params if request.scope["query_string"] else {}  # most requests have none
        normalized = query.get("normalized", "").lower() in ("1", "true", "yes")
        return arr, is_batch, normalized, {}
    if kind not in ("", "application/json") and not kind.endswith("+json"):
        accepted = "application/json or application/octet-stream" if binary else "application/json"
        raise InputError("content-type", accepted, kind, 415)
    body = await read_body(request, state.settings.max_body_bytes)
    return parse_json(body, window_key, batch_key, state.settings.max_request_windows)


async def _infer(state: State, windows: np.ndarray, normalized: bool, order: Any, mirror: bool = False) -> Any:
    model = state.model
    if model is None:
        return None
    windows = reorder(windows, order, model.channel_order)
    assert state.batcher is not None
    result = await state.batcher.submit(windows, normalized)
    if not mirror:
        return result
    shadow = state.shadow
    if shadow is not None:  # after the answer is made; queues and returns at once
        shadow.mirror(windows, normalized, result)
    if state.capture is not None:  # after the answer too: only windows the model answered
        _capture(state.capture, result.model, windows, normalized)
    return result


def _capture(reservoir: Reservoir, model: Model, windows: np.ndarray, normalized: bool) -> None:
    """Offer the windows in raw units (a client may send them normalized), in the model's channel order."""
    try:
        raw = windows * model.std + model.mean if normalized else windows
        reservoir.offer(raw.astype(np.float32, copy=False), model.channel_order)
    except Exception:  # the answer is made: the capture must never turn it into an error
        log.exception("capturing the request's windows failed")


def _unavailable(state: State) -> Response:
    return error(503, "no_model", state.reason)


def _non_finite(state: State, exc: NonFiniteOutput) -> Response:
    """A model answer with NaN or Infinity is never sent (JSON would write null, binary NaN)."""
    note_non_finite(state, exc)
    return error(500, "non_finite_output", str(exc))


async def encode(request: Request) -> Response:
    state: State = request.app.state.sidecar
    try:
        windows, is_batch, normalized, obj = await _windows(request, state, "imu_window", "imu_windows", binary=True)
        result = await _infer(state, windows, normalized, obj.get("channel_order"), mirror=True)
    except InputError as exc:
        return json_response(exc.body(), exc.status)
    except NonFiniteOutput as exc:
        return _non_finite(state, exc)
    except LookupError:
        return _unavailable(state)
    if result is None:
        return _unavailable(state)
    model = result.model
    if "application/octet-stream" in header(request, b"accept"):
        headers = {
            "x-model-version": model.version,
            "x-backend": model.backend_name,
            "x-inference-ms": f"{result.inference_ms:.3f}",
            "x-embedding-shape": f"{result.embeddings.shape[0]},{result.embeddings.shape[1]}",
        }
        return Response(result.embeddings.astype("<f4").tobytes(), 200, headers, media_type="application/octet-stream")
    body: dict[str, Any] = {}
    if is_batch:
        body["latent_embeddings"] = result.embeddings
        body["count"] = int(result.embeddings.shape[0])
    else:
        body["latent_embedding"] = result.embeddings[0]
    body.update(
        model_version=model.version,
        backend=model.backend_name,
        inference_ms=round(result.inference_ms, 3),
        embedding_stamp=model.stamp["stamp"],
    )
    return json_response(body)


async def infer(request: Request) -> Response:
    """The EdgeInfer client's contract: {"x": 100x9} -> {"latent": [64], ...}."""
    state: State = request.app.state.sidecar
    try:
        windows, _, normalized, obj = await _windows(request, state, "x", None, binary=False)
        result = await _infer(state, windows, normalized, obj.get("channel_order"), mirror=True)
    except InputError as exc:
        return json_response(exc.body(), exc.status)
    except NonFiniteOutput as exc:
        return _non_finite(state, exc)
    except LookupError:
        return _unavailable(state)
    if result is None:
        return _unavailable(state)
    model = result.model
    body: dict[str, Any] = {"latent": result.embeddings[0]}
    scores = model.motif_scores(result.embeddings)
    if scores is not None:
        body["motif_scores"] = scores[0]
    body.update(
        model_version=model.version,
        backend=model.backend_name,
        inference_ms=round(result.inference_ms, 3),
        embedding_stamp=model.stamp["stamp"],
    )
    return json_response(body)


async def healthz(request: Request) -> Response:
    state: State = request.app.state.sidecar
    uptime = round(time.monotonic() - state.started, 1)
    model = state.model
    if model is None:
        return json_response(
            {"status": "unavailable", "reason": state.reason, "uptime_s": uptime, "last_reload": state.last_reload}, 503
        )
    return json_response(
        {
            "status": "ok",
            **model.info(),
            "serving": "current" if state.last_good_reason is None else "last_good",
            "fallback_reason": state.last_good_reason,
            "uptime_s": uptime,
            "last_reload": state.last_reload,
        }
    )


async def metrics(request: Request) -> Response:
    state: State = request.app.state.sidecar
    publish_model(state)
    shadow = state.shadow
    if shadow is not None:  # the A/B figures, recomputed at most every 30 s for a scrape
        await asyncio.to_thread(shadow.report, 30.0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return json_response(OPENAPI)


def _authorize(request: Request, state: State) -> Response | None:
    if state.admin_token is None:
        return error(403, "forbidden", "the admin API is disabled: EDGEINFER_ADMIN_TOKEN_FILE is not set")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return json_response(
            {"error": "unauthorized", "detail": "expected an 'Authorization: Bearer <token>' header"},
            401,
            {"www-authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), state.admin_token.encode()):
        return error(403, "forbidden", "the bearer token is not the admin token")
    return None


async def admin_reload(request: Request) -> Response:
    state: State = request.app.state.sidecar
    denied = _authorize(request, state)
    if denied is not None:
        return denied
    if state.reload_lock.locked():
        return error(409, "reload_in_progress", "another reload is running; retry when it has finished")
    async with state.reload_lock:
        ok, outcome = await do_reload(state)
    serving = state.model.info() if state.model else None
    return json_response({**outcome, "serving": serving}, 200 if ok else 422)


def route_label(path: str) -> str:
    """The ``route`` label of the request metrics: a bounded set, whatever paths clients send."""
    if path in ROUTES:
        return path
    return "/v2" if path == "/v2" or path.startswith("/v2/") else "other"


# The model routes: served by Service directly for POST, and routed by Starlette for the
# other methods (405), so that both read the one table.
MODEL_ROUTES = {"/encode": encode, "/infer": infer}


class Service:
    """The ASGI application: ``POST /encode`` and ``POST /infer`` go straight to their endpoints,
    everything else (the other routes, other methods, lifespan) through Starlette.

    Why not Starlette's router for the two model routes: on an edge whose model runs on the
    Hailo-8, the CPU does only the HTTP work, so the per-request CPU of the Python layers is
    the sidecar's throughput ceiling. Starlette's middleware stack, router and the wrappers
    around each ``send`` add 10 to 17 % to the event-loop thread's CPU per request (the
    "event-loop CPU per request" figure of ``bench/bench_sidecar.py`` measures it). The endpoints,
    their Request and Response objects and the metrics are the same either way; an exception in
    an endpoint is a JSON 500.
    """

    def __init__(self, app: Starlette, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The number of open connections, from the server that runs the app (server.serve); while
        # it is unknown, no request counts as alone (Batcher's ``alone``).
        self.connections: Callable[[], int] | None = None

    def alone(self) -> bool:
        return self.connections is not None and self.connections() <= 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = MODEL_ROUTES.get(path) if scope["method"] == "POST" else None
        requests = self.metrics.requests
        requests.in_flight += 1
        t0 = time.perf_counter()
        status = 500
        try:
            if endpoint is None:

                async def send_status(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                await self.app(scope, receive, send_status)
                return
            scope["app"] = self.app  # what Starlette sets: request.app.state
            try:
                response = await endpoint(Request(scope, receive))
            except Exception:
                log.exception("%s failed", path)
                response = error(500, "internal_error", "the sidecar failed on this request; see its log")
            status = response.status_code
            await response(scope, receive, send)
        finally:
            requests.in_flight -= 1
            requests.observe(route_label(path), status, time.perf_counter() - t0)


def create_app(settings: Settings) -> Service:
    metrics_ = Metrics()
    admin_token = settings.admin_token()  # an empty token file fails here, before serving

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = State(settings=settings, metrics=metrics_, admin_token=admin_token)
        if settings.capture_windows > 0:
            state.capture = Reservoir(settings.capture_windows, metrics_.capture)
        if settings.backend != "onnxruntime":
            hp = import_hailo()
            if hp is not None and (settings.backend == "hailo" or settings.hailo_device.exists()):
                state.hailo = HailoDevice(hp, settings.hailo_device_id)
        state.batcher = Batcher(lambda: state.model, settings.max_batch, metrics_, service.alone)
        state.batcher.start()
        app.state.sidecar = state
        try:
            async with state.reload_lock:
                await do_reload(state)
            yield
        finally:
            await state.batcher.stop()
            if state.shadow is not None:
                state.shadow.close()
            if state.model is not None:
                state.model.backend.close()
            if state.hailo is not None:
                state.hailo.release()

    app = Starlette(
        routes=[
            *(Route(path, endpoint, methods=["POST"]) for path, endpoint in MODEL_ROUTES.items()),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/admin/reload", admin_reload, methods=["POST"]),
            *shadow_api.routes(_authorize, read_body),
            *capture_api.routes(_authorize),
            Route("/openapi.json", openapi, methods=["GET"]),
            *kserve.routes(lambda state, windows, normalized: _infer(state, windows, normalized, None), read_body),
        ],
        lifespan=lifespan,
    )
    service = Service(app, metrics_)  # named: the lifespan above gives the batcher its ``alone``
    return service
