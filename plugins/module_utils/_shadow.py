# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A candidate release in shadow on a running sidecar, and the A/B decision on its report.

The sidecar's routes (docs/sidecar.md, The shadow): ``POST /admin/shadow`` loads a staged
release beside the serving one, ``GET /admin/shadow/report`` compares the two on the mirrored
windows, ``DELETE /admin/shadow`` drops it and answers the final report. The admin token is read
from a file where the module runs (the edge): it never travels to the controller.

``decide`` is the one home of the A/B rule (playbooks/ab.yml): promote, discard or
inconclusive, with every reason. Standard library only: it runs on the edge.
"""

from __future__ import annotations

import json
import time
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

PROMOTE = "promote"
DISCARD = "discard"
INCONCLUSIVE = "inconclusive"


class ShadowError(Exception):
    """The sidecar could not be asked, or refused; ``status`` and ``body`` say what it answered."""

    def __init__(self, msg, status=None, body=None):
        super().__init__(msg)
        self.status = status
        self.body = body if body is not None else {}


def read_token(token_file):
    try:
        with open(token_file) as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise ShadowError(f"admin token unreadable ({exc}): deploy the edge first, which writes it") from None
    if not token:
        raise ShadowError(f"admin token file {token_file} is empty: deploy the edge again to write it")
    return token


def call(url, method, path, token, body=None, timeout=30.0):
    """One admin request; returns (status, body). ShadowError when the sidecar does not answer."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        # The sidecar listens on the edge itself: an http_proxy in the edge's environment must not take it.
        with open_url(
            f"{url}{path}", method=method, headers=headers, data=data, timeout=timeout, use_proxy=False
        ) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, UrlConnectionError) as exc:
        raise ShadowError(f"the sidecar at {url} did not answer {method} {path}: {exc}") from None
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = {"raw": raw[:500].decode(errors="replace")}
    return status, answer


def explain(status, body):
    """The sidecar's own words for a refusal: its error code and detail."""
    if isinstance(body, dict):
        words = ": ".join(str(body[k]) for k in ("error", "detail", "raw") if body.get(k))
        if words:
            return f"HTTP {status}: {words}"
    return f"HTTP {status}: {body!r}"[:500]


def start(url, token, release, onnx_file="auto", backend="onnxruntime", timeout=120.0):
    """POST /admin/shadow; the sidecar's answer (shadow, replaced, serving)."""
    status, body = call(
        url, "POST", "/admin/shadow", token, {"release": release, "onnx_file": onnx_file, "backend": backend}, timeout
    )
    if status != 200:
        raise ShadowError(
            f"the sidecar refused the shadow {release} ({explain(status, body)}); the serving model is untouched",
            status,
            body,
        )
    return body


def _series(per_window):
    return "?per_window=true" if per_window else ""


def _read(url, method, path, token, timeout):
    """The answer of a shadow route that needs a loaded shadow; None when the sidecar has none."""
    status, body = call(url, method, path, token, timeout=timeout)
    if status == 404 and isinstance(body, dict) and body.get("error") == "no_shadow":
        return None
    if status != 200:
        raise ShadowError(f"{method} {path.split('?')[0]} failed ({explain(status, body)})", status, body)
    return body


def report(url, token, timeout=30.0, per_window=False):
    """GET /admin/shadow/report (with the per-window series when asked); None when no shadow is loaded."""
    return _read(url, "GET", "/admin/shadow/report" + _series(per_window), token, timeout)


def stop(url, token, timeout=60.0, per_window=False):
    """DELETE /admin/shadow; the final report (with the per-window series when asked), or None without a shadow."""
    body = _read(url, "DELETE", "/admin/shadow" + _series(per_window), token, timeout)
    return None if body is None else body.get("final_report")


def wait_report(
    url, token, min_windows, timeout, interval=2.0, request_timeout=30.0, per_window=False, clock=time.monotonic
):
    """Poll the report until it holds ``min_windows`` paired windows or ``timeout`` seconds passed.

    Returns (report, reached, waited_s); report is None when no shadow is loaded (it was dropped).
    """
    t0 = clock()
    while True:
        body = report(url, token, request_timeout)
        waited = round(clock() - t0, 3)
        if body is None:
            return None, False, waited
        reached = int(body.get("windows") or 0) >= min_windows
        if reached or waited + interval > timeout:
            if per_window:
                body = report(url, token, request_timeout, per_window=True) or body
            return body, reached, waited
        time.sleep(interval)


def _p95(body, side):
    timing = ((body.get("inference_ms") or {}).get(side)) or {}
    value = timing.get("p95")
    return float(value) if isinstance(value, (int, float)) else None


def _figures(body):
    """The report's figures the verdict reads; the cosine mean only when both releases are the same network."""
    cosine = (body.get("cosine") or {}).get("mean") if body.get("same_network") else None
    p95_primary, p95_shadow = _p95(body, "primary"), _p95(body, "shadow")
    factor = round(p95_shadow / p95_primary, 3) if p95_primary and p95_shadow is not None else None
    return {
        "windows": int(body.get("windows") or 0),
        "error_windows": int(body.get("error_windows") or 0),
        "dropped_windows": int(body.get("dropped_windows") or 0),
        "linear_cka": body.get("linear_cka"),
        "knn_jaccard": body.get("knn_jaccard"),
        "cosine_mean": cosine,
        "p95_ms_primary": p95_primary,
        "p95_ms_shadow": p95_shadow,
        "p95_factor": factor,
    }


def _shadow_failure(body, errors, max_error_windows):
    """Why a shadow that failed on too many windows is discarded, with its last error."""
    reason = f"the shadow failed on {errors} windows (at most {max_error_windows} allowed)"
    if body.get("last_error"):
        reason += f": {body['last_error']}"
    return reason


def _missing(body, figures, min_windows):
    """Why the report cannot decide yet: too few paired windows, the sidecar's own word, or a missing figure."""
    windows, missing = figures["windows"], []
    if windows < min_windows:
        missing.append(f"{windows} paired windows, fewer than the {min_windows} required")
    elif body.get("conclusive") is False:
        missing.append(body.get("inconclusive_reason") or "the sidecar says the report is not conclusive")
    needed = (("linear_cka", figures["linear_cka"]), ("knn_jaccard", figures["knn_jaccard"]))
    for name, value in (*needed, ("p95 of both models", figures["p95_factor"])):
        if value is None and not missing:
            missing.append(f"the report has no {name}")
    return missing


def _misses(figures, th):
    """Every threshold the shadow misses; the cosine mean counts only when both are the same network."""
    cka, knn, factor = figures["linear_cka"], figures["knn_jaccard"], figures["p95_factor"]
    cosine, reasons = figures["cosine_mean"], []
    if cka < th["min_cka"]:
        reasons.append(f"linear CKA {cka} < {th['min_cka']}")
    if knn < th["min_knn_jaccard"]:
        reasons.append(f"kNN Jaccard {knn} < {th['min_knn_jaccard']}")
    if th["min_cosine"] is not None and cosine is not None and cosine < th["min_cosine"]:
        reasons.append(f"cosine mean {cosine} < {th['min_cosine']} (the same network)")
    if factor > th["max_p95_factor"]:
        reasons.append(
            f"shadow p95 {figures['p95_ms_shadow']} ms is {factor} x the serving model's "
            f"{figures['p95_ms_primary']} ms (at most {th['max_p95_factor']} x)"
        )
    return reasons


def _passes(figures, th):
    """Every threshold the shadow met, as the reasons of a promotion."""
    cosine = figures["cosine_mean"]
    passed = [
        f"{figures['windows']} paired windows, no shadow error",
        f"linear CKA {figures['linear_cka']} >= {th['min_cka']}",
        f"kNN Jaccard {figures['knn_jaccard']} >= {th['min_knn_jaccard']}",
        f"shadow p95 {figures['p95_factor']} x the serving model's (at most {th['max_p95_factor']} x)",
    ]
    if th["min_cosine"] is not None and cosine is not None:
        passed.append(f"cosine mean {cosine} >= {th['min_cosine']} (the same network)")
    return passed


def decide(body, min_windows, min_cka, min_knn_jaccard, max_p95_factor, max_error_windows=0, min_cosine=None):
    """Pure: the A/B verdict on a shadow report.

    - discard when the shadow failed on more than ``max_error_windows`` windows (whatever the count of pairs);
    - inconclusive when the report holds fewer than ``min_windows`` paired windows, or the sidecar
      itself says ``conclusive: false``, or a figure needed is missing;
    - discard when linear CKA is below ``min_cka``, kNN Jaccard below ``min_knn_jaccard``, the cosine
      mean below ``min_cosine`` (only when both releases are the same network), or the shadow's p95
      inference time exceeds ``max_p95_factor`` times the serving model's;
    - else promote.

    Returns {"verdict", "reasons", "thresholds", "figures"}; every reason that holds is listed.
    """
    thresholds = {
        "min_windows": min_windows,
        "min_cka": min_cka,
        "min_knn_jaccard": min_knn_jaccard,
        "max_p95_factor": max_p95_factor,
        "max_error_windows": max_error_windows,
        "min_cosine": min_cosine,
    }
    if not isinstance(body, dict):
        return {
            "verdict": INCONCLUSIVE,
            "reasons": ["no report: the shadow was not loaded or was dropped before it was read"],
            "thresholds": thresholds,
            "figures": {},
        }
    figures = _figures(body)
    out = {"thresholds": thresholds, "figures": figures}
    if figures["error_windows"] > max_error_windows:
        return {
            "verdict": DISCARD,
            "reasons": [_shadow_failure(body, figures["error_windows"], max_error_windows)],
            **out,
        }
    missing = _missing(body, figures, min_windows)
    if missing:
        return {"verdict": INCONCLUSIVE, "reasons": missing, **out}
    reasons = _misses(figures, thresholds)
    if reasons:
        return {"verdict": DISCARD, "reasons": reasons, **out}
    return {"verdict": PROMOTE, "reasons": _passes(figures, thresholds), **out}
