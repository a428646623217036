# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness and output-quality checks against a running sidecar.

The waiting follows kubernetes.core's waiter: a pure predicate over the last
observed state, driven by a ``clock(timeout, interval)`` generator, returning
``(ok, last_state, duration)``. Standard library only: it runs on the edge.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import GoldenSet, cosine


def clock(timeout, interval, now=time.monotonic, sleep=time.sleep):
    """Yield elapsed seconds until ``timeout``; the first tick is immediate."""
    start = now()
    while True:
        elapsed = now() - start
        yield elapsed
        if elapsed >= timeout:
            return
        sleep(min(interval, max(0.0, timeout - (now() - start))))


def http_json(method, url, body=None, timeout=5.0, headers=None):
    """(status, parsed JSON or None, error text or None); never raises for HTTP or network errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError) as exc:
        return None, None, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(raw), None
    except (ValueError, UnicodeDecodeError):
        return status, None, f"body is not JSON: {raw[:200]!r}"


def health_predicate(state, expect_version=None, expect_sha256=None, expect_stamp=None):
    """Pure: is this /healthz observation the healthy, expected model? Returns (ok, reason)."""
    if state is None:
        return False, "not probed yet"
    status, body, error = state
    if error and status is None:
        return False, f"no answer: {error}"
    if status != 200:
        reason = body.get("reason") if isinstance(body, dict) else error
        return False, f"/healthz answered {status}: {reason}"
    if not isinstance(body, dict):
        return False, f"/healthz 200 without a JSON object: {error}"
    if expect_version and body.get("model_version") != expect_version:
        return False, f"serving model_version {body.get('model_version')!r}, expected {expect_version!r}"
    if expect_sha256 and body.get("model_sha256") != expect_sha256:
        return False, f"serving model_sha256 {body.get('model_sha256')!r}, expected {expect_sha256!r}"
    if expect_stamp:
        stamp = body.get("embedding_stamp")
        got = stamp.get("stamp") if isinstance(stamp, dict) else stamp
        if got != expect_stamp:
            return False, f"serving embedding stamp {got!r}, expected {expect_stamp!r}"
    return True, "healthy"


def wait_healthy(url, timeout, interval=0.5, request_timeout=3.0, **expect):
    """Poll ``url`` (/healthz) until the predicate holds. Returns (ok, reason, body, duration)."""
    state, ok, reason, elapsed = None, False, "not probed yet", 0.0
    for elapsed in clock(timeout, interval):  # noqa: B007 - the last tick is the duration
        state = http_json("GET", url, timeout=request_timeout)
        ok, reason = health_predicate(state, **expect)
        if ok:
            break
    body = state[1] if state else None
    return ok, reason, body, round(elapsed, 3)


def summarize_cosines(values):
    if not values:
        return {"count": 0, "min_cosine": None, "mean_cosine": None}
    return {"count": len(values), "min_cosine": min(values), "mean_cosine": sum(values) / len(values)}


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def golden_replay(encode_url, golden, limit=None, request_timeout=10.0):
    """Send each golden window to /encode and compare the answer with the reference embedding.

    Returns a summary with min/mean cosine, the largest relative norm drift,
    and one line per window that got no usable answer (which counts as cosine -1).
    """
    windows = golden.windows[:limit] if limit else golden.windows
    cosines, drifts, failures = [], [], []
    for i, window in enumerate(windows):
        ref = golden.embeddings[i]
        status, body, error = http_json("POST", encode_url, {"imu_window": window}, timeout=request_timeout)
        emb = body.get("latent_embedding") if isinstance(body, dict) else None
        if status != 200 or not isinstance(emb, list) or len(emb) != len(ref):
            failures.append(
                f"window {i}: status {status}, {error or (body if not isinstance(emb, list) else 'wrong length')}"
            )
            cosines.append(-1.0)
            continue
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in emb):
            failures.append(f"window {i}: non-finite values in the embedding")
            cosines.append(-1.0)
            continue
        cosines.append(cosine(emb, ref))
        ref_norm = norm(ref)
        drifts.append(abs(norm(emb) - ref_norm) / ref_norm if ref_norm else float("inf"))
    out = summarize_cosines(cosines)
    out.update(max_norm_drift=max(drifts) if drifts else None, failures=failures[:20], failed=len(failures))
    return out


def load_golden(path):
    return GoldenSet.load(path)
