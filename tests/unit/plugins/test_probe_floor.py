"""The golden gate judges a release by the floor of the backend that serves it (one table in the
release contract): a real sidecar serving an fp32 file and an INT8 file, probed by the module."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeinfer_contract import QUALITY_FLOORS, GoldenSet
from testbed.ansible_run import run_playbook
from testbed.sidecar import make_release, rewrite_manifest, start_server, stop_server

# Between the INT8 floor and the fp32 floor: what a faithful INT8 result looks like.
TARGET_COSINE = 0.99


def nudge(embeddings: np.ndarray, cosine: float, seed: int = 3) -> np.ndarray:
    """Each embedding turned away from itself to exactly ``cosine``, norm kept."""
    rng = np.random.default_rng(seed)
    out = []
    for e in embeddings:
        u = e / np.linalg.norm(e)
        r = rng.standard_normal(e.shape)
        r -= r.dot(u) * u
        r /= np.linalg.norm(r)
        out.append(np.linalg.norm(e) * (cosine * u + np.sqrt(1 - cosine**2) * r))
    return np.asarray(out)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Path:
    """A release whose golden references sit at cosine 0.99 of what its model computes; its
    model is also listed under the INT8 file name, so the sidecar can serve either."""
    rel = make_release(
        tmp_path_factory.mktemp("floor") / "v1",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        batch=False,
        extra={"model_int8.onnx": (origin_dir / "tcn_encoder_for_edgeinfer.onnx").read_bytes()},
    )
    golden = GoldenSet.load(rel / "golden.json")
    emb = nudge(np.asarray(golden.embeddings, dtype=np.float64), TARGET_COSINE)
    GoldenSet(golden.windows, emb.tolist(), golden.model_id, golden.normalization_hash).save(rel / "golden.json")
    rewrite_manifest(rel)
    return rel


def probe_all(tmp_path: Path, url: str, golden: Path) -> dict[str, dict]:
    """One playbook, four probes of the same sidecar; each result registered, none fatal."""
    cases = {
        "by_backend": {},
        "explicit": {"min_cosine": 0.95},
        "explicit_strict": {"min_cosine": 0.995},
        "hailo_required": {"expect_backend": "hailo"},
    }
    tasks = [
        {
            "name": name,
            "edgeinfer.deploy.edgeinfer_probe": {"url": url, "golden": str(golden), "timeout": 20, **extra},
            "register": name,
            "ignore_errors": True,
        }
        for name, extra in cases.items()
    ]
    tasks.append(
        {
            "name": "out",
            "ansible.builtin.copy": {
                "content": "{{ {" + ", ".join(f"'{n}': {n}" for n in cases) + "} | to_json }}",
                "dest": str(tmp_path / "results.json"),
            },
        }
    )
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "connection": "local",
        "tasks": tasks,
        "vars": {"ansible_python_interpreter": sys.executable},
    }
    run = run_playbook([play], inventory="localhost,", tmp_path=tmp_path, timeout=120)
    assert (tmp_path / "results.json").is_file(), run.explain()
    return json.loads((tmp_path / "results.json").read_text())


@pytest.mark.parametrize(("served", "precision"), [("model.onnx", "fp32"), ("model_int8.onnx", "int8")])
def test_the_golden_floor_is_the_serving_backends(tmp_path: Path, release: Path, served: str, precision: str) -> None:
    server = start_server(tmp_path, release, env={"EDGEINFER_ONNX_FILE": served, "EDGEINFER_GOLDEN_MIN_COSINE": "0.9"})
    try:
        r = probe_all(tmp_path, server.url, release / "golden.json")
    finally:
        stop_server(server)
    by_backend = r["by_backend"]
    assert by_backend["health"]["served_file"] == served
    assert by_backend["floor"] == {"min_cosine": QUALITY_FLOORS[precision], "source": precision}
    assert by_backend["golden"]["min_cosine"] == pytest.approx(TARGET_COSINE, abs=2e-4)
    # 0.99 passes the INT8 floor (0.98) and misses the fp32 one (0.999), and the refusal says which.
    assert by_backend["passed"] is (precision == "int8"), by_backend
    if precision == "fp32":
        assert by_backend["failed"] and "(fp32 floor)" in by_backend["msg"]
    # An explicit min_cosine wins over the table, both ways.
    assert r["explicit"]["passed"] and r["explicit"]["floor"]["source"] == "min_cosine"
    assert not r["explicit_strict"]["passed"] and "(min_cosine floor)" in r["explicit_strict"]["msg"]
    # A sidecar on the CPU fails a gate that requires the Hailo, naming what serves.
    hailo = r["hailo_required"]
    assert hailo["failed"] and not hailo["passed"] and "golden" not in hailo
    assert "the sidecar serves on onnxruntime, expected hailo" in hailo["msg"]
