"""Every failure of a deploy ends with the edge serving the verified previous model, the
previous release intact, the lock released, and a record that names the reason.

One loopback edge serves v1 for the whole module; each test sends it a bad release."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgeinfer_contract import Manifest, sign

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]


def craft(bench, version: str, mutate=None, corrupt_after_signing: str | None = None) -> dict[str, Any]:
    """A release made from v1's artifacts under another version, changed by ``mutate``
    before its manifest is written and signed (or corrupted after, as in transit)."""
    src = bench.artifacts / "v1"
    dst = bench.tmp / "crafted" / version
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("manifest.json*"))
    roles = {f.name: f.role for f in Manifest.load(src / "manifest.json").files}
    if mutate:
        mutate(dst)
    manifest = Manifest.build(dst, roles, version)
    blob = manifest.to_bytes()
    (dst / "manifest.json").write_bytes(blob)
    key = Path(bench.base_vars["edgeinfer_build_signing_key"])
    (dst / "manifest.json.sig").write_bytes(sign(blob, key.read_bytes()))
    if corrupt_after_signing:
        p = dst / corrupt_after_signing
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x01
        p.write_bytes(bytes(data))
    return {
        "dir": str(dst),
        "model_version": version,
        "digest": manifest.digest,
        "release": f"{version}-{manifest.digest[:8]}",
        "untrained": True,
        "source": str(dst),
        "files": [f.to_dict() for f in manifest.files],
        "size": sum(f.size for f in manifest.files),
        "public_key": Path(f"{key}.pub").read_text(),
    }


def assert_back_on_v1(bench, run, phrase: str) -> dict[str, Any]:
    assert run.rc != 0, "the bad deploy must fail the host"
    v1 = bench.release_of("v1")
    status, health = bench.health()
    assert status == 200, health
    assert (health["model_version"], health["model_sha256"]) == ("v1", v1["digest"])
    root = Path(bench.fleet.edges[0].root)
    assert (root / "models" / "current").resolve().name == v1["release"]
    intact = Manifest.load(root / "models" / "releases" / v1["release"] / "manifest.json")
    files = [f.name for f in intact.files if f.role != "calibration"]
    assert intact.verify_files(root / "models" / "releases" / v1["release"], files) == []
    assert not (root / "deploy.lock").exists()
    record = bench.last_record()
    assert record["outcome"] == "rolled_back", record
    assert record["rolled_back_to"] == v1["release"]
    reason = json.dumps(record["failure"])
    assert phrase in reason, reason
    # A failed release never becomes the rollback target.
    assert bench.state()["previous"] != record["release"]
    return record


def test_corrupted_artifact_is_refused_before_the_switch(serving_v1) -> None:
    bad = craft(serving_v1, "bad-transit", corrupt_after_signing="model.onnx")
    run = serving_v1.playbook("deploy.yml", dict(serving_v1.vars("v1", 1), edgeinfer_release_source=bad))
    record = assert_back_on_v1(serving_v1, run, "model.onnx: sha256")
    assert record["failure"]["task"].startswith("Stage")
    assert bad["release"] not in serving_v1.state()["releases"]


def test_model_that_does_not_load_keeps_the_old_one_serving(serving_v1) -> None:
    def garbage(d: Path) -> None:
        for name in ("model.onnx", "model_batch.onnx", "model_int8.onnx"):
            if (d / name).exists():
                (d / name).write_bytes(b"this is not an ONNX graph" * 50)

    bad = craft(serving_v1, "bad-load", garbage)
    run = serving_v1.playbook("deploy.yml", dict(serving_v1.vars("v1", 1), edgeinfer_release_source=bad))
    record = assert_back_on_v1(serving_v1, run, "422")
    assert "reload" in record["failure"]["task"].lower()


def test_model_that_misses_the_golden_gate_is_rolled_back(serving_v1) -> None:
    """The sidecar's own self-check is set loose (0.5) so that the model loads and reports
    healthy; the deploy's golden gate (0.999) must still catch outputs that drifted."""
    import random

    rng = random.Random(7)

    def drifted_references(d: Path) -> None:
        golden = json.loads((d / "golden.json").read_text())
        out = []
        for e in golden["embeddings"]:
            n = sum(x * x for x in e) ** 0.5
            noise = [rng.gauss(0, 1) for _ in e]
            m = sum(x * x for x in noise) ** 0.5
            out.append([x + 0.5 * n * y / m for x, y in zip(e, noise, strict=True)])  # cosine about 0.9
        golden["embeddings"] = out
        (d / "golden.json").write_text(json.dumps(golden))

    bad = craft(serving_v1, "bad-golden", drifted_references)
    extra = {"edgeinfer_release_source": bad, "edgeinfer_sidecar_min_cosine": "0.5"}
    run = serving_v1.playbook("deploy.yml", dict(serving_v1.vars("v1", 1), **extra))
    record = assert_back_on_v1(serving_v1, run, "golden gate missed")
    assert 0.5 < record["failure"]["figures"]["golden"]["min_cosine"] < 0.999


def test_golden_references_of_another_model_fail_the_sidecar_self_check(serving_v1) -> None:
    def opposite_references(d: Path) -> None:
        golden = json.loads((d / "golden.json").read_text())
        golden["embeddings"] = [[-x for x in e] for e in golden["embeddings"]]
        (d / "golden.json").write_text(json.dumps(golden))

    bad = craft(serving_v1, "bad-selfcheck", opposite_references)
    run = serving_v1.playbook("deploy.yml", dict(serving_v1.vars("v1", 1), edgeinfer_release_source=bad))
    record = assert_back_on_v1(serving_v1, run, "422")
    assert "self-check" in json.dumps(record["failure"]).lower() or "cosine" in json.dumps(record["failure"]).lower()


def test_thresholds_the_model_cannot_meet_roll_back(serving_v1) -> None:
    bad = craft(serving_v1, "too-slow")
    extra = {"edgeinfer_release_source": bad, "edgeinfer_benchmark_p95_ms": 0.001}
    run = serving_v1.playbook("deploy.yml", dict(serving_v1.vars("v1", 1), **extra))
    record = assert_back_on_v1(serving_v1, run, "latency")
    assert record["failure"]["task"] == "Gates | Benchmark"


def test_container_that_does_not_start_is_replaced_by_the_previous_image(serving_v1, base_image: str) -> None:
    broken = "edgeinfer/broken-sidecar:test"
    subprocess.run(["docker", "tag", base_image, broken], check=True)
    try:
        bad = craft(serving_v1, "bad-image")
        extra = {"edgeinfer_release_source": bad, "edgeinfer_image": broken, "edgeinfer_health_timeout": 20}
        run = serving_v1.playbook("deploy.yml", dict(serving_v1.vars("v1", 1), **extra))
        record = assert_back_on_v1(serving_v1, run, "Start or recreate")
        assert record["image"] == broken
        env = (Path(serving_v1.fleet.edges[0].root) / "compose" / ".env").read_text()
        assert f"EDGEINFER_IMAGE={serving_v1.base_vars['edgeinfer_image']}" in env
    finally:
        subprocess.run(["docker", "image", "rm", broken], capture_output=True)
