"""The Hailo backend against the hailo_platform test double (tests/doubles), in a real server process.

The double follows the HailoRT API of hailo.md, raises its failures as pyhailort does, and
runs an INT8 (QDQ) graph that the test HEF carries, so the answers are real model outputs
with a quantization error; no Hailo-8 was used for these tests.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from edgeinfer_contract import QUALITY_FLOORS, Manifest
from testbed.sidecar import DOUBLES, make_release, normalize, ort_embed, point_current, raw_windows, stop_server


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
        "PYTHONPATH": f"{Path(__file__).resolve().parents[3]}:{DOUBLES}",
        "EDGEINFER_BACKEND": backend,
        "EDGEINFER_HAILO_DEVICE": str(device),
        "HAILO_DOUBLE_DEVICE": str(device),
        **extra,
    }


def _metric(text: str, name: str, *labels: str) -> float:
    """The sum of a metric's samples; with ``labels`` (e.g. 'backend="hailo"'), of those that carry them all."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{")) and all(label in line for label in labels)
    )


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def hef_answers(hef: Path, normalized: np.ndarray) -> np.ndarray:
    """The HEF's own INT8 graph, run by ONNX Runtime directly: what the device double must answer."""
    sys.path.insert(0, str(DOUBLES))
    try:
        from hailo_double_hef import session, unpack
    finally:
        sys.path.remove(str(DOUBLES))
    _, payload = unpack(hef.read_bytes())
    s = session(payload)
    return np.concatenate([s.run(None, {s.get_inputs()[0].name: w[None]})[0] for w in normalized])


@pytest.mark.parametrize(("version", "api"), [("4.18", "InferModel"), ("4.17", "InferVStreams")])
def test_hailo_backend_serves_the_int8_answers_of_the_hef_on_both_runtime_apis(
    sidecar, hailo_release, device, origin_onnx, origin_config, version, api
):
    s = sidecar(hailo_release / "current", env=env(device, "hailo", HAILO_DOUBLE_VERSION=version))
    h = s.get("/healthz")
    assert h.status_code == 200, h.text
    assert h.json()["backend"] == "hailo" and api in h.json()["backend_detail"]
    assert h.json()["served_file"] == "model.hef" and h.json()["hailo_fallback"] is None
    assert h.json()["backend_reason"] == f"EDGEINFER_BACKEND=hailo: model.hef on {device}"
    assert h.json()["backend_reason_code"] == "configured" and h.json()["hailo_status"] is None
    raw = raw_windows(origin_config, 3, seed=21)
    x = normalize(origin_config, raw)
    body = s.post("/encode", json={"imu_windows": raw.tolist()}).json()
    assert body["backend"] == "hailo"
    got = np.asarray(body["latent_embeddings"], np.float32)
    np.testing.assert_allclose(got, hef_answers(hailo_release / "current" / "model.hef", x), rtol=1e-4, atol=1e-5)
    fp32 = ort_embed(origin_onnx, x)
    # The INT8 error is there (no fp32 copy), and within the Hailo floor.
    assert np.abs(got - fp32).max() > 1e-3
    assert _cosines(got, fp32).min() >= QUALITY_FLOORS["hailo"]
    m = s.get("/metrics").text
    assert 'backend="hailo"' in m and _metric(m, "edgeinfer_hailo_fallback") == 0
    assert _metric(m, "edgeinfer_model_info", 'backend="hailo"', 'backend_reason="configured"', 'hailo_status=""') == 1


def test_auto_picks_hailo_only_when_device_module_and_hef_are_all_present_and_says_why(
    sidecar, hailo_release, device, tmp_path, origin_dir
):
    s = sidecar(hailo_release / "current", env=env(device))
    h = s.get("/healthz").json()
    assert h["backend"] == "hailo" and h["backend_reason_code"] == "auto_hailo"
    assert h["backend_reason"] == f"EDGEINFER_BACKEND=auto: {device} and a loadable HEF (model.hef)"
    # no device node
    s2 = sidecar(hailo_release / "current", env=env(tmp_path / "no-hailo0"))
    # no hailo_platform module
    s3 = sidecar(hailo_release / "current", env={"EDGEINFER_BACKEND": "auto", "EDGEINFER_HAILO_DEVICE": str(device)})
    # no HEF in the release
    plain = make_release(
        tmp_path / "nohef", origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json"
    )
    s4 = sidecar(plain, env=env(device))
    s5 = sidecar(hailo_release / "current", env=env(device, "onnxruntime"))
    for srv, code, words in (
        (s2, "auto_no_device", f"EDGEINFER_BACKEND=auto: no {tmp_path / 'no-hailo0'}"),
        (s3, "auto_no_hailort", "EDGEINFER_BACKEND=auto: hailo_platform (HailoRT) is not installed"),
        (s4, "auto_no_hef", "EDGEINFER_BACKEND=auto: the release has no HEF (model.hef)"),
        (s5, "configured", "EDGEINFER_BACKEND=onnxruntime"),
    ):
        h = srv.get("/healthz").json()
        assert h["backend"] == "onnxruntime" and h["hailo_fallback"] is None
        assert (h["backend_reason_code"], h["backend_reason"]) == (code, words)
        m = srv.get("/metrics").text
        labels = ('backend="onnxruntime"', f'backend_reason="{code}"', 'hailo_status=""')
        assert _metric(m, "edgeinfer_model_info", *labels) == 1


def _serves_on_cpu_after(s, origin_onnx, origin_config, status: int, code: str) -> dict:
    """The checks every fallback ends in: /healthz and /metrics name it, and the CPU answers as fp32 ONNX Runtime."""
    h = s.get("/healthz")
    assert h.status_code == 200, h.text
    body = h.json()
    assert body["backend"] == "onnxruntime" and body["served_file"] == "model_batch.onnx"
    assert body["hailo_status"] == status and f"HailoRT status {status} (" in body["hailo_fallback"]
    assert body["backend_reason_code"] == code and body["hailo_fallback"] in body["backend_reason"]
    assert body["self_check"]["floor"] == QUALITY_FLOORS["fp32"]
    m = s.get("/metrics").text
    assert _metric(m, "edgeinfer_hailo_fallback") == 1
    labels = ('backend="onnxruntime"', f'backend_reason="{code}"', f'hailo_status="{status}"')
    assert _metric(m, "edgeinfer_model_info", *labels) == 1
    raw = raw_windows(origin_config, 2, seed=5)
    answer = s.post("/encode", json={"imu_windows": raw.tolist()}).json()
    assert answer["backend"] == "onnxruntime"
    np.testing.assert_allclose(
        answer["latent_embeddings"], ort_embed(origin_onnx, normalize(origin_config, raw)), rtol=1e-5, atol=1e-5
    )
    return body


@pytest.mark.parametrize("status", [26, 93, 92, 76, 74, 73, 64, 78])
def test_each_fallback_status_at_startup_serves_on_cpu_and_says_so(
    sidecar, hailo_release, device, origin_onnx, origin_config, status
):
    s = sidecar(hailo_release / "current", env=env(device, HAILO_DOUBLE_FAIL_STATUS=str(status)))
    body = _serves_on_cpu_after(s, origin_onnx, origin_config, status, "hailo_fallback_load")
    assert body["backend_reason"].startswith("hailo fell back at load: HailoRT status")


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no driver: the device node is gone", 64),
        ("another process holds the device", 74),
        ("the HEF needs a newer HailoRT", 92),
        ("the HEF is for hailo8, the device a hailo8l", 93),
        ("the same on HailoRT 4.17", 26),
        ("the kernel driver is not libhailort's version", 76),
    ],
)
def test_the_machine_states_hailo_md_documents_end_in_the_cpu_fallback(
    sidecar, tmp_path, origin_dir, device, origin_onnx, origin_config, case, status
):
    hef_options: dict[str, object] = {"hailort": "4.23"} if status == 92 else {}
    rel = make_release(
        tmp_path / "rel", origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json",
        hef=True, hef_options=hef_options,
    )  # fmt: skip
    extra = {
        64: {"HAILO_DOUBLE_DEVICE": str(tmp_path / "gone")},
        93: {"HAILO_DOUBLE_ARCH": "hailo8l"},
        26: {"HAILO_DOUBLE_ARCH": "hailo8l", "HAILO_DOUBLE_VERSION": "4.17"},
        76: {"HAILO_DOUBLE_DRIVER_VERSION": "4.17"},
    }.get(status, {})
    with open(device, "rb") as held:
        if status == 74:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        s = sidecar(rel, env={**env(device, "hailo"), **extra})
        _serves_on_cpu_after(s, origin_onnx, origin_config, status, "hailo_fallback_load")


def test_a_device_timeout_during_serving_falls_back_at_run_time(
    sidecar, hailo_release, device, origin_onnx, origin_config
):
    # 8 golden windows at 50 ms each need 400 ms of device time; the timeout is 100 ms.
    s = sidecar(
        hailo_release / "current",
        env=env(device, "hailo", HAILO_DOUBLE_DEVICE_MS="50", EDGEINFER_HAILO_TIMEOUT_MS="100"),
    )
    body = _serves_on_cpu_after(s, origin_onnx, origin_config, 4, "hailo_fallback_run_time")
    assert body["backend_reason"].startswith("hailo fell back at run time: HailoRT status 4 (HAILO_TIMEOUT")
    assert "HailoRTTimeout" in body["hailo_fallback"]


def test_fallback_status_at_run_time_switches_to_cpu_and_reports_it(
    sidecar, hailo_release, device, origin_onnx, origin_config
):
    # the golden self-check runs first and already meets the failing device: the model still
    # passes on the CPU, and healthz and metrics say why it is not on the Hailo.
    s = sidecar(
        hailo_release / "current", env=env(device, "hailo", HAILO_DOUBLE_FAIL_STATUS="74", HAILO_DOUBLE_FAIL_AT="run")
    )
    _serves_on_cpu_after(s, origin_onnx, origin_config, 74, "hailo_fallback_run_time")


def test_a_hailort_failure_that_is_no_fallback_status_refuses_the_release(sidecar, hailo_release, device):
    s = sidecar(
        hailo_release / "current",
        env=env(device, "hailo", HAILO_DOUBLE_FAIL_STATUS="6", HAILO_DOUBLE_FAIL_AT="configure"),
    )
    h = s.get("/healthz")
    assert h.status_code == 503
    assert "HailoRT failed (status 6): HailoRTInvalidOperationException" in h.json()["reason"]


def test_a_raw_input_hef_that_falls_back_feeds_the_cpu_normalized_windows(
    sidecar, tmp_path, origin_dir, device, origin_onnx, origin_config
):
    """A HEF that normalizes on chip takes raw windows; after a run-time fallback ONNX Runtime,
    which expects normalized ones, must get normalized ones."""
    rel = make_release(
        tmp_path / "raw", origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json",
        hef=True, hef_options={"raw_input": True}, extra={"deployment_metadata.json": b'{"input_units": "raw"}'},
    )  # fmt: skip
    raw = raw_windows(origin_config, 3, seed=31)
    fp32 = ort_embed(origin_onnx, normalize(origin_config, raw))
    on_hailo = sidecar(rel, env=env(device, "hailo"))
    h = on_hailo.get("/healthz").json()
    assert h["backend"] == "hailo" and "raw input" in h["backend_detail"], h
    got = np.asarray(on_hailo.post("/encode", json={"imu_windows": raw.tolist()}).json()["latent_embeddings"])
    assert _cosines(got, fp32).min() >= QUALITY_FLOORS["hailo"]
    stop_server(on_hailo)  # it holds the device while it lives

    s = sidecar(rel, env=env(device, "hailo", HAILO_DOUBLE_FAIL_STATUS="74", HAILO_DOUBLE_FAIL_AT="run"))
    _serves_on_cpu_after(s, origin_onnx, origin_config, 74, "hailo_fallback_run_time")
    got = np.asarray(s.post("/encode", json={"imu_windows": raw.tolist()}).json()["latent_embeddings"])
    assert _cosines(got, fp32).min() >= QUALITY_FLOORS["fp32"]


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

    def health(rel: Path, backend: str) -> requests.Response:
        # One server at a time: each holds the device while it lives, as HailoRT does.
        srv = sidecar(rel, env=env(device, backend))
        try:
            return srv.get("/healthz")
        finally:
            stop_server(srv)

    no_hef = release("no-hef", ("model.hef",))
    assert health(no_hef, "auto").json()["backend"] == "onnxruntime"
    h = health(no_hef, "hailo")
    assert h.status_code == 503 and "manifest.json does not list model.hef" in h.json()["reason"]
    # Listed, "raw" feeds the HEF (whose graph expects normalized windows) raw ones: the
    # self-check fails. Unlisted, the file is not read.
    h = health(release("all-listed", ()), "hailo")
    assert h.status_code == 503 and "self-check failed" in h.json()["reason"], h.text
    h = health(release("no-meta", ("deployment_metadata.json",)), "hailo")
    assert h.status_code == 200 and h.json()["backend"] == "hailo", h.text
