"""What the process serves: its State, and the reload that swaps a release in only once it has
passed its self-check (or serves the last good release when the current one is refused at start)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .backends import HailoDevice
from .batcher import Batcher, NonFiniteOutput
from .capture import Reservoir
from .config import Settings
from .metrics import Metrics
from .model import Model
from .release import ReleaseError, load_release
from .shadow import Shadow

log = logging.getLogger("sidecar")


@dataclass
class State:
    """The process's one state, made in the lifespan; every route reads it as ``request.app.state.sidecar``."""

    settings: Settings
    metrics: Metrics
    admin_token: str | None
    hailo: HailoDevice | None = None
    model: Model | None = None
    # Set while the last good release serves because EDGEINFER_MODEL_DIR's was refused: why it was.
    last_good_reason: str | None = None
    reason: str = "starting"
    started: float = field(default_factory=time.monotonic)
    last_reload: dict[str, Any] = field(default_factory=dict)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    batcher: Batcher | None = None
    non_finite_logged: str | None = None  # the model version whose NaN answers were logged
    shadow: Shadow | None = None  # a candidate run beside the model on a share of the windows (shadow.py)
    shadow_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    capture: Reservoir | None = None  # a sample of the windows answered, when EDGEINFER_CAPTURE_WINDOWS > 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def publish_model(state: State) -> None:
    """The serving model's gauges: what serves, on which backend, and whether it is the last good release."""
    model = state.model
    if model is None:
        state.metrics.model_loaded.set(0)
        state.metrics.serving_last_good.set(0)
        return
    state.metrics.set_model(
        model.version,
        model.sha256,
        model.backend_name,
        model.stamp["stamp"],
        model.fallback_reason is not None,
        last_good=state.last_good_reason is not None,
        reason=model.backend_reason_code,
        fallback_status=model.fallback_status,
    )


def _why(exc: Exception) -> str:
    """Why a release was refused: a ReleaseError's own message, else the exception's type and text."""
    return str(exc) if isinstance(exc, ReleaseError) else f"{type(exc).__name__}: {exc}"


async def serve_last_good(state: State, refused: str) -> None:
    """No model serves and the release of EDGEINFER_MODEL_DIR was refused (``refused`` says why):
    serve EDGEINFER_LAST_GOOD_DIR, the last release that passed its gates on this edge, if it loads
    and passes its own self-check. Otherwise nothing serves, and the 503 names both reasons."""
    settings = state.settings
    last_good = settings.last_good_dir
    model: Model | None = None
    why_not: str | None = None
    if last_good is not None and not os.path.exists(last_good):
        why_not = f"no last good release: EDGEINFER_LAST_GOOD_DIR={last_good} does not exist"
    elif last_good is not None and os.path.realpath(last_good) == os.path.realpath(settings.model_dir):
        why_not = f"EDGEINFER_LAST_GOOD_DIR={last_good} is the same release"
    elif last_good is not None:
        try:
            model = await asyncio.to_thread(load_release, settings, state.hailo, last_good=True)
        except Exception as exc:
            why_not = f"the last good release was refused too: {_why(exc)}"
    if model is None:
        state.reason = f"no model passed its self-check: {refused}" + (f"; {why_not}" if why_not else "")
        return
    state.model, state.last_good_reason = model, refused
    publish_model(state)
    log.warning(
        "serving the last good release %s (%s) from %s, because the release of EDGEINFER_MODEL_DIR was refused: %s",
        model.version,
        model.sha256[:12],
        model.directory,
        refused,
    )


def note_non_finite(state: State, exc: NonFiniteOutput) -> None:
    """Count an answer of NaN or Infinity that was not sent, and log it once per model (the counter
    says how often): every route that serves the model answers it with a 500 of its own form."""
    state.metrics.non_finite_outputs.inc()
    if state.non_finite_logged != exc.model_version:
        state.non_finite_logged = exc.model_version
        log.error("%s; answered 500 (edgeinfer_non_finite_outputs_total counts them)", exc)


async def do_reload(state: State) -> tuple[bool, dict[str, Any]]:
    """Load and self-check the release EDGEINFER_MODEL_DIR points to now; swap only if it passed.

    When it is refused and no model serves (at start), the last good release serves instead.
    """
    state.metrics.reloads.inc()
    t0 = time.perf_counter()
    try:
        new = await asyncio.to_thread(load_release, state.settings, state.hailo)
    except Exception as exc:
        reason = _why(exc)
        state.metrics.reload_failures.inc()
        state.last_reload = {
            "outcome": "failed",
            "at": _now(),
            "reason": reason,
            "duration_ms": round((time.perf_counter() - t0) * 1000, 1),
        }
        log.error("reload failed, %s: %s", "keeping the model serving" if state.model else "no model serving", reason)
        if state.model is None:
            await serve_last_good(state, reason)
        elif state.last_good_reason is not None:
            state.last_good_reason = reason
        return False, state.last_reload
    old, state.model = state.model, new
    state.last_good_reason = None
    publish_model(state)
    if old is not None and old is not new and state.batcher is not None:
        state.batcher.run_sync_later(old.backend.close)
    state.last_reload = {
        "outcome": "ok",
        "at": _now(),
        "model_version": new.version,
        "model_sha256": new.sha256,
        "backend": new.backend_name,
        "previous_version": old.version if old else None,
        "duration_ms": round((time.perf_counter() - t0) * 1000, 1),
    }
    log.info("serving %s (%s) on %s", new.version, new.sha256[:12], new.backend.detail)
    return True, state.last_reload
