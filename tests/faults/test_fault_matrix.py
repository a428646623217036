"""The fault matrix on three loopback edges over real SSH, with the sidecar in Docker.

Each case ends with every edge serving a model that passed its gates, the previous
release intact, the lock released, and a record that names what happened. One fleet
serves the whole module (v1 at first); `matrix.serving` follows what each edge must
serve as the cases move it. The cases run in file order and build on that state.

Faults aimed at one host go in an inventory of host vars (`matrix.host_vars`); the
bench's own settings are extra vars, so a key set per host is taken out of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.ansible_run import REPO
from tests.faults.matrix import Matrix, assert_back_on_v1, craft, cut, deploy_id, fleet_summary, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]

NOT_LANDED = ("rolled_back", "failed", "rollback_failed", "refused")


def base(m: Matrix, version: str = "v1", seed: int = 1, **extra):
    return m.bench.vars(version, seed, **extra)


def in_background(fn, *args, **kwargs):
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


# -- 1. an artifact corrupted in transit on one host -------------------------------------------


def test_01_artifact_corrupted_in_transit_on_one_host(matrix: Matrix) -> None:
    bad = craft(matrix.bench, "f01-transit", corrupt_after_signing="model.onnx")
    before = matrix.snapshot()
    with matrix.host_vars({"edge-2": {"edgeinfer_release_source": bad}}):
        run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_failure_budget=1))
    did = deploy_id(run)
    assert run.rc != 0, "an edge that did not land the release fails the run"
    summary = fleet_summary(run)
    assert summary["edge-2"]["outcome"] == "rolled_back", summary
    assert summary["edge-1"]["outcome"] == summary["edge-3"]["outcome"] == "unchanged", summary
    record = matrix.record("edge-2", did)
    assert record["failure"]["task"].startswith("Stage"), record["failure"]
    assert "model.onnx: sha256" in json.dumps(record["failure"]), record["failure"]
    assert record["rolled_back_to"] == before["edge-2"].current
    assert bad["release"] not in matrix.bench.state("edge-2")["releases"]
    assert not (matrix.root("edge-2") / "models" / "releases" / bad["release"]).exists()
    matrix.assert_fleet(before)


# -- 2-5: a bad model, caught on the canary; the other edges are never touched ------------------


def canary_caught(matrix: Matrix, run, before, phrase: str) -> dict:
    """The canary (edge-1) is back on v1; edges 2 and 3 were not reached at all."""
    record = assert_back_on_v1(matrix.bench, run, phrase)
    did = record["deploy_id"]
    summary = fleet_summary(run)
    assert summary["edge-1"]["outcome"] == "rolled_back", summary
    for edge in ("edge-2", "edge-3"):
        assert summary[edge]["outcome"] == "not_reached", summary
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
    record = canary_caught(matrix, run, before, "422")
    assert record["failure"]["task"] == "Apply | Hot reload", record["failure"]


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
    record = canary_caught(matrix, run, before, "self-check failed: min cosine -1.000000")
    assert record["failure"]["task"] == "Apply | Hot reload", record["failure"]


def test_04_model_that_misses_the_benchmark_thresholds(matrix: Matrix) -> None:
    bad = craft(matrix.bench, "f04-slow")
    before = matrix.snapshot()
    run = matrix.bench.playbook(
        "deploy.yml", base(matrix, edgeinfer_release_source=bad, edgeinfer_benchmark_p95_ms=0.001)
    )
    record = canary_caught(matrix, run, before, "latency")
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
        record = canary_caught(matrix, run, before, "Start or recreate")
        assert record["image"] == broken
        env = (matrix.root("edge-1") / "compose" / ".env").read_text()
        assert f"EDGEINFER_IMAGE={matrix.bench.base_vars['edgeinfer_image']}" in env
    finally:
        subprocess.run(["docker", "image", "rm", broken], capture_output=True)


# -- 13-14: golden references the model does not meet, at the deploy gate and in the sidecar ----------


def test_13_model_whose_outputs_drifted_misses_the_golden_gate(matrix: Matrix) -> None:
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

    bad = craft(matrix.bench, "f13-golden", drifted_references)
    before = matrix.snapshot()
    run = matrix.bench.playbook(
        "deploy.yml", base(matrix, edgeinfer_release_source=bad, edgeinfer_sidecar_min_cosine="0.5")
    )
    record = canary_caught(matrix, run, before, "golden gate missed")
    assert 0.5 < record["failure"]["figures"]["golden"]["min_cosine"] < 0.999


def test_14_golden_references_of_another_model_fail_the_sidecar_self_check(matrix: Matrix) -> None:
    def opposite_references(d: Path) -> None:
        golden = json.loads((d / "golden.json").read_text())
        golden["embeddings"] = [[-x for x in e] for e in golden["embeddings"]]
        (d / "golden.json").write_text(json.dumps(golden))

    bad = craft(matrix.bench, "f14-selfcheck", opposite_references)
    before = matrix.snapshot()
    run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=bad))
    record = canary_caught(matrix, run, before, "422")
    assert "self-check" in json.dumps(record["failure"]).lower() or "cosine" in json.dumps(record["failure"]).lower()


# -- 10. the edge disk is too full for the new release ---------------------------------------


def test_10_edge_disk_too_full_for_the_new_release_is_refused(matrix: Matrix) -> None:
    from tests.faults.conftest import TMPFS_EDGE

    edge = TMPFS_EDGE
    root = matrix.root(edge)
    new = craft(matrix.bench, "f10-disk")
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
        assert run.rc != 0
        summary = fleet_summary(run)
        assert summary[edge]["outcome"] == "refused", summary
        record = matrix.record(edge, did)
        assert record["outcome"] == "refused", record
        assert record["failure"]["task"] == "Preflight | Enough disk for the release", record["failure"]
        assert "MiB free" in record["failure"]["msg"] and "3 x" in record["failure"]["msg"], record["failure"]
        # Nothing changed there: no staging, no release, state.json byte for byte, v1 serving.
        assert (root / "state.json").read_bytes() == before[edge].state
        assert sorted(p.name for p in (root / "models" / "releases").iterdir()) == models_before
        assert not (root / "staging" / new["release"]).exists()
        assert not (root / "deadman" / f"{did}.json").exists()
    finally:
        filler.unlink(missing_ok=True)
    matrix.assert_fleet(before)


# -- 12. the failure budget is exceeded in the canary batch ---------------------------------------


def test_12_failure_budget_exceeded_in_the_canary_batch_leaves_later_batches_untouched(matrix: Matrix) -> None:
    """The canary alone misses its thresholds (a host var); edges 2 and 3 would have passed,
    but the budget (0) is spent in the first batch and they are never touched."""
    new = craft(matrix.bench, "f12-canary")
    before = matrix.snapshot()
    extra = base(matrix, edgeinfer_release_source=new)
    p95 = extra.pop("edgeinfer_benchmark_p95_ms")  # an extra var would beat the host var
    with matrix.host_vars({"edge-1": {"edgeinfer_benchmark_p95_ms": 0.001}}, group={"edgeinfer_benchmark_p95_ms": p95}):
        run = matrix.bench.playbook("deploy.yml", extra)
    record = canary_caught(matrix, run, before, "latency")
    assert record["failure"]["task"] == "Gates | Benchmark"


# -- 6. the controller is killed right after the switch on one host ---------------------------------


def test_06_controller_killed_after_the_switch_is_reverted_by_the_dead_man(matrix: Matrix) -> None:
    new = craft(matrix.bench, "f06-deadman")
    edge, root, timeout = "edge-1", matrix.root("edge-1"), 20
    was = matrix.serving[edge]
    before = matrix.snapshot()
    proc = matrix.bench.start(
        "deploy.yml", base(matrix, edgeinfer_release_source=new, edgeinfer_deadman_timeout=timeout)
    )
    try:
        wait_for(lambda: matrix.current(edge) == new["release"], 240, "the switch on the canary")
        os.killpg(proc.pid, signal.SIGKILL)  # the controller vanishes right after the switch
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    killed_at = time.monotonic()
    (state_file,) = wait_for(
        lambda: [
            p for p in (root / "deadman").glob("*.json") if json.loads(p.read_text())["release"] == new["release"]
        ],
        5,
        "the watcher of this deploy",
    )
    final = wait_for(
        lambda: (s := json.loads(state_file.read_text()))["state"] != "armed" and s, timeout + 120, "the revert"
    )
    did = final["deploy_id"]
    assert (final["state"], final["outcome"]) == ("revert", "reverted"), final
    assert final["revert_to"] == was["release"], final
    assert time.monotonic() - killed_at < timeout + 120
    record = matrix.deadman_record(edge, did)
    assert record["outcome"] == "reverted" and record["reverted_to"] == was["release"], record
    assert "did not confirm" in record["reason"], record
    assert record["health"]["ok"] is True, record
    # No controller record: the controller died; the edge's own record names what happened.
    assert not (matrix.bench.records / edge / f"{did}.json").exists()
    assert matrix.bench.state(edge)["previous"] != new["release"]
    for other in ("edge-2", "edge-3"):
        matrix.assert_untouched(other, before, did)
    matrix.assert_fleet(before)


# -- 11. the sidecar is killed during a reload ------------------------------------------------------


def test_11_sidecar_killed_during_the_reload(matrix: Matrix) -> None:
    new = craft(matrix.bench, "f11-kill")
    edge = "edge-1"
    container = f"{matrix.bench.fleet.edge(edge).compose_project}-sidecar"
    was = matrix.serving[edge]
    reloads = matrix.sidecar_metric(edge, "edgeinfer_reloads_total")
    before = matrix.snapshot()
    run_f = in_background(
        matrix.bench.playbook,
        "deploy.yml",
        base(matrix, edgeinfer_release_source=new, edgeinfer_health_timeout=30),
    )
    wait_for(lambda: matrix.current(edge) == new["release"] or run_f.done(), 240, "the switch")
    # The hot reload has begun once the sidecar counts it: kill the container then.
    wait_for(lambda: matrix.sidecar_metric(edge, "edgeinfer_reloads_total") > reloads or run_f.done(), 60, "reload")
    killed = subprocess.run(["docker", "kill", container], capture_output=True, text=True)
    assert killed.returncode == 0, killed.stderr
    run = run_f.result(timeout=600)
    did = deploy_id(run)
    record = matrix.record(edge, did)
    summary = fleet_summary(run)
    print(f"sidecar killed during the reload: {record['outcome']}, failure {record['failure']}")
    if record["outcome"] == "deployed":
        # The deploy recovered (the container came back with the new release and passed its gates).
        matrix.landed(edge, record, new)
        assert run.rc == 0, run.explain()
    else:
        # The reload died with the container: rolled back to the release served before, gates re-run.
        assert record["outcome"] == "rolled_back", record
        assert record["rolled_back_to"] == was["release"], record
        assert summary[edge]["outcome"] == "rolled_back"
        assert record["after"]["release"] == was["release"]
        for other in ("edge-2", "edge-3"):
            matrix.assert_untouched(other, before, did)
    assert matrix.current(edge) == matrix.serving[edge]["release"]
    matrix.assert_fleet(before)


# -- 7. one host is unreachable from the start ---------------------------------------------------------


def test_07_one_host_unreachable_from_the_start(matrix: Matrix) -> None:
    new = craft(matrix.bench, "f07-good")
    down = "edge-1"  # the canary itself: the rollout goes on with the edges it can reach
    before = matrix.snapshot()
    cut(matrix.bench.fleet, down)
    try:
        run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=new))
    finally:
        matrix.bench.fleet.start(down)
    did = deploy_id(run)
    assert run.rc != 0, "a fleet with an unreachable edge did not land everywhere"
    summary = fleet_summary(run)
    assert summary[down]["outcome"] == "unreachable", summary
    assert summary[down]["reason"], summary
    for edge in ("edge-2", "edge-3"):
        assert summary[edge]["outcome"] == "deployed", summary
        matrix.landed(edge, matrix.record(edge, did), new)
    matrix.assert_untouched(down, before, did)
    matrix.assert_fleet(before)


# -- 8. SSH to one host drops in the middle of the transfer -------------------------------------------


@pytest.fixture(scope="module")
def dropped_mid_transfer(matrix: Matrix):
    """edge-2's SSH drops once its staging directory appears; the failure budget (1) lets
    edge-3 go on. Its dead-man (20 s there) releases the lock by itself."""
    new = craft(matrix.bench, "f08-drop")
    edge, timeout = "edge-2", 20
    staging = matrix.root(edge) / "staging" / new["release"]
    before = matrix.snapshot()
    with matrix.host_vars({edge: {"edgeinfer_deadman_timeout": timeout}}):
        run_f = in_background(
            matrix.bench.playbook, "deploy.yml", base(matrix, edgeinfer_release_source=new, edgeinfer_failure_budget=1)
        )
        try:
            wait_for(lambda: staging.exists() or run_f.done(), 300, "the transfer to edge-2")
            assert not run_f.done(), run_f.result().explain()
            cut(matrix.bench.fleet, edge)
            run = run_f.result(timeout=600)
        finally:
            if not matrix.bench.fleet.edge(edge).pid:
                # the edge's own dead-man decides before sshd comes back
                wait_for(lambda: list((matrix.root(edge) / "records").glob("*.deadman.json")), timeout + 60, "dead-man")
                matrix.bench.fleet.start(edge)
    return {"run": run, "new": new, "edge": edge, "before": before, "did": deploy_id(run)}


def test_08_ssh_drops_mid_transfer_end_state(matrix: Matrix, dropped_mid_transfer) -> None:
    d = dropped_mid_transfer
    run, new, edge, did = d["run"], d["new"], d["edge"], d["did"]
    print(f"plays run: {[p['play']['name'] for p in run.data.get('plays', [])]}; stats: {run.stats}")
    assert run.rc != 0
    assert run.stats[edge]["unreachable"] >= 1, run.stats
    matrix.landed("edge-1", matrix.record("edge-1", did), new)
    # The edge's own dead-man found that the switch never happened, and freed the lock.
    record = matrix.deadman_record(edge, did)
    assert record["outcome"] == "not_switched", record
    assert "did not confirm within 20 s" in record["reason"], record
    assert matrix.current(edge) == d["before"][edge].current
    assert new["release"] not in matrix.bench.state(edge)["releases"]
    assert not (matrix.root(edge) / "models" / "releases" / new["release"]).exists()
    # The budget (1) lets the rollout go on past the lost edge.
    matrix.landed("edge-3", matrix.record("edge-3", did), new)
    matrix.assert_fleet(d["before"])


def test_08_ssh_drop_within_the_budget_goes_on_and_reports_the_lost_edge(matrix: Matrix, dropped_mid_transfer) -> None:
    """edge-2 is alone in its serial batch ([1, 25 %, rest] of 3): losing it must neither end the
    run (the rollout strategy) nor pass unreported (the summary and its record name it lost)."""
    d = dropped_mid_transfer
    assert (matrix.bench.records / "edge-3" / f"{d['did']}.json").is_file(), "edge-3 was not reached"
    summary = fleet_summary(d["run"])
    assert summary["edge-3"]["outcome"] == "deployed", summary
    lost = summary[d["edge"]]
    assert lost["outcome"] == "lost", summary
    assert lost["reason"].startswith("lost at ") and "dead-man" in lost["reason"], lost
    fleet_record = json.loads((matrix.bench.records / "fleet" / f"{d['did']}.json").read_text())
    assert fleet_record["deploy_id"] == d["did"]
    assert fleet_record["edges"] == summary, (fleet_record, summary)


# -- 9. two deploys at once to the same host ---------------------------------------------------------


def test_09_two_deploys_at_once_the_second_is_refused(matrix: Matrix) -> None:
    a_release = craft(matrix.bench, "f09-a")
    edge = "edge-1"
    lock = matrix.root(edge) / "deploy.lock"
    before = matrix.snapshot()
    a_vars = base(matrix, edgeinfer_release_source=a_release)
    a_vars.pop("edgeinfer_benchmark_duration")  # set per host below: A holds edge-1's lock a while
    with matrix.host_vars({edge: {"edgeinfer_benchmark_duration": 15}}, group={"edgeinfer_benchmark_duration": 2}):
        a_f = in_background(matrix.bench.playbook, "deploy.yml", a_vars)
        held = wait_for(lambda: lock.exists() and json.loads(lock.read_text()), 240, "deploy A's lock on edge-1")
        b_vars = base(matrix, edgeinfer_lock_holder="operator-b@faults")
        b = matrix.bench.playbook("deploy.yml", b_vars)
        a = a_f.result(timeout=600)
    assert a.rc == 0, a.explain()
    a_id, b_id = deploy_id(a), deploy_id(b)
    assert held["deploy_id"] == a_id
    assert b.rc != 0
    refused = matrix.record(edge, b_id)
    assert refused["outcome"] == "refused", refused
    assert refused["failure"]["task"] == "Lock | Take the deploy lock", refused["failure"]
    assert held["holder"] in refused["failure"]["msg"] and a_id in refused["failure"]["msg"], refused["failure"]
    assert refused["deployed_by"] == "operator-b@faults"
    b_summary = fleet_summary(b)
    assert b_summary[edge]["outcome"] == "refused"
    assert b_summary["edge-2"]["outcome"] == b_summary["edge-3"]["outcome"] == "not_reached", b_summary
    for other in ("edge-2", "edge-3"):
        assert not (matrix.bench.records / other / f"{b_id}.json").exists()
    for e in matrix.edges:
        matrix.landed(e, matrix.record(e, a_id), a_release)
    matrix.assert_fleet(before)


# -- a deploy to all three that succeeds, twice; then v1 and a rollback through ansible-runner ---------------


def edge_files(matrix: Matrix, edge: str) -> dict[str, bytes]:
    root = matrix.root(edge)
    out = {"state.json": (root / "state.json").read_bytes(), "compose/.env": (root / "compose" / ".env").read_bytes()}
    out["releases"] = "\n".join(sorted(p.name for p in (root / "models" / "releases").iterdir())).encode()
    out["current"] = str(matrix.current(edge)).encode()
    return out


def test_deploy_to_all_three_succeeds_and_a_second_run_changes_nothing(matrix: Matrix) -> None:
    before = matrix.snapshot()
    first = matrix.bench.deploy("v2", seed=2)
    assert first.rc == 0, first.explain()
    v2 = matrix.bench.release_of("v2")
    did = deploy_id(first)
    assert {e: s["outcome"] for e, s in fleet_summary(first).items()} == dict.fromkeys(matrix.edges, "deployed")
    for edge in matrix.edges:
        matrix.landed(edge, matrix.record(edge, did), v2)
        # The controller confirmed in time: the edge's dead-man stands down, and the record says so.
        assert json.loads((matrix.root(edge) / "deadman" / f"{did}.json").read_text())["state"] == "confirmed"
        assert matrix.record(edge, did)["deadman"]["state"] == "confirmed"
    matrix.assert_fleet(before)

    files = {e: edge_files(matrix, e) for e in matrix.edges}
    again = matrix.bench.deploy("v2", seed=2)
    assert again.rc == 0, again.explain()
    for edge in matrix.edges:
        assert again.stats[edge]["changed"] == 0, (edge, again.stats)
        assert matrix.record(edge, deploy_id(again))["outcome"] == "unchanged"
        assert edge_files(matrix, edge) == files[edge], edge
    matrix.assert_fleet(before)


def test_deploy_twice_and_roll_back_through_ansible_runner(matrix: Matrix, tmp_path: Path, monkeypatch) -> None:
    """As AWX runs them: two deploys of v1 through ansible-runner's Python API (the second
    changes nothing), then a rollback through its CLI with the inputs in the private data dir
    as AWX lays them out. The outcome is read where AWX reads it: the job events and the
    artifacts directory."""
    import ansible_runner

    before = matrix.snapshot()
    v1, was = matrix.bench.release_of("v1"), dict(matrix.serving)
    assert all(r["release"] != v1["release"] for r in was.values()), "the case expects the fleet off v1"
    bin_dir = Path(sys.executable).parent
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    monkeypatch.setenv("PATH", env["PATH"])  # ansible-runner looks ansible-playbook up on its own PATH
    pdd = tmp_path / "runner"
    pdd.mkdir()
    outcomes = []
    for ident in ("back-to-v1", "again"):
        r = ansible_runner.run(
            private_data_dir=str(pdd),
            project_dir=str(REPO),
            playbook="playbooks/deploy.yml",
            inventory=[str(p) for p in matrix.bench.inventory],
            extravars=base(matrix, "v1", 1),
            envvars=env,
            ident=ident,
            quiet=True,
        )
        events = list(r.events)
        assert (r.status, r.rc) == ("successful", 0), "".join(e.get("stdout", "") + "\n" for e in events[-40:])
        (stats,) = [e["event_data"] for e in events if e.get("event") == "playbook_on_stats"]
        assert stats["failures"] == {} and stats["dark"] == {}, stats
        fleet = stats["artifact_data"]["edgeinfer_fleet"]
        assert set(fleet) == set(matrix.edges), fleet
        outcomes.append({e: s["outcome"] for e, s in fleet.items()})
        # set_stats -> the AWX artifact: one record per edge, the same as the controller's record.
        records = stats["artifact_data"]["edgeinfer_records"]
        for edge in matrix.edges:
            assert matrix.record(edge, records[edge]["deploy_id"]) == records[edge], edge
        # The artifacts directory ansible-runner leaves: rc, status, stdout, one file per event.
        art = pdd / "artifacts" / ident
        assert (art / "rc").read_text().strip() == "0"
        assert (art / "status").read_text().strip() == "successful"
        assert "PLAY RECAP" in (art / "stdout").read_text()
        assert len(list((art / "job_events").glob("*.json"))) == len(events)
        if ident == "back-to-v1":
            for edge in matrix.edges:
                assert edge in stats["changed"], stats["changed"]
                assert records[edge]["model_version"] == "v1"
                matrix.landed(edge, records[edge], v1)
            files = {e: edge_files(matrix, e) for e in matrix.edges}
        else:
            assert all(stats["changed"].get(e, 0) == 0 for e in matrix.edges), stats["changed"]
            assert {e: edge_files(matrix, e) for e in matrix.edges} == files
    assert outcomes == [dict.fromkeys(matrix.edges, "deployed"), dict.fromkeys(matrix.edges, "unchanged")]
    matrix.assert_fleet(before)

    # -- the rollback through the CLI: back to what each edge served before v1
    (pdd / "env").mkdir(exist_ok=True)
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(base(matrix, "v1", 1)))
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
    cli = [str(bin_dir / "ansible-runner"), "run", str(pdd), "--project-dir", str(REPO)]
    # The rollback play runs on the edges alone: the fleet's inventory is enough.
    cli += ["-p", "playbooks/rollback.yml", "--inventory", str(matrix.bench.inventory[0]), "--ident", "rollback", "-j"]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=900, env=dict(os.environ, **env))
    cli_events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    (stats,) = [e["event_data"] for e in cli_events if e.get("event") == "playbook_on_stats"]
    assert stats["failures"] == {} and stats["dark"] == {}, stats
    for edge in matrix.edges:
        record = stats["artifact_data"]["edgeinfer_records"][edge]
        assert record["outcome"] == "rolled_back", record
        assert record["before"]["release"] == v1["release"]
        assert record["after"]["release"] == was[edge]["release"]
        matrix.serving[edge] = was[edge]
    assert (pdd / "artifacts" / "rollback" / "status").read_text().strip() == "successful"
    matrix.assert_fleet(before)
