"""Typed configuration from the environment; an invalid value fails loudly, naming the variable."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("auto", "onnxruntime", "hailo")
ONNX_CHOICES = ("auto", "model.onnx", "model_batch.onnx", "model_int8.onnx")

# Names used by the compose file of the system this replaces; accepted as aliases.
ALIASES = {
    "EDGEINFER_MODEL_VERSION": "MODEL_VERSION",
    "EDGEINFER_HEF_PATH": "HEF_PATH",
    "EDGEINFER_HAILO_DEVICE_ID": "HAILO_DEVICE_ID",
    "EDGEINFER_MAX_BATCH": "BATCH_SIZE",
}


class ConfigError(ValueError):
    """A configuration variable is missing or invalid; ``variable`` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    backend: str
    host: str
    port: int
    admin_token_file: Path | None
    threads: int
    max_batch: int
    max_request_windows: int
    max_body_bytes: int
    model_version: str | None
    golden_min_cosine: float | None
    onnx_file: str
    hef_path: str
    hailo_device: Path
    hailo_device_id: str | None
    hailo_timeout_ms: int
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> tuple[str, str | None]:
            """Return (the variable actually read, its value)."""
            if name in e and e[name] != "":
                return name, e[name]
            alias = ALIASES.get(name)
            if alias and alias in e and e[alias] != "":
                return alias, e[alias]
            return name, default

        def integer(name: str, default: int, low: int, high: int) -> int:
            var, raw = get(name, str(default))
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise ConfigError(var, f"expected an integer from {low} to {high}, got {raw!r}") from None
            if not low <= value <= high:
                raise ConfigError(var, f"expected an integer from {low} to {high}, got {value}")
            return value

        def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
            var, raw = get(name, default)
            value = str(raw).strip()
            if value not in choices:
                raise ConfigError(var, f"expected one of {', '.join(choices)}, got {value!r}")
            return value

        _, model_dir = get("EDGEINFER_MODEL_DIR", "/models/current")
        var, token_file = get("EDGEINFER_ADMIN_TOKEN_FILE")
        token_path = Path(token_file) if token_file else None
        if token_path is not None and not token_path.is_file():
            raise ConfigError(
                var, f"{token_path} is not a readable file; expected a file holding the admin bearer token"
            )

        var, cosine = get("EDGEINFER_GOLDEN_MIN_COSINE")
        min_cosine: float | None = None
        if cosine is not None:
            try:
                min_cosine = float(cosine)
            except ValueError:
                raise ConfigError(var, f"expected a number in (0, 1], got {cosine!r}") from None
            if not (math.isfinite(min_cosine) and 0 < min_cosine <= 1):
                raise ConfigError(var, f"expected a number in (0, 1], got {cosine!r}")

        _, version = get("EDGEINFER_MODEL_VERSION")
        _, hef = get("EDGEINFER_HEF_PATH", "model.hef")
        _, device_id = get("EDGEINFER_HAILO_DEVICE_ID")
        _, host = get("EDGEINFER_HOST", "0.0.0.0")
        _, hailo_device = get("EDGEINFER_HAILO_DEVICE", "/dev/hailo0")
        cpus = os.cpu_count() or 1
        return cls(
            model_dir=Path(str(model_dir)),
            backend=choice("EDGEINFER_BACKEND", "auto", BACKENDS),
            host=str(host),
            port=integer("EDGEINFER_PORT", 9000, 1, 65535),
            admin_token_file=token_path,
            threads=integer("EDGEINFER_THREADS", min(cpus, 4), 1, 256),
            max_batch=integer("EDGEINFER_MAX_BATCH", 32, 1, 1024),
            max_request_windows=integer("EDGEINFER_MAX_REQUEST_WINDOWS", 64, 1, 1024),
            max_body_bytes=integer("EDGEINFER_MAX_BODY_BYTES", 4 * 1024 * 1024, 4096, 256 * 1024 * 1024),
            model_version=version,
            golden_min_cosine=min_cosine,
            onnx_file=choice("EDGEINFER_ONNX_FILE", "auto", ONNX_CHOICES),
            hef_path=str(hef),
            hailo_device=Path(str(hailo_device)),
            hailo_device_id=device_id,
            hailo_timeout_ms=integer("EDGEINFER_HAILO_TIMEOUT_MS", 1000, 1, 600_000),
            log_level=choice("EDGEINFER_LOG_LEVEL", "info", ("critical", "error", "warning", "info", "debug")),
        )

    def admin_token(self) -> str | None:
        if self.admin_token_file is None:
            return None
        token = self.admin_token_file.read_text().strip()
        if not token:
            raise ConfigError("EDGEINFER_ADMIN_TOKEN_FILE", f"{self.admin_token_file} is empty")
        return token
