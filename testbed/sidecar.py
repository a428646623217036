"""Release directories built from the production model's files (shared fixtures); a real sidecar process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from edgeinfer_contract import GoldenSet, Manifest, ModelConfig
from testbed.testserver import stop_process

REPO = Path(__file__).resolve().parents[1]
DOUBLES = REPO / "tests" / "doubles"


def ort_embed(onnx_path: Path, normalized: np.ndarray) -> np.ndarray:
    """ONNX Runtime run directly, one window at a time: the reference the HTTP answers must equal."""
    import onnxruntime as ort

    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: w[None].astype(np.float32)})[0] for w in normalized])


def normalize(cfg: ModelConfig, raw: np.ndarray) -> np.ndarray:
    mean = np.asarray(cfg.normalization.mean, np.float32)
    std = np.asarray(cfg.normalization.std, np.float32)
    return ((raw.astype(np.float32) - mean) / std).astype(np.float32)


def raw_windows(cfg: ModelConfig, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean = np.asarray(cfg.normalization.mean, np.float32)
    std = np.asarray(cfg.normalization.std, np.float32)
    return (mean + std * rng.standard_normal((n, 100, 9))).astype(np.float32)


def batch_onnx(src: Path, dst: Path) -> None:
    """The same graph with a symbolic batch axis (what model_tools ships as model_batch.onnx)."""
    import onnx

    m = onnx.load(str(src))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    del m.graph.value_info[:]
    onnx.save(m, str(dst))


def make_release(
    dest: Path,
    onnx_src: Path,
    config_src: Path,
    *,
    version: str = "v72pct",
    golden_windows: int = 8,
    batch: bool = True,
    manifest: bool = True,
    golden_from: Path | None = None,
    hef: bool = False,
    hef_options: dict[str, object] | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A release directory in the format of docs/artifacts.md, golden references computed by ORT.

    ``hef``: a test HEF of model.onnx, quantized from 1024 calibration windows by the
    hailo_platform double (``hef_options``: its ``write_hef`` arguments, e.g. ``hw_arch``,
    ``hailort``; ``raw_input=True`` puts the normalization inside the HEF).
    ``extra`` files are written and listed in the manifest with their stem as role.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_src, dest / "model.onnx")
    shutil.copyfile(config_src, dest / "model_config.json")
    roles = {"model.onnx": "onnx", "model_config.json": "config"}
    if batch:
        batch_onnx(dest / "model.onnx", dest / "model_batch.onnx")
        roles["model_batch.onnx"] = "onnx_batch"
    cfg = ModelConfig.load(dest / "model_config.json")
    if golden_windows:
        raw = raw_windows(cfg, golden_windows, seed=1)
        emb = ort_embed(golden_from or dest / "model.onnx", normalize(cfg, raw))
        GoldenSet(raw.tolist(), emb.tolist(), cfg.model_id, cfg.normalization_hash).save(dest / "golden.json")
        roles["golden.json"] = "golden"
    if hef:
        sys.path.insert(0, str(DOUBLES))
        try:
            from hailo_platform import write_hef
        finally:
            sys.path.remove(str(DOUBLES))
        options = dict(hef_options or {})
        calib = raw_windows(cfg, 1024, seed=11)
        if options.pop("raw_input", False):
            options["normalization"] = (list(cfg.normalization.mean), list(cfg.normalization.std))
        else:
            calib = normalize(cfg, calib)
        write_hef(dest / "model.hef", dest / "model.onnx", calib, **options)
        roles["model.hef"] = "hef"
    for name, blob in (extra or {}).items():
        (dest / name).write_bytes(blob)
        roles[name] = Path(name).stem
    if manifest:
        (dest / "manifest.json").write_bytes(Manifest.build(dest, roles, version).to_bytes())
    return dest


def production_release(models: Path, fixtures: Path) -> Path:
    """``models/releases/v72pct-<sha8>`` built from the model in production (the fixtures), and
    ``models/current`` pointing at it: the /models layout the sidecar serves."""
    release = make_release(
        models / "releases" / "v72pct", fixtures / "tcn_encoder_for_edgeinfer.onnx", fixtures / "model_config.json"
    )
    point_current(models, release)
    return release


def rewrite_manifest(release: Path) -> None:
    """The manifest again over the files it lists, as their bytes are now."""
    old = Manifest.load(release / "manifest.json")
    roles = {f.name: f.role for f in old.files}
    (release / "manifest.json").write_bytes(Manifest.build(release, roles, old.model_version).to_bytes())


def point_current(models: Path, release: Path, link: str = "current") -> None:
    """Switch models/current (or models/<link>) atomically to a release, as the deploy role does."""
    tmp = models / f".{link}.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(release, models))
    os.replace(tmp, models / link)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    token: str

    def get(self, path: str, **kw: object) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kw)  # type: ignore[arg-type]

    def reload(self) -> requests.Response:
        return self.post("/admin/reload", headers={"Authorization": f"Bearer {self.token}"})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(tmp: Path, model_dir: Path, env: dict[str, str] | None = None, wait: bool = True) -> Server:
    token_file = tmp / "admin_token"
    token_file.write_text("test-admin-token\n")
    port = free_port()
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EDGEINFER_", "HAILO_DOUBLE_")) and k not in ("MODEL_VERSION", "HEF_PATH", "BATCH_SIZE")
    }
    full.update(
        EDGEINFER_MODEL_DIR=str(model_dir),
        EDGEINFER_HOST="127.0.0.1",
        EDGEINFER_PORT=str(port),
        EDGEINFER_ADMIN_TOKEN_FILE=str(token_file),
        EDGEINFER_THREADS="1",
        EDGEINFER_BACKEND="onnxruntime",
        PYTHONPATH=str(REPO),
    )
    full.update(env or {})
    log = tmp / f"sidecar-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar"], cwd=REPO, env=full, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log, "test-admin-token")
    if wait:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {proc.returncode}:\n{server.output()}")
            try:
                requests.get(server.url + "/healthz", timeout=1)
                return server
            except requests.ConnectionError:
                time.sleep(0.1)
        stop_server(server)
        raise RuntimeError(f"sidecar did not answer within 30 s:\n{server.output()}")
    return server


def stop_server(server: Server) -> None:
    stop_process(server.proc, timeout=15)


def broken_onnx(dst: Path) -> Path:
    dst.write_bytes(b"this is not an onnx graph")
    return dst


def perturbed_onnx(src: Path, dst: Path, scale: float = 1.5) -> Path:
    """A valid graph with different weights (a 'new model' for reload tests)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    for init in m.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.ndim == 2 and arr.shape[0] == 64:  # fc_mu
            init.CopyFrom(numpy_helper.from_array((arr * scale).astype(arr.dtype), init.name))
    onnx.save(m, str(dst))
    return dst


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()
