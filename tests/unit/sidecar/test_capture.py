"""Capture of real traffic (EDGEINFER_CAPTURE_WINDOWS, GET/DELETE /admin/capture), on a real sidecar process."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry

from edgeinfer_contract import ModelConfig
from sidecar.capture import Reservoir
from sidecar.config import ConfigError, Settings
from sidecar.metrics import CaptureMetrics
from testbed.sidecar import Server, normalize, raw_windows

TOKEN = {"Authorization": "Bearer test-admin-token"}


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def _captured(body: bytes) -> np.ndarray:
    return np.frombuffer(body, "<f4").reshape(-1, 100, 9)


def _rows(windows: np.ndarray) -> set[bytes]:
    return {w.astype("<f4").tobytes() for w in windows}


def test_capture_is_off_by_default_and_keeps_nothing(sidecar, models, origin_config: ModelConfig):
    s = sidecar(models / "current")
    window = raw_windows(origin_config, 1, seed=3)[0]
    assert s.post("/encode", json={"imu_window": window.tolist()}).status_code == 200
    for method in ("GET", "DELETE"):
        r = s.get("/admin/capture", headers=TOKEN) if method == "GET" else _delete(s)
        assert r.status_code == 404, method
        assert r.json()["error"] == "capture_off" and "EDGEINFER_CAPTURE_WINDOWS" in r.json()["detail"]
    metrics = s.get("/metrics").text
    assert _metric(metrics, "edgeinfer_capture_size") == 0
    assert _metric(metrics, "edgeinfer_capture_seen_windows_total") == 0


def _delete(s: Server) -> requests.Response:
    return requests.delete(s.url + "/admin/capture", headers=TOKEN, timeout=30)


def test_capture_needs_the_admin_token(sidecar, models, tmp_path: Path):
    s = sidecar(models / "current", env={"EDGEINFER_CAPTURE_WINDOWS": "8"})
    assert s.get("/admin/capture").status_code == 401
    assert s.get("/admin/capture", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert s.get("/admin/capture", headers=TOKEN).status_code == 200
    no_admin = sidecar(models / "current", env={"EDGEINFER_CAPTURE_WINDOWS": "8", "EDGEINFER_ADMIN_TOKEN_FILE": ""})
    r = no_admin.get("/admin/capture", headers=TOKEN)
    assert r.status_code == 403 and "EDGEINFER_ADMIN_TOKEN_FILE" in r.json()["detail"]


def test_capture_holds_exactly_the_windows_answered_in_raw_units(sidecar, models, origin_config: ModelConfig):
    """JSON, binary batch, /infer and normalized windows all come back raw; a refused window is not kept."""
    s = sidecar(models / "current", env={"EDGEINFER_CAPTURE_WINDOWS": "50"})
    raw = raw_windows(origin_config, 12, seed=5)
    for w in raw[:4]:
        assert s.post("/encode", json={"imu_window": w.tolist()}).status_code == 200
    binary = s.post(
        "/encode", data=raw[4:8].astype("<f4").tobytes(), headers={"Content-Type": "application/octet-stream"}
    )
    assert binary.status_code == 200
    for w in raw[8:10]:
        assert s.post("/infer", json={"x": w.tolist()}).status_code == 200
    normalized = normalize(origin_config, raw[10:12])
    assert s.post("/encode", json={"imu_windows": normalized.tolist(), "normalized": True}).status_code == 200
    bad = raw[0].tolist()
    bad[3][2] = "x"
    assert s.post("/encode", json={"imu_window": bad}).status_code == 422

    r = s.get("/admin/capture", headers=TOKEN)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-capture-windows"] == "12" and r.headers["x-capture-seen"] == "12"
    assert r.headers["x-channel-order"].split(",") == list(origin_config.normalization.channel_order)
    got = _captured(r.content)
    assert _rows(got[:10]) == _rows(raw[:10])  # sent raw: the very bytes
    np.testing.assert_allclose(np.sort(got[10:], axis=0), np.sort(raw[10:12], axis=0), rtol=1e-5, atol=1e-4)
    metrics = s.get("/metrics").text
    assert _metric(metrics, "edgeinfer_capture_seen_windows_total") == 12
    assert _metric(metrics, "edgeinfer_capture_kept_windows") == 12


def test_capture_stays_within_its_bound_and_delete_starts_a_new_sample(sidecar, models, origin_config: ModelConfig):
    s = sidecar(models / "current", env={"EDGEINFER_CAPTURE_WINDOWS": "16", "EDGEINFER_MAX_REQUEST_WINDOWS": "64"})
    raw = raw_windows(origin_config, 200, seed=9)
    for i in range(0, 200, 50):
        body = raw[i : i + 50].astype("<f4").tobytes()
        assert s.post("/encode", data=body, headers={"Content-Type": "application/octet-stream"}).status_code == 200
    r = s.get("/admin/capture", headers=TOKEN)
    assert len(r.content) == 16 * 3600
    assert r.headers["x-capture-seen"] == "200" and r.headers["x-capture-size"] == "16"
    assert _rows(_captured(r.content)) <= _rows(raw)
    cleared = _delete(s)
    assert cleared.status_code == 200 and cleared.json() == {"outcome": "cleared", "dropped_windows": 16, "size": 16}
    after = s.get("/admin/capture", headers=TOKEN)
    assert after.content == b"" and after.headers["x-capture-seen"] == "0"
    assert _metric(s.get("/metrics").text, "edgeinfer_capture_kept_windows") == 0


def test_reservoir_keeps_every_window_with_the_same_probability():
    """Algorithm R: over many samples of 100 from 5,000, each tenth of the stream is about a tenth of what is kept.

    Keeping the first (or the last) 100 would put everything in one tenth; the bound here is 6
    standard deviations of a fair sample (2,000 per tenth over 20,000 kept).
    """
    rng = random.Random(1)
    counts = np.zeros(10, int)
    stream = np.zeros((5000, 100, 9), np.float32)
    stream[:, 0, 0] = np.arange(5000)
    for _trial in range(200):
        reservoir = Reservoir(100, CaptureMetrics(CollectorRegistry()), rng)
        for i in range(0, 5000, 64):
            reservoir.offer(stream[i : i + 64], ("ax",) * 9)
        assert reservoir.kept == 100 and reservoir.seen == 5000
        kept = _captured(reservoir.snapshot())[:, 0, 0].astype(int)
        assert len(set(kept)) == 100  # no window twice
        counts += np.bincount(kept // 500, minlength=10)
    assert counts.sum() == 20_000
    assert np.all(np.abs(counts - 2000) < 6 * np.sqrt(2000 * 0.9)), counts


@pytest.mark.parametrize("value", ["-1", "10001", "lots"])
def test_capture_size_out_of_range_fails_naming_the_variable(value: str):
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({"EDGEINFER_CAPTURE_WINDOWS": value})
    assert exc.value.variable == "EDGEINFER_CAPTURE_WINDOWS" and "0 to 10000" in str(exc.value)


def test_capture_defaults_to_off():
    assert Settings.from_env({}).capture_windows == 0
    assert json.loads(json.dumps(Settings.from_env({"EDGEINFER_CAPTURE_WINDOWS": "10000"}).capture_windows)) == 10000
