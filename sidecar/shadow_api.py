"""The shadow's admin routes: ``POST /admin/shadow``, ``DELETE /admin/shadow``, ``GET /admin/shadow/report``.

Each needs the admin bearer token, as ``/admin/reload`` does. A shadow that fails to load or
its self-check is refused with the reason; the serving model is not touched either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .inputs import InputError
from .model import Model
from .release import ReleaseError
from .shadow import Shadow, ShadowRequest, load_shadow, parse_request

# A shadow request is a few short fields.
MAX_BODY_BYTES = 16 * 1024

Authorize = Callable[[Request, Any], Response | None]
ReadBody = Callable[[Request, int], Awaitable[bytes]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


def _error(status: int, code: str, detail: str, **extra: Any) -> Response:
    return _json({"error": code, "detail": detail, **extra}, status)


def _no_shadow() -> Response:
    return _error(404, "no_shadow", "no shadow model is loaded; load one with POST /admin/shadow")


def _wants_series(request: Request) -> bool:
    """``?per_window=true``: the report carries the per-window agreement series too (bounded, computed anew)."""
    return request.query_params.get("per_window", "").lower() in ("1", "true", "yes")


async def _shadow_request(request: Request, settings: Any, read_body: ReadBody) -> ShadowRequest:
    """The body of ``POST /admin/shadow``, checked against the settings; InputError says what is wrong."""
    body = await read_body(request, MAX_BODY_BYTES)
    if not body.strip():
        raise InputError("body", 'a JSON object such as {"release": "releases/<name>"}', "an empty body", 400)
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError("body", 'a JSON object such as {"release": "releases/<name>"}', str(exc)[:80], 400) from None
    return parse_request(obj, settings)


def _refused(state: Any, shadow_request: ShadowRequest, exc: Exception) -> Response:
    """The 422 for a shadow that failed to load or its self-check: why, and what still serves."""
    reason = str(exc) if isinstance(exc, ReleaseError) else f"{type(exc).__name__}: {exc}"
    serving = state.model.version if state.model is not None else None
    return _error(
        422,
        "shadow_refused",
        f"the shadow was not loaded: {reason}",
        release=str(shadow_request.release),
        serving=serving,
    )


async def _swap_in(state: Any, model: Model) -> tuple[Shadow, Shadow | None]:
    """Start the new shadow, then close the one it replaces (returned); the caller holds ``shadow_lock``."""
    new = Shadow(model, state.settings, state.metrics.shadow)
    new.start()
    old, state.shadow = state.shadow, new
    if old is not None:
        await asyncio.to_thread(old.close)
        old.clear_metrics()
    new.publish_info()
    return new, old


async def _report(request: Request, shadow: Shadow) -> dict[str, Any]:
    """The shadow's A/B report, with its per-window series when the request asks for it."""
    body = await asyncio.to_thread(shadow.report)
    if _wants_series(request):
        body["per_window"] = await asyncio.to_thread(shadow.per_window)
    return body


def routes(authorize: Authorize, read_body: ReadBody) -> list[Route]:
    """The three routes, around the sidecar's own token check and bounded body reader."""

    async def load(request: Request) -> Response:
        state = request.app.state.sidecar
        denied = authorize(request, state)
        if denied is not None:
            return denied
        try:
            shadow_request = await _shadow_request(request, state.settings, read_body)
        except InputError as exc:
            return _json(exc.body(), exc.status)
        if state.shadow_lock.locked():
            return _error(409, "shadow_load_in_progress", "another shadow load is running; retry when it has finished")
        async with state.shadow_lock:
            try:
                model = await asyncio.to_thread(load_shadow, state.settings, state.hailo, shadow_request)
            except Exception as exc:
                return _refused(state, shadow_request, exc)
            new, old = await _swap_in(state, model)
        return _json(
            {
                "outcome": "ok",
                "shadow": {**model.info(), "share": new.share, "queue_bound": new.queue_bound},
                "replaced": old.model.version if old is not None else None,
                "serving": state.model.version if state.model is not None else None,
            }
        )

    async def drop(request: Request) -> Response:
        state = request.app.state.sidecar
        denied = authorize(request, state)
        if denied is not None:
            return denied
        async with state.shadow_lock:
            shadow = state.shadow
            if shadow is None:
                return _no_shadow()
            state.shadow = None  # no window is mirrored from here on
            final = await _report(request, shadow)
            await asyncio.to_thread(shadow.close)
            shadow.clear_metrics()
        return _json({"outcome": "dropped", "final_report": final})

    async def report(request: Request) -> Response:
        state = request.app.state.sidecar
        denied = authorize(request, state)
        if denied is not None:
            return denied
        shadow = state.shadow
        if shadow is None:
            return _no_shadow()
        return _json(await _report(request, shadow))

    return [
        Route("/admin/shadow", load, methods=["POST"]),
        Route("/admin/shadow", drop, methods=["DELETE"]),
        Route("/admin/shadow/report", report, methods=["GET"]),
    ]
