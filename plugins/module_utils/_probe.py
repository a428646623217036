# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy's gates on a running sidecar: health of the expected model, then the golden set.

A thin layer over _load (the package edgeinfer_load), the one engine behind the benchmark gate and
edgeinfer-validate: the same /healthz judgement, the same golden replay, the
same clock. What it adds is the embedding-stamp check and the shape of the
result the probe module returns. Standard library only: it runs on the edge.
"""

from __future__ import annotations

import json
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import GoldenSet
from ansible_collections.edgeinfer.deploy.plugins.module_utils._load import (
    Target,
    check_health,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._load import (
    golden_replay as _golden_replay,
)


def stamp_problem(body, expect_stamp):
    """Pure: does /healthz name the expected embedding stamp (a dict with 'stamp', or the string)?"""
    if not expect_stamp:
        return None
    stamp = body.get("embedding_stamp") if isinstance(body, dict) else None
    got = stamp.get("stamp") if isinstance(stamp, dict) else stamp
    if got != expect_stamp:
        return f"serving embedding stamp {got!r}, expected {expect_stamp!r}"
    return None


def wait_healthy(url, timeout, expect_version=None, expect_sha256=None, expect_stamp=None, request_timeout=3.0):
    """Wait until /healthz (``url`` is the sidecar's base URL) serves the expected model.

    Returns (ok, reason, body, duration).
    """
    expect = {"model_version": expect_version, "model_sha256": expect_sha256}
    health = check_health(Target.parse(url), expect, wait_s=timeout, timeout_s=request_timeout)
    body = health["body"] if isinstance(health["body"], dict) else {}
    problems = list(health["problems"])
    if health["ok"]:
        bad = stamp_problem(body, expect_stamp)
        if bad:
            problems.append(bad)
    ok = not problems
    return ok, "healthy" if ok else "; ".join(problems), body, health["waited_s"]


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
