"""``model_tools capture``: a sidecar's sample of real traffic, as a replay file or a golden set.

The sidecar keeps the sample in memory only (EDGEINFER_CAPTURE_WINDOWS, ``GET /admin/capture``,
docs/sidecar.md); this fetches it with the admin token and writes it where the operator says:

- a replay file: the windows exactly as fetched (raw units, little-endian float32, 3600 bytes
  each), which ``edgeinfer-validate --replay`` and the ``edgeinfer_benchmark`` module send
  instead of a synthetic window;
- a golden set (``golden.json``, the contract's format): up to ``count`` of the windows with
  their reference embeddings from a release's ``model.onnx`` under ONNX Runtime.

The token is read from a file or the environment, never from the command line (where ``ps`` and
shell history would show it), and is never printed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edgeinfer_contract import CHANNELS, FILES, WINDOW, ContractError, GoldenSet, Manifest

from ._io import progress
from .checks import check_out
from .config import normalization_of, read_config
from .errors import InputError, ModelToolsError
from .windows import normalize

WINDOW_BYTES = WINDOW * CHANNELS * 4
TOKEN_ENV = "EDGEINFER_ADMIN_TOKEN"
# The largest answer read: the sidecar keeps at most 10,000 windows (36 MB).
MAX_CAPTURE_BYTES = 10_000 * WINDOW_BYTES


class CaptureError(ModelToolsError):
    """The sidecar did not hand over its capture (unreachable, refused, capture off, nothing captured)."""

    kind = "capture"
    exit_code = 10


def read_token(token_file: str | None) -> str:
    """The admin token from ``token_file``, else from $EDGEINFER_ADMIN_TOKEN."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise InputError(f"--token-file {token_file}: {exc.strerror or exc}", field="token_file") from None
        if not token:
            raise InputError(f"--token-file {token_file} is empty; expected the admin bearer token", field="token_file")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise InputError(
            f"no admin token: give --token-file PATH (the file the sidecar's EDGEINFER_ADMIN_TOKEN_FILE names) "
            f"or set {TOKEN_ENV}",
            field="token_file",
        )
    return token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx is then an HTTPError, reported with its status


# The admin token goes to the sidecar named and nowhere else: no proxy from the environment, and no
# redirect followed (urllib would send the Authorization header on to wherever it points).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def fetch(url: str, token: str, timeout_s: float = 30.0) -> tuple[np.ndarray, dict[str, str]]:
    """``GET <url>/admin/capture``: the windows [N, 100, 9] float32 and the x-capture-* headers."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"--url {url!r}: expected the sidecar's base URL, e.g. http://127.0.0.1:9000", field="url")
    endpoint = url.rstrip("/") + "/admin/capture"
    request = urllib.request.Request(endpoint, headers={"Authorization": f"Bearer {token}"})
    try:
        with _OPENER.open(request, timeout=timeout_s) as resp:  # noqa: S310 (http(s) checked above)
            body = resp.read(MAX_CAPTURE_BYTES + 1)
            headers = {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace").strip()
        raise CaptureError(f"GET {endpoint} answered {exc.code}: {detail}", status=exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CaptureError(f"GET {endpoint}: no answer ({reason})") from None
    count, rest = divmod(len(body), WINDOW_BYTES)
    if rest or len(body) > MAX_CAPTURE_BYTES:
        raise CaptureError(f"GET {endpoint}: {len(body)} bytes, not whole windows of {WINDOW_BYTES} bytes")
    if count == 0:
        seen = headers.get("x-capture-seen", "?")
        raise CaptureError(f"the sidecar at {url} has captured no windows yet ({seen} seen since the sample started)")
    windows = np.frombuffer(body, dtype="<f4").reshape(count, WINDOW, CHANNELS).astype(np.float32)
    return windows, headers


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reference(release: Path) -> tuple[Any, Path]:
    """The release's normalization and its fp32 ``model.onnx``, checked against its manifest when it has one."""
    manifest = release / FILES["manifest"]
    if manifest.exists():
        try:
            problems = Manifest.load(manifest).verify_files(release)
        except ContractError as exc:
            raise InputError(f"--release {release}: {exc}", field="release") from None
        if problems:
            raise InputError(f"--release {release}: its files differ from its manifest: {'; '.join(problems)}")
    onnx_path = release / "model.onnx"
    if not onnx_path.is_file():
        raise InputError(f"--release {release}: no model.onnx; expected a release directory", field="release")
    norm = normalization_of(read_config(release / "model_config.json"))
    if norm is None:
        raise InputError(f"--release {release}: model_config.json has no normalization", field="release")
    return norm, onnx_path


def embed(onnx_path: Path, normalized: np.ndarray) -> np.ndarray:
    """ONNX Runtime on the CPU, one window a call when the graph's batch is fixed, 64 when it is not."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    step = 64 if not isinstance(inp.shape[0], int) else max(inp.shape[0], 1)
    parts = [session.run(None, {inp.name: normalized[i : i + step]})[0] for i in range(0, len(normalized), step)]
    return np.concatenate(parts).astype(np.float32)


def to_golden(
    windows: np.ndarray, order: tuple[str, ...], release: Path, count: int, source: dict[str, Any]
) -> GoldenSet:
    """Up to ``count`` windows, evenly spread over the sample, with the release's reference embeddings."""
    norm, onnx_path = _reference(release)
    if order and order != tuple(norm.channel_order):
        if sorted(order) != sorted(norm.channel_order):
            raise InputError(f"the capture's channels {list(order)} are not the release's {list(norm.channel_order)}")
        windows = windows[:, :, [order.index(c) for c in norm.channel_order]]
    picked = windows[np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int))]
    embeddings = embed(onnx_path, normalize(picked, norm))
    if not np.isfinite(embeddings).all():
        raise InputError(f"{onnx_path} answered NaN or Infinity for a captured window; no golden set written")
    model_id = "unknown"
    golden_path = release / FILES["golden"]
    if golden_path.exists():
        model_id = GoldenSet.load(golden_path).model_id
    return GoldenSet(
        windows=picked.tolist(),
        embeddings=embeddings.tolist(),
        model_id=model_id,
        normalization_hash=norm.hash(),
        meta={"reference": f"onnxruntime:{onnx_path.name}", "generator": "capture", "count": len(picked), **source},
    )


def capture(
    url: str,
    token_file: str | None,
    replay: str | None,
    golden: str | None,
    release: str | None,
    count: int,
) -> dict[str, Any]:
    """Fetch the sidecar's capture and write the replay file and/or the golden set."""
    if not replay and not golden:
        raise InputError("nothing to write: give --replay PATH, --golden PATH, or both")
    if golden and not release:
        raise InputError("--golden needs --release DIR: the release whose model.onnx gives the reference embeddings")
    if count < 1:
        raise InputError(f"--count must be at least 1, not {count}", field="count")
    # Checked before the fetch: the sample is the sidecar's, and is not fetched twice for a typo.
    for option, path in (("--replay", replay), ("--golden", golden)):
        if path:
            check_out(path, option)
    windows, headers = fetch(url, read_token(token_file))
    order = tuple(c for c in headers.get("x-channel-order", "").split(",") if c)
    source = {
        "captured_from": url,
        "captured_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "captured_windows": len(windows),
        "seen_windows": int(headers.get("x-capture-seen", "0") or 0),
        "channel_order": list(order),
    }
    progress(f"fetched {len(windows)} windows ({source['seen_windows']} seen) from {url}")
    out: dict[str, Any] = {**source}
    if replay:
        _write_atomic(Path(replay), windows.astype("<f4").tobytes())
        out["replay"] = replay
    if golden:
        assert release is not None
        gs = to_golden(windows, order, Path(release), count, source)
        _write_atomic(Path(golden), json.dumps(gs.to_dict(), separators=(",", ":")).encode())
        out.update(
            golden=golden, golden_windows=len(gs), model_id=gs.model_id, normalization_hash=gs.normalization_hash
        )
    return out
