"""A release written by `python -m model_tools adopt` is served as-is and matches ORT on it; motif
prototypes that `model_tools manifest` lists give /infer its motif_scores."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from edgeinfer_contract import Manifest, ModelConfig
from testbed.sidecar import REPO, normalize, ort_embed, raw_windows


@pytest.mark.skipif(
    importlib.util.find_spec("model_tools.cli") is None, reason="model_tools is not installed in this checkout"
)
def test_model_tools_adopt_release_is_served(sidecar, tmp_path, origin_dir):
    out = tmp_path / "release"
    cmd = [sys.executable, "-m", "model_tools", "adopt", "--onnx", str(origin_dir / "tcn_encoder_for_edgeinfer.onnx"),
           "--config", str(origin_dir / "model_config.json"), "--out", str(out), "--model-version", "v72pct-adopted", "--json"]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    s = sidecar(out)
    h = s.get("/healthz")
    assert h.status_code == 200, h.text
    cfg = ModelConfig.load(out / "model_config.json")
    assert h.json()["model_version"] == "v72pct-adopted"
    assert h.json()["embedding_stamp"]["stamp"] == cfg.stamp["stamp"]
    raw = raw_windows(cfg, 3, seed=51)
    ref = ort_embed(out / "model.onnx", normalize(cfg, raw))
    body = s.post("/encode", json={"imu_windows": raw.tolist()}).json()
    np.testing.assert_allclose(np.asarray(body["latent_embeddings"], np.float32), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(
    importlib.util.find_spec("model_tools.cli") is None, reason="model_tools is not installed in this checkout"
)
def test_motif_prototypes_listed_by_model_tools_give_motif_scores(sidecar, tmp_path, origin_dir):
    out = tmp_path / "release"
    adopt = [sys.executable, "-m", "model_tools", "adopt", "--onnx", str(origin_dir / "tcn_encoder_for_edgeinfer.onnx"),
             "--config", str(origin_dir / "model_config.json"), "--out", str(out), "--model-version", "v72pct-motifs", "--json"]  # fmt: skip
    r = subprocess.run(adopt, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    protos = np.random.default_rng(8).standard_normal((5, 64)).astype(np.float32)
    (out / "motif_prototypes.json").write_text(json.dumps({"prototypes": protos.tolist()}))
    manifest = [sys.executable, "-m", "model_tools", "manifest", "--release", str(out), "--model-version", "v72pct-motifs", "--json"]  # fmt: skip
    r = subprocess.run(manifest, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = {f.name: f.role for f in Manifest.load(out / "manifest.json").files}
    assert listed["motif_prototypes.json"] == "motif_prototypes"
    assert json.loads(r.stdout)["unlisted"] == []

    s = sidecar(out)
    cfg = ModelConfig.load(out / "model_config.json")
    raw = raw_windows(cfg, 1, seed=9)
    emb = ort_embed(out / "model.onnx", normalize(cfg, raw))[0]
    body = s.post("/infer", json={"x": raw[0].tolist()}).json()
    expected = (protos / np.linalg.norm(protos, axis=1, keepdims=True)) @ (emb / np.linalg.norm(emb))
    np.testing.assert_allclose(body["motif_scores"], expected, rtol=1e-4, atol=1e-5)
