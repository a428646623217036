# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An endpoint (Target), a request sent again and again (Request), and how an /encode answer is judged."""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .contract import CHANNELS, GUIDE_NORMALIZATION, LATENT_DIM, WINDOW


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def embedding_problem(values: Any, dim: int = LATENT_DIM) -> str | None:
    """Why ``values`` is not a usable embedding of ``dim`` finite numbers, or None."""
    if not isinstance(values, (list, tuple)):
        return f"expected a list of {dim} numbers, got {type(values).__name__}"
    if len(values) != dim:
        return f"expected {dim} values, got {len(values)}"
    for i, v in enumerate(values):
        if not _finite(v):
            return f"value [{i}] is {v!r}, not a finite number"
    if all(v == 0 for v in values):
        return "all values are zero"
    return None


def embedding_from_response(content_type: str, body: bytes, dim: int = LATENT_DIM) -> Any:
    """The embedding in an /encode answer (JSON ``latent_embedding`` or raw little-endian float32)."""
    if content_type.split(";")[0].strip().lower() == "application/octet-stream":
        if len(body) != 4 * dim:
            raise ValueError(f"expected {4 * dim} bytes of float32, got {len(body)}")
        return list(struct.unpack(f"<{dim}f", body))
    data = json.loads(body)
    if not isinstance(data, dict) or "latent_embedding" not in data:
        raise ValueError("the JSON answer has no latent_embedding")
    return data["latent_embedding"]


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    scheme: str = "http"

    @classmethod
    def parse(cls, url: str) -> Target:
        """``http://host:port`` (a path, if any, is ignored here: it belongs to the request)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ValueError(
                f"url {url!r}: only http:// is supported (the sidecar serves plain HTTP on loopback or LAN)"
            )
        if not parts.hostname:
            raise ValueError(f"url {url!r} has no host; expected e.g. http://127.0.0.1:9000")
        return cls(parts.hostname, parts.port or 80)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.netloc}{path}"


# (status, content_type, body) -> None when good, else a failure kind such as "bad_body".
Validator = Callable[[int, str, bytes], "str | None"]


def status_ok(status: int, content_type: str, body: bytes) -> str | None:
    return None if 200 <= status < 300 else f"status_{status}"


def embedding_ok(status: int, content_type: str, body: bytes) -> str | None:
    """A 2xx answer that carries 64 finite values."""
    if not 200 <= status < 300:
        return f"status_{status}"
    try:
        values = embedding_from_response(content_type, body)
    except (ValueError, UnicodeDecodeError):
        return "bad_body"
    return None if embedding_problem(values) is None else "bad_body"


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent again and again; ``validate`` judges each answer."""

    method: str = "GET"
    path: str = "/healthz"
    body: bytes = b""
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    validate: Validator = status_ok

    def wire(self, target: Target) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {target.netloc}", "User-Agent: edgeinfer-loadgen"]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
            if self.content_type:
                lines.append(f"Content-Type: {self.content_type}")
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def synthetic_window(seed: int = 7) -> list[list[float]]:
    """A deterministic 100x9 raw IMU window around the deployment guide's channel means."""
    rng = random.Random(seed)
    mean, std = GUIDE_NORMALIZATION.mean, GUIDE_NORMALIZATION.std
    return [[round(mean[c] + std[c] * rng.gauss(0, 1), 4) for c in range(CHANNELS)] for _row in range(WINDOW)]


def encode_request(
    window: Sequence[Sequence[float]] | None = None, binary: bool = False, path: str = "/encode"
) -> Request:
    """POST /encode with one raw window, as JSON or as 3600 bytes of little-endian float32."""
    window = window if window is not None else synthetic_window()
    if binary:
        flat = [float(v) for row in window for v in row]
        body = struct.pack(f"<{len(flat)}f", *flat)
        return Request(
            "POST",
            path,
            body,
            "application/octet-stream",
            (("Accept", "application/octet-stream"),),
            embedding_ok,
        )
    body = json.dumps({"imu_window": [list(r) for r in window]}, separators=(",", ":")).encode()
    return Request("POST", path, body, "application/json", (), embedding_ok)
