"""Real traffic captured on one sidecar, fetched by `model_tools capture`, replayed on another.

Real parts throughout: two sidecar processes serving the origin ONNX, model_tools and
edgeinfer-validate as their commands, the edgeinfer_benchmark module through ansible, ONNX
Runtime for the golden set. The second sidecar's own capture is the witness of what the
replay sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from edgeinfer_contract import GoldenSet, ModelConfig
from testbed.sidecar import Server, production_release, raw_windows, start_server, stop_server

from .test_module import adhoc

REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-admin-token"  # what tests.unit.sidecar.conftest.start_server writes into the token file


def _windows(body: bytes) -> np.ndarray:
    return np.frombuffer(body, "<f4").reshape(-1, 100, 9)


def _rows(windows: np.ndarray) -> set[bytes]:
    return {w.astype("<f4").tobytes() for w in windows}


def _capture(s: Server) -> requests.Response:
    r = requests.get(s.url + "/admin/capture", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r


def _clear(s: Server) -> None:
    r = requests.delete(s.url + "/admin/capture", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200, r.text


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EDGEINFER_ADMIN_TOKEN"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def release(tmp_path: Path, origin_dir: Path) -> Path:
    return production_release(tmp_path / "models", origin_dir)


@pytest.fixture
def edges(tmp_path: Path, release: Path) -> Iterator[tuple[Server, Server]]:
    """The edge whose traffic is captured, and the one the capture is replayed on (both capturing)."""
    current = release.parent.parent / "current"
    first = start_server(tmp_path, current, {"EDGEINFER_CAPTURE_WINDOWS": "64"})
    second = start_server(tmp_path, current, {"EDGEINFER_CAPTURE_WINDOWS": "10000"})
    yield first, second
    stop_server(first)
    stop_server(second)


def test_a_capture_becomes_a_replay_and_a_golden_set_and_is_replayed_exactly(
    edges: tuple[Server, Server], release: Path, tmp_path: Path, origin_dir: Path
):
    first, second = edges
    cfg = ModelConfig.load(origin_dir / "model_config.json")
    traffic = raw_windows(cfg, 12, seed=17)
    for w in traffic:
        assert requests.post(first.url + "/encode", json={"imu_window": w.tolist()}, timeout=30).status_code == 200

    replay, golden = tmp_path / "traffic.f32", tmp_path / "golden.json"
    token_file = tmp_path / "admin_token"
    r = _run(
        "-m", "model_tools", "capture", "--url", first.url, "--token-file", str(token_file),
        "--replay", str(replay), "--golden", str(golden), "--release", str(release), "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert TOKEN not in r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["captured_windows"] == 12 and out["golden_windows"] == 12
    assert replay.read_bytes() == _capture(first).content
    assert _rows(_windows(replay.read_bytes())) == _rows(traffic)

    # The golden set is in the contract's format, and its references are what the sidecar answers.
    gs = GoldenSet.load(golden)
    assert gs.normalization_hash == GoldenSet.load(release / "golden.json").normalization_hash
    assert gs.meta["generator"] == "capture" and gs.meta["captured_from"] == first.url
    answers = requests.post(first.url + "/encode", json={"imu_windows": gs.windows}, timeout=30).json()
    got, want = np.asarray(answers["latent_embeddings"]), np.asarray(gs.embeddings)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.9999, cos

    # edgeinfer-validate sends the captured windows and nothing else: the second edge saw exactly them.
    report_path = tmp_path / "report.json"
    v = _run(
        "-m", "edgeinfer_validate", "--port", second.url.rsplit(":", 1)[1], "--replay", str(replay), "--binary",
        "--duration", "1", "--warmup", "0", "--concurrency", "2", "--rate", "30", "--skip-memory",
        "--min-rps", "1", "--p95-ms", "5000", "--no-progress", "--json", str(report_path),
    )  # fmt: skip
    assert v.returncode == 0, v.stdout + v.stderr
    report = json.loads(report_path.read_text())
    assert report["load_windows"] == {"source": "replay", "windows": 12}
    seen = _capture(second)
    answered = sum(p["requests"] - p["failed"] for p in report["phases"].values()) + 1  # + the /encode probe
    assert int(seen.headers["x-capture-seen"]) == answered
    assert _rows(_windows(seen.content)) == _rows(traffic)

    # The benchmark gate (edgeinfer_benchmark) likewise.
    _clear(second)
    rc, res = adhoc(second, f"replay={replay} skip_memory=true concurrency=2 rate=20 fail_on_threshold=false")
    assert rc == 0, res.get("msg")
    assert res["load_windows"] == {"source": "replay", "windows": 12}
    assert _rows(_windows(_capture(second).content)) == _rows(traffic)


def test_capture_refusals_name_the_cause_and_never_show_the_token(
    tmp_path: Path, release: Path, edges: tuple[Server, Server]
):
    first, _ = edges
    out = tmp_path / "r.f32"
    no_token = _run("-m", "model_tools", "capture", "--url", first.url, "--replay", str(out))
    assert no_token.returncode == 2 and "--token-file" in no_token.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-123\n")
    refused = _run("-m", "model_tools", "capture", "--url", first.url, "--token-file", str(wrong), "--replay", str(out))
    assert refused.returncode == 10 and "403" in refused.stderr
    assert "not-the-token-123" not in refused.stdout + refused.stderr
    token_file = tmp_path / "admin_token"
    empty = _run(
        "-m", "model_tools", "capture", "--url", first.url, "--token-file", str(token_file), "--replay", str(out)
    )
    assert empty.returncode == 10 and "no windows yet" in empty.stderr
    assert not out.exists()
    off = start_server(tmp_path, release.parent.parent / "current")
    try:
        r = _run(
            "-m", "model_tools", "capture", "--url", off.url, "--token-file", str(token_file), "--replay", str(out)
        )
        assert r.returncode == 10 and "capture_off" in r.stderr
    finally:
        stop_server(off)


def test_a_replay_file_that_is_not_whole_windows_is_a_usage_error(tmp_path: Path):
    bad = tmp_path / "bad.f32"
    bad.write_bytes(b"\0" * 5000)
    r = _run("-m", "edgeinfer_validate", "--replay", str(bad), "--quick")
    assert r.returncode == 2 and str(bad) in r.stderr and "3600" in r.stderr
