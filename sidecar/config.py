"""Typed configuration from the environment; an invalid value fails loudly, naming the variable."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("auto", "onnxruntime", "hailo")
ONNX_CHOICES = ("auto", "model.onnx", "model_batch.onnx", "model_int8.onnx")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
SCHED_POLICIES = ("batch", "other")

# Every variable the sidecar reads: (default as `--help` shows it, what it sets). The literal
# defaults here are the ones Settings.from_env uses; docs/sidecar.md lists the same table.
VARIABLES: dict[str, tuple[str, str]] = {
    "EDGEINFER_MODEL_DIR": ("/models/current", "release directory, re-resolved on every reload"),
    "EDGEINFER_LAST_GOOD_DIR": (
        "last_good beside EDGEINFER_MODEL_DIR when that is named current, else unset",
        "release served when EDGEINFER_MODEL_DIR fails to load or self-check and no model serves",
    ),
    "EDGEINFER_BACKEND": ("auto", "auto, onnxruntime or hailo"),
    "EDGEINFER_HOST": ("0.0.0.0", "address to listen on"),
    "EDGEINFER_PORT": ("9000", "port to listen on"),
    "EDGEINFER_ADMIN_TOKEN_FILE": ("unset: admin API off", "file holding the admin bearer token"),
    "EDGEINFER_THREADS": ("min(cpus, 4)", "ONNX Runtime intra-op threads"),
    "EDGEINFER_MAX_BATCH": ("32", "windows per backend call"),
    "EDGEINFER_MAX_REQUEST_WINDOWS": ("64", "windows per request"),
    "EDGEINFER_MAX_BODY_BYTES": ("4194304", "request body bytes"),
    "EDGEINFER_MAX_CONNECTIONS": ("128", "open connections; beyond it the oldest one waiting for a request is closed"),
    "EDGEINFER_MAX_HEADER_BYTES": ("16384", "bytes of a request line and headers (431 beyond)"),
    "EDGEINFER_MAX_HEADERS": ("100", "header fields of a request (431 beyond)"),
    "EDGEINFER_HEADER_TIMEOUT_S": ("10", "seconds to receive a request line and headers"),
    "EDGEINFER_BODY_TIMEOUT_S": ("30", "seconds to receive a request body"),
    "EDGEINFER_KEEPALIVE_TIMEOUT_S": ("5", "seconds an idle keep-alive connection stays open"),
    "EDGEINFER_MODEL_VERSION": ("manifest's model_version", "version to report"),
    "EDGEINFER_GOLDEN_MIN_COSINE": ("0.999 fp32, 0.98 int8/hailo", "golden self-check floor"),
    "EDGEINFER_ONNX_FILE": ("auto", "auto, model.onnx, model_batch.onnx or model_int8.onnx"),
    "EDGEINFER_HEF_PATH": ("model.hef", "HEF, relative to the release dir"),
    "EDGEINFER_HAILO_DEVICE": ("/dev/hailo0", "device node that backend auto looks for"),
    "EDGEINFER_HAILO_DEVICE_ID": ("unset", "PCIe id for the VDevice"),
    "EDGEINFER_HAILO_TIMEOUT_MS": ("1000", "HailoRT timeout"),
    "EDGEINFER_LOG_LEVEL": ("info", "critical, error, warning, info or debug"),
    "EDGEINFER_SHADOW_ROOT": (
        "the parent of EDGEINFER_MODEL_DIR",
        "directory a shadow release must lie under (POST /admin/shadow)",
    ),
    "EDGEINFER_SHADOW_SHARE": ("0.1", "share of /encode and /infer windows mirrored to the shadow, 0 to 1"),
    "EDGEINFER_SHADOW_QUEUE_WINDOWS": ("256", "windows waiting for the shadow; beyond it they are dropped"),
    "EDGEINFER_SHADOW_MAX_WINDOWS": ("2000", "paired windows the report keeps (the latest)"),
    "EDGEINFER_SHADOW_MIN_WINDOWS": ("500", "paired windows below which the report is inconclusive"),
    "EDGEINFER_SHADOW_KNN_K": ("10", "neighbours per window of the report's kNN overlap"),
    "EDGEINFER_CAPTURE_WINDOWS": (
        "0",
        "windows of live traffic kept in memory as a uniform sample (GET /admin/capture); 0: capture off",
    ),
    "EDGEINFER_SCHED_POLICY": (
        "batch",
        "Linux scheduling policy of the sidecar's threads: batch (a woken thread does not preempt a running one)"
        " or other",
    ),
}

# The capture's bound: 10,000 windows are 36 MB of the container's memory.
MAX_CAPTURE_WINDOWS = 10_000

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


class _Env:
    """The environment being read: a value by its name or its alias, checked against what it may be."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str, default: str | None = None) -> tuple[str, str | None]:
        """Return (the variable actually read, its value)."""
        e = self.env
        if name in e and e[name] != "":
            return name, e[name]
        alias = ALIASES.get(name)
        if alias and alias in e and e[alias] != "":
            return alias, e[alias]
        return name, default

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int:
        var, raw = self.get(name, VARIABLES[name][0] if default is None else str(default))
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigError(var, f"expected an integer from {low} to {high}, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(var, f"expected an integer from {low} to {high}, got {value}")
        return value

    def seconds(self, name: str, low: float, high: float) -> float:
        var, raw = self.get(name, VARIABLES[name][0])
        try:
            value = float(str(raw).strip())
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(var, f"expected a number of seconds from {low:g} to {high:g}, got {raw!r}")
        return value

    def fraction(self, name: str) -> float:
        var, raw = self.get(name, VARIABLES[name][0])
        try:
            value = float(str(raw).strip())
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise ConfigError(var, f"expected a number from 0 to 1, got {raw!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        var, raw = self.get(name, VARIABLES[name][0])
        value = str(raw).strip()
        if value not in choices:
            raise ConfigError(var, f"expected one of {', '.join(choices)}, got {value!r}")
        return value


def _release_dirs(e: _Env) -> tuple[Path, Path | None]:
    """EDGEINFER_MODEL_DIR and the last good release beside it.

    The deploy keeps models/last_good beside models/current (docs/artifacts.md), so a model
    directory named ``current`` implies one unless EDGEINFER_LAST_GOOD_DIR names another.
    """
    _, model_dir = e.get("EDGEINFER_MODEL_DIR", VARIABLES["EDGEINFER_MODEL_DIR"][0])
    _, last_good = e.get("EDGEINFER_LAST_GOOD_DIR")
    if last_good is not None:
        last_good_dir: Path | None = Path(last_good)
    elif Path(str(model_dir)).name == "current":
        last_good_dir = Path(str(model_dir)).with_name("last_good")
    else:
        last_good_dir = None
    return Path(str(model_dir)), last_good_dir


def _admin_token_file(e: _Env) -> Path | None:
    """EDGEINFER_ADMIN_TOKEN_FILE, checked at start so that a wrong path fails before serving."""
    var, token_file = e.get("EDGEINFER_ADMIN_TOKEN_FILE")
    token_path = Path(token_file) if token_file else None
    if token_path is not None and not token_path.is_file():
        raise ConfigError(var, f"{token_path} is not a readable file; expected a file holding the admin bearer token")
    return token_path


def _golden_min_cosine(e: _Env) -> float | None:
    """EDGEINFER_GOLDEN_MIN_COSINE; None leaves the floor to the backend's precision."""
    var, cosine = e.get("EDGEINFER_GOLDEN_MIN_COSINE")
    if cosine is None:
        return None
    try:
        min_cosine = float(cosine)
    except ValueError:
        raise ConfigError(var, f"expected a number in (0, 1], got {cosine!r}") from None
    if not (math.isfinite(min_cosine) and 0 < min_cosine <= 1):
        raise ConfigError(var, f"expected a number in (0, 1], got {cosine!r}")
    return min_cosine


def _shadow_report_windows(e: _Env) -> tuple[int, int, int]:
    """(max, min, knn_k) of the A/B report, each checked against the others: a report that could
    never be conclusive, or a kNN wider than its smallest sample, is refused at start."""
    max_windows = e.integer("EDGEINFER_SHADOW_MAX_WINDOWS", 2, 20_000)
    var_min, _ = e.get("EDGEINFER_SHADOW_MIN_WINDOWS")
    min_windows = e.integer("EDGEINFER_SHADOW_MIN_WINDOWS", 2, 20_000)
    if min_windows > max_windows:
        raise ConfigError(var_min, f"expected at most EDGEINFER_SHADOW_MAX_WINDOWS ({max_windows}), got {min_windows}")
    knn_k = e.integer("EDGEINFER_SHADOW_KNN_K", 1, 100)
    if knn_k >= min_windows:
        raise ConfigError(
            "EDGEINFER_SHADOW_KNN_K",
            f"expected fewer than EDGEINFER_SHADOW_MIN_WINDOWS ({min_windows}), got {knn_k}",
        )
    return max_windows, min_windows, knn_k


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    last_good_dir: Path | None
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
    max_connections: int
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    keepalive_timeout_s: float
    shadow_root: Path
    shadow_share: float
    shadow_queue_windows: int
    shadow_max_windows: int
    shadow_min_windows: int
    shadow_knn_k: int
    capture_windows: int = 0
    sched_policy: str = "batch"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = _Env(os.environ if env is None else env)
        # Of several invalid values, the one read first is the one the error names.
        model_dir, last_good_dir = _release_dirs(e)
        token_path = _admin_token_file(e)
        min_cosine = _golden_min_cosine(e)
        _, version = e.get("EDGEINFER_MODEL_VERSION")
        _, hef = e.get("EDGEINFER_HEF_PATH", VARIABLES["EDGEINFER_HEF_PATH"][0])
        _, device_id = e.get("EDGEINFER_HAILO_DEVICE_ID")
        _, host = e.get("EDGEINFER_HOST", VARIABLES["EDGEINFER_HOST"][0])
        _, hailo_device = e.get("EDGEINFER_HAILO_DEVICE", VARIABLES["EDGEINFER_HAILO_DEVICE"][0])
        _, shadow_root = e.get("EDGEINFER_SHADOW_ROOT")
        max_windows, min_windows, knn_k = _shadow_report_windows(e)
        cpus = os.cpu_count() or 1
        return cls(
            model_dir=model_dir,
            last_good_dir=last_good_dir,
            backend=e.choice("EDGEINFER_BACKEND", BACKENDS),
            host=str(host),
            port=e.integer("EDGEINFER_PORT", 1, 65535),
            admin_token_file=token_path,
            threads=e.integer("EDGEINFER_THREADS", 1, 256, default=min(cpus, 4)),
            max_batch=e.integer("EDGEINFER_MAX_BATCH", 1, 1024),
            max_request_windows=e.integer("EDGEINFER_MAX_REQUEST_WINDOWS", 1, 1024),
            max_body_bytes=e.integer("EDGEINFER_MAX_BODY_BYTES", 4096, 256 * 1024 * 1024),
            model_version=version,
            golden_min_cosine=min_cosine,
            onnx_file=e.choice("EDGEINFER_ONNX_FILE", ONNX_CHOICES),
            hef_path=str(hef),
            hailo_device=Path(str(hailo_device)),
            hailo_device_id=device_id,
            hailo_timeout_ms=e.integer("EDGEINFER_HAILO_TIMEOUT_MS", 1, 600_000),
            log_level=e.choice("EDGEINFER_LOG_LEVEL", LOG_LEVELS),
            max_connections=e.integer("EDGEINFER_MAX_CONNECTIONS", 1, 65536),
            max_header_bytes=e.integer("EDGEINFER_MAX_HEADER_BYTES", 1024, 1024 * 1024),
            max_headers=e.integer("EDGEINFER_MAX_HEADERS", 8, 10_000),
            header_timeout_s=e.seconds("EDGEINFER_HEADER_TIMEOUT_S", 0.1, 3600),
            body_timeout_s=e.seconds("EDGEINFER_BODY_TIMEOUT_S", 0.1, 3600),
            keepalive_timeout_s=e.seconds("EDGEINFER_KEEPALIVE_TIMEOUT_S", 0.1, 3600),
            shadow_root=Path(shadow_root) if shadow_root else model_dir.parent,
            shadow_share=e.fraction("EDGEINFER_SHADOW_SHARE"),
            shadow_queue_windows=e.integer("EDGEINFER_SHADOW_QUEUE_WINDOWS", 1, 100_000),
            shadow_max_windows=max_windows,
            shadow_min_windows=min_windows,
            shadow_knn_k=knn_k,
            capture_windows=e.integer("EDGEINFER_CAPTURE_WINDOWS", 0, MAX_CAPTURE_WINDOWS),
            sched_policy=e.choice("EDGEINFER_SCHED_POLICY", SCHED_POLICIES),
        )

    def admin_token(self) -> str | None:
        if self.admin_token_file is None:
            return None
        token = self.admin_token_file.read_text().strip()
        if not token:
            raise ConfigError("EDGEINFER_ADMIN_TOKEN_FILE", f"{self.admin_token_file} is empty")
        return token
