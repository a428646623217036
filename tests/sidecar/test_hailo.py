"""The Hailo backend against the hailo_platform test double (tests/doubles), in a real server process.

The double follows the HailoRT API of hailo.md and runs the release's ONNX behind it,
so the answers are real model outputs; no Hailo-8 was used for these tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeinfer_contract import Manifest

from .conftest import DOUBLES, make_release, normalize, ort_embed, point_current, raw_windows


@pytest.fixture
def hailo_release(tmp_path: Path, origin_dir: Path) -> Path:
    root = tmp_path / "models"
    rel = make_release(
        root / "releases" / "v72pct",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        hef=True,
    )
    point_current(root, rel)
    return root


@pytest.fixture
def device(tmp_path: Path) -> Path:
    d = tmp_path / "hailo0"
    d.write_text("")
    return d


def env(device: Path, backend: str = "auto", **extra: str) -> dict[str, str]:
    return {
        "PYTHONPATH": f"{Path(__file__).resolve().parents[2]}:{DOUBLES}",
        "EDGEINFER_BACKEND": backend,
        "EDGEINFER_HAILO_DEVICE": str(device),
        **extra,
    }


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + " ", name + "{")))


@pytest.mark.parametrize(("version", "api"), [("4.18", "InferModel"), ("4.17", "InferVStreams")])
def test_hailo_backend_serves_real_outputs_on_both_runtime_apis(
    sidecar, hailo_release, device, origin_onnx, origin_config, version, api
):
    s = sidecar(hailo_release / "current", env=env(device, "hailo", HAILO_DOUBLE_VERSION=version))
    h = s.get("/healthz")
    assert h.status_code == 200, h.text
    assert h.json()["backend"] == "hailo" and api in h.json()["backend_detail"]
    assert h.json()["served_file"] == "model.hef" and h.json()["hailo_fallback"] is None
    raw = raw_windows(origin_config, 3, seed=21)
    ref = ort_embed(origin_onnx, normalize(origin_config, raw))
    body = s.post("/encode", json={"imu_windows": raw.tolist()}).json()
    assert body["backend"] == "hailo"
    np.testing.assert_allclose(np.asarray(body["latent_embeddings"], np.float32), ref, rtol=1e-5, atol=1e-5)
    m = s.get("/metrics").text
    assert 'backend="hailo"' in m and _metric(m, "edgeinfer_hailo_fallback") == 0


def test_auto_picks_hailo_only_when_device_module_and_hef_are_all_present(
    sidecar, hailo_release, device, tmp_path, origin_dir
):
    s = sidecar(hailo_release / "current", env=env(device))
    assert s.get("/healthz").json()["backend"] == "hailo"
    # no device node
    s2 = sidecar(hailo_release / "current", env=env(tmp_path / "no-hailo0"))
    assert s2.get("/healthz").json()["backend"] == "onnxruntime"
    # no hailo_platform module
    s3 = sidecar(hailo_release / "current", env={"EDGEINFER_BACKEND": "auto", "EDGEINFER_HAILO_DEVICE": str(device)})
    assert s3.get("/healthz").json()["backend"] == "onnxruntime"
    # no HEF in the release
    plain = make_release(
        tmp_path / "nohef", origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json"
    )
    s4 = sidecar(plain, env=env(device))
    assert s4.get("/healthz").json()["backend"] == "onnxruntime"
    for srv in (s2, s3, s4):
        assert srv.get("/healthz").json()["hailo_fallback"] is None


@pytest.mark.parametrize("status", [26, 93, 92, 76, 74, 64])
def test_fallback_statuses_at_startup_serve_on_cpu_and_say_so(
    sidecar, hailo_release, device, origin_onnx, origin_config, status
):
    s = sidecar(hailo_release / "current", env=env(device, HAILO_DOUBLE_FAIL_STATUS=str(status)))
    h = s.get("/healthz")
    assert h.status_code == 200, h.text
    assert h.json()["backend"] == "onnxruntime"
    assert f"status {status}" in h.json()["hailo_fallback"]
    m = s.get("/metrics").text
    assert _metric(m, "edgeinfer_hailo_fallback") == 1 and 'backend="onnxruntime"' in m
    raw = raw_windows(origin_config, 1, seed=5)
    body = s.post("/encode", json={"imu_window": raw[0].tolist()}).json()
    assert body["backend"] == "onnxruntime"
    np.testing.assert_allclose(
        body["latent_embedding"], ort_embed(origin_onnx, normalize(origin_config, raw))[0], rtol=1e-5, atol=1e-5
    )


def test_fallback_status_at_run_time_switches_to_cpu_and_reports_it(
    sidecar, hailo_release, device, origin_onnx, origin_config
):
    # the golden self-check runs first and already meets the failing device: the model still
    # passes on the CPU, and healthz and metrics say why it is not on the Hailo.
    s = sidecar(
        hailo_release / "current", env=env(device, "hailo", HAILO_DOUBLE_FAIL_STATUS="74", HAILO_DOUBLE_FAIL_AT="run")
    )
    h = s.get("/healthz").json()
    assert h["backend"] == "onnxruntime" and "status 74" in h["hailo_fallback"]
    raw = raw_windows(origin_config, 2, seed=6)
    body = s.post("/encode", json={"imu_windows": raw.tolist()}).json()
    assert body["backend"] == "onnxruntime"
    np.testing.assert_allclose(
        body["latent_embeddings"], ort_embed(origin_onnx, normalize(origin_config, raw)), rtol=1e-5, atol=1e-5
    )
    assert _metric(s.get("/metrics").text, "edgeinfer_hailo_fallback") == 1


def test_reload_on_hailo_keeps_one_device_owner(sidecar, hailo_release, device, origin_dir):
    s = sidecar(hailo_release / "current", env=env(device, "hailo"))
    new = make_release(
        hailo_release / "releases" / "v73",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        hef=True,
        version="v73",
    )
    point_current(hailo_release, new)
    r = s.reload()
    assert r.status_code == 200, r.text  # the double refuses a second VDevice with status 74
    h = s.get("/healthz").json()
    assert h["model_version"] == "v73" and h["backend"] == "hailo" and h["hailo_fallback"] is None


def test_explicit_hailo_without_hailort_is_reported(sidecar, hailo_release, device):
    s = sidecar(hailo_release / "current", env={"EDGEINFER_BACKEND": "hailo", "EDGEINFER_HAILO_DEVICE": str(device)})
    h = s.get("/healthz")
    assert h.status_code == 503 and "hailo_platform" in h.json()["reason"]


def test_a_hef_or_metadata_the_manifest_does_not_list_is_never_read(sidecar, tmp_path, device, origin_dir):
    def release(name: str, listed: tuple[str, ...]) -> Path:
        rel = make_release(
            tmp_path / name,
            origin_dir / "tcn_encoder_for_edgeinfer.onnx",
            origin_dir / "model_config.json",
            hef=True,
            extra={"deployment_metadata.json": b'{"input_units": "raw"}'},
        )
        roles = {f.name: f.role for f in Manifest.load(rel / "manifest.json").files if f.name not in listed}
        (rel / "manifest.json").write_bytes(Manifest.build(rel, roles, "v72pct").to_bytes())
        return rel

    no_hef = release("no-hef", ("model.hef",))
    assert sidecar(no_hef, env=env(device)).get("/healthz").json()["backend"] == "onnxruntime"
    h = sidecar(no_hef, env=env(device, "hailo")).get("/healthz")
    assert h.status_code == 503 and "manifest.json does not list model.hef" in h.json()["reason"]
    # Listed, "raw" feeds the HEF (whose graph expects normalized windows) raw ones: the
    # self-check fails. Unlisted, the file is not read.
    h = sidecar(release("all-listed", ()), env=env(device, "hailo")).get("/healthz")
    assert h.status_code == 503 and "self-check failed" in h.json()["reason"], h.text
    h = sidecar(release("no-meta", ("deployment_metadata.json",)), env=env(device, "hailo")).get("/healthz")
    assert h.status_code == 200 and h.json()["backend"] == "hailo", h.text
