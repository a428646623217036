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


def golden_replay(
    target: Target,
    windows: Sequence[Any],
    embeddings: Sequence[Sequence[float]],
    min_cosine: float,
    path: str = "/encode",
    timeout_s: float = 5.0,
    binary: bool = False,
) -> dict[str, Any]:
    """Send each golden window once; cosine of each answer against its reference embedding."""
    cosines: list[float] = []
    drifts: list[float] = []
    problems: list[str] = []
    for i, w in enumerate(windows):
        ref = embeddings[i]
        req = encode_request(w, binary=binary, path=path)
        try:
            status, ctype, body = http_request(
                target, "POST", path, req.body, {"Content-Type": req.content_type, **dict(req.headers)}, timeout_s
            )
        except OSError as exc:
            problems.append(f"window {i}: no answer ({exc})")
            cosines.append(-1.0)
            continue
        if status != 200:
            problems.append(f"window {i}: /encode answered {status}{error_code_of(body)}")
            cosines.append(-1.0)
            continue
        try:
            emb = embedding_from_response(ctype, body)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"window {i}: {exc}")
            cosines.append(-1.0)
            continue
        bad = embedding_problem(emb)
        if bad:
            problems.append(f"window {i}: {bad}")
            cosines.append(-1.0)
            continue
        c = cosine(emb, ref)
        cosines.append(c)
        ref_norm = math.sqrt(math.fsum(x * x for x in ref))
        if ref_norm > 0:
            drifts.append(abs(math.sqrt(math.fsum(x * x for x in emb)) - ref_norm) / ref_norm)
        if c < min_cosine:
            problems.append(f"window {i}: cosine {c:.6f} < {min_cosine}")
    n = len(cosines)
    return {
        "windows": n,
        "min_cosine": round(min(cosines), 6) if n else None,
        "mean_cosine": round(math.fsum(cosines) / n, 6) if n else None,
        "below_min": sum(1 for c in cosines if c < min_cosine),
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
