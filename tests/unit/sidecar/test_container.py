"""The sidecar image: built from the local base, hardened, serving the origin model in a container."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from testbed.sidecar import (
    REPO,
    free_port,
    make_release,
    normalize,
    ort_embed,
    perturbed_onnx,
    point_current,
    production_release,
    raw_windows,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TAG = "edgeinfer/sidecar:test"
CA = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="session")
def image(base_image: str) -> str:
    cmd = [sys.executable, "-m", "sidecar.build_image", "--tag", TAG, "--base-image", base_image, "--quiet"]
    if CA.is_file():
        cmd += ["--ca-file", str(CA)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return TAG


@pytest.fixture
def world_models(origin_dir: Path) -> Iterator[Path]:
    """A models dir the image's non-root user can read (pytest's tmp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="edgeinfer-models-"))
    production_release(root, origin_dir)
    (root / "admin_token").write_text("container-token\n")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _open_up(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


def test_image_is_non_root_with_healthcheck_and_without_build_ca(image: str):
    import json

    info = json.loads(
        subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    )[0]
    cfg = info["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Healthcheck"]["Test"][0] == "CMD"
    cid = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        export = subprocess.run(["docker", "export", cid], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True)
    ca_digest = hashlib.sha256(CA.read_bytes()).hexdigest() if CA.is_file() else None
    ca_size = CA.stat().st_size if CA.is_file() else -1
    import io

    names = []
    with tarfile.open(fileobj=io.BytesIO(export)) as tar:
        for m in tar:
            names.append(m.name)
            if m.isfile() and m.size == ca_size:
                assert hashlib.sha256(tar.extractfile(m).read()).hexdigest() != ca_digest, (
                    f"host CA bundle found at {m.name}"
                )
    assert not [n for n in names if "build-ca" in n or n.startswith("build/")]
    assert "opt/app/sidecar/app.py" in names and "opt/app/edgeinfer_contract/__init__.py" in names
    assert not [n for n in names if "torch" in n.split("/") or "model_tools" in n]


def _wait_healthy(cid: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", cid], capture_output=True, text=True
        ).stdout.strip()
        if state in ("healthy", "unhealthy"):
            return state
        time.sleep(1)
    return state


def test_container_serves_the_model_hardened_as_in_compose(
    image: str, world_models: Path, origin_dir: Path, origin_config
):
    _open_up(world_models)
    port = free_port()
    name = f"edgeinfer-sidecar-test-{port}"
    run = [
        "docker", "run", "-d", "--name", name,
        "--read-only", "--tmpfs", "/tmp:size=16m,mode=1777",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
        "--memory", "512m", "--pids-limit", "128",
        "--health-interval", "1s", "--health-start-period", "5s",
        "-p", f"127.0.0.1:{port}:9000",
        "-v", f"{world_models}:/models:ro",
        "-v", f"{world_models / 'admin_token'}:/run/secrets/edgeinfer_admin_token:ro",
        "-e", "EDGEINFER_ADMIN_TOKEN_FILE=/run/secrets/edgeinfer_admin_token",
        "-e", "EDGEINFER_THREADS=1",
        image,
    ]  # fmt: skip
    cid = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    try:
        assert _wait_healthy(cid) == "healthy", subprocess.run(
            ["docker", "logs", cid], capture_output=True, text=True
        ).stdout
        url = f"http://127.0.0.1:{port}"
        h = requests.get(url + "/healthz", timeout=5).json()
        assert h["backend"] == "onnxruntime" and h["model_version"] == "v72pct"
        raw = raw_windows(origin_config, 4, seed=31)
        ref = ort_embed(origin_dir / "tcn_encoder_for_edgeinfer.onnx", normalize(origin_config, raw))
        body = requests.post(url + "/encode", json={"imu_windows": raw.tolist()}, timeout=10).json()
        np.testing.assert_allclose(np.asarray(body["latent_embeddings"], np.float32), ref, rtol=1e-5, atol=1e-5)
        body = requests.post(url + "/infer", json={"x": raw[0].tolist()}, timeout=10).json()
        np.testing.assert_allclose(np.asarray(body["latent"], np.float32), ref[0], rtol=1e-5, atol=1e-5)
        assert requests.post(url + "/encode", json={"imu_window": [[1]]}, timeout=10).status_code == 422
        # switch current on the host, reload through the API: the read-only mount sees the new link
        new = world_models / "releases" / "v73"
        make_release(
            new,
            perturbed_onnx(origin_dir / "tcn_encoder_for_edgeinfer.onnx", world_models / "new.onnx"),
            origin_dir / "model_config.json",
            version="v73",
        )
        _open_up(world_models)
        point_current(world_models, new)
        r = requests.post(url + "/admin/reload", headers={"Authorization": "Bearer container-token"}, timeout=60)
        assert r.status_code == 200, r.text
        assert requests.get(url + "/healthz", timeout=5).json()["model_version"] == "v73"
        top = subprocess.run(
            [
                "docker",
                "exec",
                cid,
                "/opt/venv/bin/python",
                "-c",
                "import os; print(os.getuid(), open('/proc/self/status').read())",
            ],
            capture_output=True,
            text=True,
        ).stdout
        assert top.startswith("10001")
        assert "CapEff:\t0000000000000000" in top and "NoNewPrivs:\t1" in top
        w = subprocess.run(
            ["docker", "exec", cid, "sh", "-c", "touch /opt/app/x 2>&1 || echo read-only"],
            capture_output=True,
            text=True,
        ).stdout
        assert "read-only" in w.lower()
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def _compose_cli() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_template_runs_the_service(image: str, world_models: Path, origin_config, tmp_path: Path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "no compose CLI on this machine (docker compose plugin or docker-compose); the hardened run is covered by test_container_serves_the_model_hardened_as_in_compose"
        )
    _open_up(world_models)
    port = free_port()
    project = tmp_path / "compose"
    project.mkdir()
    shutil.copyfile(REPO / "sidecar" / "compose.yaml", project / "compose.yaml")
    (project / ".env").write_text(
        f"COMPOSE_PROFILES=cpu\nEDGEINFER_IMAGE={image}\nEDGEINFER_MODELS_DIR={world_models}\nEDGEINFER_ADMIN_TOKEN_PATH={world_models / 'admin_token'}\n"
        f"EDGEINFER_PORT={port}\nEDGEINFER_BIND=127.0.0.1\nEDGEINFER_CONTAINER_NAME=edgeinfer-sidecar-compose-{port}\nEDGEINFER_THREADS=1\n"
    )
    base = [*cli, "-p", f"edgeinfer{port}", "-f", str(project / "compose.yaml"), "--project-directory", str(project)]
    try:
        r = subprocess.run([*base, "up", "-d"], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert _wait_healthy(f"edgeinfer-sidecar-compose-{port}", 120) == "healthy"
        raw = raw_windows(origin_config, 1, seed=41)
        assert (
            requests.post(
                f"http://127.0.0.1:{port}/encode", json={"imu_window": raw[0].tolist()}, timeout=10
            ).status_code
            == 200
        )
    finally:
        subprocess.run([*base, "down", "-v"], capture_output=True, timeout=120)
