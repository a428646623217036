# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy's gates on a running sidecar: health of the expected model, then the golden set.

A thin layer over _load (the package edgeinfer_load), the one engine behind the benchmark gate and
edgeinfer-validate: the same /healthz judgement, the same golden replay, the
same clock. What it adds is the probe module's steps:
its option checks, the words of a refused hot reload, the result of the health wait, then
the gates (the expected backend, the golden set against its floor). Standard library only:
it runs on the edge.
"""

from __future__ import annotations

import json
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import (
    QUALITY_FLOORS,
    GoldenSet,
    serving_precision,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._load import (
    Target,
    check_health,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._load import (
    golden_replay as _golden_replay,
)


def wait_healthy(url, timeout, expect_version=None, expect_sha256=None, expect_stamp=None, request_timeout=3.0):
    """Wait until /healthz (``url`` is the sidecar's base URL) serves the expected model, its
    embedding stamp included: a sidecar still serving the release before answers the old one.

    Returns (ok, reason, body, duration).
    """
    expect = {"model_version": expect_version, "model_sha256": expect_sha256, "embedding_stamp": expect_stamp}
    health = check_health(Target.parse(url), expect, wait_s=timeout, timeout_s=request_timeout)
    body = health["body"] if isinstance(health["body"], dict) else {}
    ok = health["ok"]
    return ok, "healthy" if ok else "; ".join(health["problems"]), body, health["waited_s"]


def golden_gate(url, golden, min_cosine, limit=None, request_timeout=10.0):
    """Replay the golden set through /encode; the figures the probe module returns."""
    windows = golden.windows[:limit] if limit else golden.windows
    out = _golden_replay(
        Target.parse(url), windows, golden.embeddings[: len(windows)], min_cosine, timeout_s=request_timeout
    )
    no_answer = [p for p in out["problems"] if "cosine" not in p]
    return {
        "count": out["windows"],
        "min_cosine": out["min_cosine"],
        "mean_cosine": out["mean_cosine"],
        "max_norm_drift": out["max_norm_drift"],
        "below_min": out["below_min"],
        "failed": len(no_answer),
        "failures": out["problems"],
    }


def load_golden(path):
    return GoldenSet.load(path)


def hot_reload(url, token_file, timeout):
    """POST /admin/reload with the token read on the edge (it never travels to the controller).

    The sidecar loads models/current, runs its golden self-check and swaps atomically; the old
    model serves until the new one passed. Returns (ok, status, body).
    """
    try:
        with open(token_file) as fh:
            token = fh.read().strip()
    except OSError as exc:
        return False, None, {"error": f"admin token unreadable ({exc}): deploy again to make it"}
    try:
        # The sidecar listens on the edge itself: an http_proxy in the edge's environment must not take it.
        with open_url(
            f"{url}/admin/reload",
            method="POST",
            headers={"Authorization": f"Bearer {token}"},
            data=b"",
            timeout=timeout,
            use_proxy=False,
        ) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, UrlConnectionError) as exc:
        return False, None, {"error": f"the sidecar did not answer the reload: {exc}"}
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {"raw": raw[:500].decode(errors="replace")}
    return status == 200, status, body


def option_problem(p):
    """The first of the probe module's options out of range, naming the fix; None when they all hold."""
    if not p["url"].rstrip("/").startswith(("http://", "https://")):
        return f"url={p['url']!r}: expected http://host:port"
    if p["min_cosine"] is not None and not -1.0 <= p["min_cosine"] <= 1.0:
        return f"min_cosine={p['min_cosine']}: a cosine similarity lies in [-1, 1]; 0.999 is a usual floor"
    return None


def reload_refusal(status, answer):
    """The failure of a refused hot reload, in the sidecar's own words."""
    why = ": ".join(str(answer[k]) for k in ("error", "detail", "raw") if answer.get(k)) or answer
    return f"hot reload refused (HTTP {status}): {why}; the model served before keeps serving"


def health_result(url, p, reloaded=None):
    """The probe's result once /healthz served the expected model or the wait ran out (before the gates)."""
    ok, reason, body, duration = wait_healthy(
        url,
        p["timeout"],
        expect_version=p["expect_version"],
        expect_sha256=p["expect_sha256"],
        expect_stamp=p["expect_stamp"],
    )
    result = {"changed": False, "healthy": ok, "reason": reason, "duration": duration, "health": body or {}}
    if reloaded is not None:
        result.update(changed=True, reload=reloaded)
    return result


def backend_mismatch(health, expect_backend):
    """Why the sidecar does not serve on the expected backend (with its own reason for it); None when it does."""
    serving = health.get("backend")
    if not expect_backend or serving == expect_backend:
        return None
    why = health.get("backend_reason") or health.get("hailo_fallback")
    return f"the sidecar serves on {serving}, expected {expect_backend}" + (f": {why}" if why else "")


def golden_floor(health, min_cosine):
    """The cosine floor of the golden gate: ``min_cosine`` when given, else the release contract's floor
    for the way /healthz says the model is served. ContractError when /healthz does not say."""
    if min_cosine is not None:
        return {"min_cosine": min_cosine, "source": "min_cosine"}
    precision = serving_precision(str(health.get("backend")), str(health.get("served_file") or ""))
    return {"min_cosine": QUALITY_FLOORS[precision], "source": precision}


def golden_miss(figures, floor):
    """Why the golden figures miss the floor, a NaN or Infinity answer named as such; None when they pass."""
    if not (figures["min_cosine"] is None or figures["min_cosine"] < floor["min_cosine"]):
        return None
    reason = (
        f"golden gate missed: min cosine {figures['min_cosine']} < {floor['min_cosine']} "
        f"({floor['source']} floor) over {figures['count']} windows "
        f"({figures['failed']} without a usable answer)"
    )
    # A NaN or Infinity answer is a failure by name, not a low cosine.
    non_finite = [f for f in figures["failures"] if "non_finite_output" in f or "not a finite number" in f]
    if non_finite:
        reason += f"; non-finite output (NaN or Infinity) for {len(non_finite)} of them"
    return reason


def gates(url, p, golden, result):
    """Judge the healthy sidecar of ``result`` (health_result's): the expected backend, then the golden set.

    Fills in ``reason`` on a miss, and ``floor`` and ``golden`` when the golden set ran; returns
    whether the probe passed. ContractError when no floor can be taken from /healthz.
    """
    if not result["healthy"]:
        return False
    mismatch = backend_mismatch(result["health"], p["expect_backend"])
    if mismatch:
        result["reason"] = mismatch
        return False
    if golden is None:
        return True
    floor = golden_floor(result["health"], p["min_cosine"])
    result["floor"] = floor
    result["golden"] = golden_gate(url, golden, floor["min_cosine"], limit=p["golden_limit"] or None)
    miss = golden_miss(result["golden"], floor)
    if miss:
        result["reason"] = miss
        return False
    return True
