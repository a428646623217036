# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One request on a fresh connection (health probes, golden replay)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any

from .requests import Target


def http_request(
    target: Target,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> tuple[int, str, bytes]:
    """One request on a fresh connection: ``(status, content_type, body)``; OSError on failure."""
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    except http.client.HTTPException as exc:
        raise OSError(f"bad HTTP answer: {exc}") from exc
    finally:
        conn.close()


def http_get_json(target: Target, path: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    """``(status, parsed JSON or None)``; OSError when nothing answered."""
    status, _ctype, body = http_request(target, "GET", path, timeout_s=timeout_s)
    try:
        return status, json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return status, None
