"""The capture's admin routes: ``GET /admin/capture`` (the sampled windows) and ``DELETE /admin/capture``.

Both need the admin bearer token, as ``/admin/reload`` does: the windows are real sensor data.
With EDGEINFER_CAPTURE_WINDOWS at 0 (the default) both answer 404 ``capture_off``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeinfer_contract import CHANNELS, WINDOW

from .capture import Reservoir

Authorize = Callable[[Request, Any], Response | None]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _off() -> Response:
    return _json(
        {
            "error": "capture_off",
            "detail": "traffic capture is off: EDGEINFER_CAPTURE_WINDOWS is 0; "
            "set it to the number of windows to keep (1 to 10000) and restart the sidecar",
        },
        404,
    )


def _headers(reservoir: Reservoir) -> dict[str, str]:
    return {
        "x-capture-windows": str(reservoir.kept),
        "x-capture-seen": str(reservoir.seen),
        "x-capture-size": str(reservoir.size),
        "x-channel-order": ",".join(reservoir.channel_order or ()),
        "x-window-shape": f"{WINDOW},{CHANNELS}",
        "cache-control": "no-store",
    }


def routes(authorize: Authorize) -> list[Route]:
    """The two routes, around the sidecar's own token check."""

    def reservoir_of(request: Request) -> Reservoir | Response:
        """The sidecar's capture, or the answer that refuses the request (no token, capture off)."""
        state = request.app.state.sidecar
        denied = authorize(request, state)
        if denied is not None:
            return denied
        return _off() if state.capture is None else state.capture

    async def fetch(request: Request) -> Response:
        reservoir = reservoir_of(request)
        if isinstance(reservoir, Response):
            return reservoir
        # On the event loop, where the windows are offered: the copy is of one moment.
        body = reservoir.snapshot()
        return Response(body, 200, _headers(reservoir), media_type="application/octet-stream")

    async def clear(request: Request) -> Response:
        reservoir = reservoir_of(request)
        if isinstance(reservoir, Response):
            return reservoir
        dropped = reservoir.kept
        reservoir.clear()
        return _json({"outcome": "cleared", "dropped_windows": dropped, "size": reservoir.size})

    return [
        Route("/admin/capture", fetch, methods=["GET"]),
        Route("/admin/capture", clear, methods=["DELETE"]),
    ]
