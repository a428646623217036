# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Output quality: one /encode answer probed, and the golden set replayed against its embeddings."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .client import http_request
from .contract import cosine
from .requests import Request, Target, embedding_from_response, embedding_problem, encode_request

# What a sidecar's error code means, where a gate's message should say it in words.
ERROR_WORDS = {"non_finite_output": "the model returned NaN or Infinity (non-finite output)"}


def error_code_of(body: bytes) -> str:
    """' <code>: <words>' for a sidecar's JSON error body ({"error": code, ...}), else ''."""
    try:
        code = json.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    if not isinstance(code, str):
        return ""
    words = ERROR_WORDS.get(code)
    return f" {code}: {words}" if words else f" {code}"


def _passes(cos: float, floor: float) -> bool:
    """``cos >= floor``; False when either is NaN (``cos < floor`` would let NaN through)."""
    return cos >= floor


def _embedding_of(target: Target, window: Any, path: str, timeout_s: float, binary: bool) -> tuple[Any, str | None]:
    """``(embedding, None)`` of the sidecar's answer to one window, or ``(None, what was wrong with it)``."""
    req = encode_request(window, binary=binary, path=path)
    try:
        status, ctype, body = http_request(
            target, "POST", path, req.body, {"Content-Type": req.content_type, **dict(req.headers)}, timeout_s
        )
    except OSError as exc:
        return None, f"no answer ({exc})"
    if status != 200:
        return None, f"/encode answered {status}{error_code_of(body)}"
    try:
        emb = embedding_from_response(ctype, body)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, str(exc)
    return emb, embedding_problem(emb)


def golden_replay(
    target: Target,
    windows: Sequence[Any],
    embeddings: Sequence[Sequence[float]],
    min_cosine: float,
    path: str = "/encode",
    timeout_s: float = 5.0,
    binary: bool = False,
) -> dict[str, Any]:
    """Send each golden window once; cosine of each answer against its reference embedding.

    A window passes only when its cosine is ``>= min_cosine``, written so that NaN on
    either side is a miss: a floor that is not a number passes nothing.
    """
    cosines: list[float] = []
    drifts: list[float] = []
    problems: list[str] = []
    if not (math.isfinite(min_cosine) and -1.0 <= min_cosine <= 1.0):
        problems.append(f"min_cosine {min_cosine} is not a cosine floor in [-1, 1]: no window can pass it")
    for i, w in enumerate(windows):
        ref = embeddings[i]
        emb, bad = _embedding_of(target, w, path, timeout_s, binary)
        if bad:
            problems.append(f"window {i}: {bad}")
            cosines.append(-1.0)
            continue
        c = cosine(emb, ref)
        if math.isnan(c):
            problems.append(f"window {i}: cosine is NaN")
            c = -1.0
        cosines.append(c)
        ref_norm = math.sqrt(math.fsum(x * x for x in ref))
        if ref_norm > 0:
            drifts.append(abs(math.sqrt(math.fsum(x * x for x in emb)) - ref_norm) / ref_norm)
        if not _passes(c, min_cosine):
            problems.append(f"window {i}: cosine {c:.6f} < {min_cosine}")
    n = len(cosines)
    return {
        "windows": n,
        "min_cosine": round(min(cosines), 6) if n else None,
        "mean_cosine": round(math.fsum(cosines) / n, 6) if n else None,
        "below_min": sum(1 for c in cosines if not _passes(c, min_cosine)),
        "max_norm_drift": round(max(drifts), 6) if drifts else None,
        "threshold": min_cosine,
        "problems": problems[:20],
        "ok": n > 0 and not problems,
    }


def probe_embedding(target: Target, request: Request, timeout_s: float = 5.0) -> dict[str, Any]:
    """One /encode answer: does it carry 64 finite numbers?"""
    try:
        status, ctype, body = http_request(
            target,
            request.method,
            request.path,
            request.body,
            {"Content-Type": request.content_type, **dict(request.headers)},
            timeout_s,
        )
    except OSError as exc:
        return {"ok": False, "problem": f"{request.path} did not answer: {exc}"}
    if status != 200:
        return {"ok": False, "problem": f"{request.path} answered {status}: {body[:200]!r}"}
    try:
        emb = embedding_from_response(ctype, body)
    except (ValueError, UnicodeDecodeError) as exc:
        return {"ok": False, "problem": f"{request.path}: {exc}"}
    bad = embedding_problem(emb)
    meta: dict[str, Any] = {}
    if ctype.startswith("application/json"):
        data = json.loads(body)
        meta = {k: data.get(k) for k in ("model_version", "backend", "inference_ms") if k in data}
    return {"ok": bad is None, "problem": bad, "dim": len(emb) if isinstance(emb, list) else None, **meta}
