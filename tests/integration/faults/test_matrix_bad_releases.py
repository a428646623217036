"""The fault matrix, first part: bad releases and refusals, on three loopback edges over
real SSH with the sidecar in Docker.

The cases, their faults and end states are rows 1-9 of the case table (cases.py). Each case
ends with every edge serving a model that passed its gates (v1 throughout this
module), the previous release intact, the lock released, and a record that names what
happened. One fleet serves the module (tests/integration/faults/conftest.py); the fleet faults (lost
controller, lost edge, killed sidecar, concurrent deploys) are in test_matrix_fleet_faults.py,
on a fleet of their own, so that the two parts can run side by side.

Faults aimed at one host go in an inventory of host vars (`matrix.host_vars`); the
bench's own settings are extra vars, so a key set per host is taken out of them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.faults.cases import CANARY_CAUGHT, expect
from tests.integration.faults.matrix import Matrix, assert_back_on_v1, base, craft, deploy_id, fleet_summary

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]


# -- 1. an artifact corrupted in transit on one host -------------------------------------------


def test_01_artifact_corrupted_in_transit_on_one_host(matrix: Matrix) -> None:
    bad = craft(matrix.bench, "f01-transit", corrupt_after_signing="model.onnx")
    before = matrix.snapshot()
    with matrix.host_vars({"edge-2": {"edgeinfer_release_source": bad}}):
        run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_failure_budget=1))
    did = deploy_id(run)
    case = expect(1, run.rc, fleet_summary(run), run.explain())
    record = matrix.record("edge-2", did)
    assert record["failure"]["task"].startswith("Stage"), record["failure"]
    assert case.caught_by in json.dumps(record["failure"]), record["failure"]
    assert record["rolled_back_to"] == before["edge-2"].current
    assert bad["release"] not in matrix.bench.state("edge-2")["releases"]
    assert not (matrix.root("edge-2") / "models" / "releases" / bad["release"]).exists()
    # The deployment log ticks only what this run measured: reached and checked, not staged.
    log = matrix.deployment_log("edge-2", did)
    assert "[x] SSH access confirmed" in log and "[x] Free disk checked" in log, log
    assert "[ ] Artifacts copied and verified" in log, log
    assert "Outcome: rolled_back" in log and "Production ready: No (rolled_back)" in log, log
    assert not (matrix.root("edge-2") / "staging" / bad["release"]).exists(), "the refused transfer was left"
    matrix.assert_fleet(before)


# -- 2-5: a bad model, caught on the canary; the other edges are never touched ------------------


def canary_caught(matrix: Matrix, run, before, number: int) -> dict:
    """Case ``number``'s end state: the canary (edge-1) is back on v1, its record naming what the
    case table says caught the release; edges 2 and 3 were not reached at all."""
    case = expect(number, run.rc, fleet_summary(run), run.explain())
    assert case.outcomes == CANARY_CAUGHT, case
    record = assert_back_on_v1(matrix.bench, run, case.caught_by)
    did = record["deploy_id"]
    for edge in ("edge-2", "edge-3"):
        matrix.assert_untouched(edge, before, did)
    matrix.assert_fleet(before)
    return record


def test_02_model_that_fails_to_load(matrix: Matrix) -> None:
    def garbage(d: Path) -> None:
        for name in ("model.onnx", "model_batch.onnx", "model_int8.onnx", "model_hailo.onnx"):
            if (d / name).exists():
                (d / name).write_bytes(b"\x08\x07not an ONNX graph" * 64)

    bad = craft(matrix.bench, "f02-load", garbage)
    before = matrix.snapshot()
    run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=bad))
    record = canary_caught(matrix, run, before, 2)
    assert record["failure"]["task"] == "Gates | Hot reload when the release changed, then health and golden set", (
        record["failure"]
    )


def nan_for_part_of_inputs(path: Path, threshold: float) -> None:
    """Add NaN to the embedding of every window whose first embedding value is above ``threshold``
    (input and output names unchanged)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(path)
    graph = model.graph
    out = graph.output[0].name
    raw = f"{out}_before_nan"
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == out:
                node.output[i] = raw
    graph.initializer.extend(
        [
            helper.make_tensor("nan_starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("nan_ends", TensorProto.INT64, [1], [1]),
            helper.make_tensor("nan_axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("nan_threshold", TensorProto.FLOAT, [], [threshold]),
            helper.make_tensor("nan_value", TensorProto.FLOAT, [], [float("nan")]),
            helper.make_tensor("nan_zero", TensorProto.FLOAT, [], [0.0]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Slice", [raw, "nan_starts", "nan_ends", "nan_axes"], ["nan_first"]),
            helper.make_node("Greater", ["nan_first", "nan_threshold"], ["nan_cond"]),
            helper.make_node("Where", ["nan_cond", "nan_value", "nan_zero"], ["nan_add"]),
            helper.make_node("Add", [raw, "nan_add"], [out]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)


def test_03_model_that_returns_nan_for_part_of_the_inputs_misses_the_golden_gate(matrix: Matrix) -> None:
    import numpy as np
    import onnxruntime as ort

    crafted: dict[str, float] = {}

    def nan_model(d: Path) -> None:
        golden = json.loads((d / "golden.json").read_text())
        first = sorted(e[0] for e in golden["embeddings"])
        threshold = first[len(first) // 2]  # about half of the golden windows give NaN
        for name in ("model.onnx", "model_batch.onnx"):
            nan_for_part_of_inputs(d / name, threshold)
        # The crafted batch model really answers NaN for part of the golden windows, finite for the rest.
        sess = ort.InferenceSession(str(d / "model_batch.onnx"), providers=["CPUExecutionProvider"])
        emb = np.asarray(golden["embeddings"], dtype=np.float32)
        crafted["nan_fraction"] = float(np.mean(emb[:, 0] > threshold))
        assert sess.get_inputs()[0].name == "imu_window"

    bad = craft(matrix.bench, "f03-nan", nan_model)
    assert 0.2 < crafted["nan_fraction"] < 0.8, crafted
    before = matrix.snapshot()
    run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=bad))
    # Caught by the sidecar's own golden self-check at the hot reload (a NaN window counts as
    # cosine -1), before the new model served a single request: the deploy's golden gate never ran.
    record = canary_caught(matrix, run, before, 3)
    assert record["failure"]["task"] == "Gates | Hot reload when the release changed, then health and golden set", (
        record["failure"]
    )


def test_04_model_that_misses_the_benchmark_thresholds(matrix: Matrix) -> None:
    bad = craft(matrix.bench, "f04-slow")
    before = matrix.snapshot()
    run = matrix.bench.playbook(
        "deploy.yml", base(matrix, edgeinfer_release_source=bad, edgeinfer_benchmark_p95_ms=0.001)
    )
    record = canary_caught(matrix, run, before, 4)
    assert record["failure"]["task"] == "Gates | Benchmark", record["failure"]
    # The golden gate passed: the model was right, only too slow for the thresholds.
    assert record["gates"]["golden"]["min_cosine"] >= 0.999, record["gates"]


def test_05_sidecar_that_fails_to_start_after_an_image_change(matrix: Matrix, base_image: str) -> None:
    broken = "edgeinfer/broken-sidecar:faults"
    subprocess.run(["docker", "tag", base_image, broken], check=True)
    try:
        bad = craft(matrix.bench, "f05-image")
        extra = {"edgeinfer_release_source": bad, "edgeinfer_image": broken, "edgeinfer_health_timeout": 20}
        before = matrix.snapshot()
        run = matrix.bench.playbook("deploy.yml", base(matrix, **extra))
        record = canary_caught(matrix, run, before, 5)
        assert record["image"] == broken
        env = (matrix.root("edge-1") / "compose" / ".env").read_text()
        assert f"EDGEINFER_IMAGE={matrix.bench.base_vars['edgeinfer_image']}" in env
    finally:
        subprocess.run(["docker", "image", "rm", broken], capture_output=True)


# -- 6-7: golden references the model does not meet, at the deploy gate and in the sidecar ------------


def test_06_model_whose_outputs_drifted_misses_the_golden_gate(matrix: Matrix) -> None:
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

    bad = craft(matrix.bench, "f06-golden", drifted_references)
    before = matrix.snapshot()
    run = matrix.bench.playbook(
        "deploy.yml", base(matrix, edgeinfer_release_source=bad, edgeinfer_sidecar_min_cosine="0.5")
    )
    record = canary_caught(matrix, run, before, 6)
    assert 0.5 < record["failure"]["figures"]["golden"]["min_cosine"] < 0.999


def test_07_golden_references_of_another_model_fail_the_sidecar_self_check(matrix: Matrix) -> None:
    def opposite_references(d: Path) -> None:
        golden = json.loads((d / "golden.json").read_text())
        golden["embeddings"] = [[-x for x in e] for e in golden["embeddings"]]
        (d / "golden.json").write_text(json.dumps(golden))

    bad = craft(matrix.bench, "f07-selfcheck", opposite_references)
    before = matrix.snapshot()
    run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=bad))
    record = canary_caught(matrix, run, before, 7)
    assert "self-check" in json.dumps(record["failure"]).lower() or "cosine" in json.dumps(record["failure"]).lower()


# -- 8. the edge disk is too full for the new release ----------------------------------------


def test_08_edge_disk_too_full_for_the_new_release_is_refused(matrix: Matrix) -> None:
    from tests.integration.faults.conftest import TMPFS_EDGE

    edge = TMPFS_EDGE
    root = matrix.root(edge)
    new = craft(matrix.bench, "f08-disk")
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    # What goes to the edge: the manifest's files less the GPUSRV-only roles (calibration data).
    edge_size = sum(f["size"] for f in new["files"] if f["role"] != "calibration")
    keep_free = 2 * edge_size  # below the 3 x release size the preflight asks for
    assert free > keep_free, (free, edge_size)
    filler = root / "filler.bin"
    subprocess.run(["fallocate", "-l", str(free - keep_free), str(filler)], check=True)
    try:
        before = matrix.snapshot()
        models_before = sorted(p.name for p in (root / "models" / "releases").iterdir())
        with matrix.host_vars({edge: {"edgeinfer_release_source": new}}):
            run = matrix.bench.playbook("deploy.yml", base(matrix))
        did = deploy_id(run)
        case = expect(8, run.rc, fleet_summary(run), run.explain())
        record = matrix.record(edge, did)
        assert record["outcome"] == "refused", record
        assert record["failure"]["task"] == "Preflight | Read the edge once, refuse what cannot land there", record[
            "failure"
        ]
        assert case.caught_by in record["failure"]["msg"] and "3 x" in record["failure"]["msg"], record["failure"]
        log = matrix.deployment_log(edge, did)
        assert "[ ] Free disk checked: too little" in log and "[x] Docker" in log, log
        assert "[ ] Artifacts copied and verified" in log and "Production ready: No (refused)" in log, log
        # Nothing changed there: no staging, no release, state.json byte for byte, v1 serving.
        assert (root / "state.json").read_bytes() == before[edge].state
        assert sorted(p.name for p in (root / "models" / "releases").iterdir()) == models_before
        assert not (root / "staging" / new["release"]).exists()
        assert not (root / "deadman" / f"{did}.json").exists()
    finally:
        filler.unlink(missing_ok=True)
    matrix.assert_fleet(before)


# -- 9. the failure budget is exceeded in the canary batch ----------------------------------------


def test_09_failure_budget_exceeded_in_the_canary_batch_leaves_later_batches_untouched(matrix: Matrix) -> None:
    """The canary alone misses its thresholds (a host var); edges 2 and 3 would have passed,
    but the budget (0) is spent in the first batch and they are never touched."""
    new = craft(matrix.bench, "f09-canary")
    before = matrix.snapshot()
    extra = base(matrix, edgeinfer_release_source=new)
    p95 = extra.pop("edgeinfer_benchmark_p95_ms")  # an extra var would beat the host var
    with matrix.host_vars({"edge-1": {"edgeinfer_benchmark_p95_ms": 0.001}}, group={"edgeinfer_benchmark_p95_ms": p95}):
        run = matrix.bench.playbook("deploy.yml", extra)
    record = canary_caught(matrix, run, before, 9)
    assert record["failure"]["task"] == "Gates | Benchmark"
    # A miss is measured again before the gate fails (edgeinfer_benchmark_retries: 1).
    assert record["failure"]["runs"] == 2, record["failure"]
