"""deploy.yml and rollback.yml end to end on one loopback edge over real SSH, with the
real sidecar container in the local Docker engine.

One edge serves the module's deploys in file order: the fresh deploy, then the cases that
start from a serving edge (each deploys v1 first only if the edge is not serving it)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from testbed.deploy import DeployBench, make_bench
from testbed.load import BackgroundLoad

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]

# Task executions of the edge (ok, changed, skipped) the lean path allows (docs/deploy.md, The lean path).
UPGRADE_TASKS, NOOP_TASKS = 30, 10


@pytest.fixture(scope="module")
def one_edge(sidecar_image: str, artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One loopback edge with nothing deployed, shared by the module's deploys."""
    from testbed.fleet import Fleet

    tmp = tmp_path_factory.mktemp("one-edge")
    fleet = Fleet.up(1, tmp / "fleet")
    try:
        yield make_bench(fleet, artifacts_dir, sidecar_image, tmp)
    finally:
        fleet.down()


def serving_v1(bench: DeployBench) -> dict:
    """Deploy v1 unless the edge serves it already; v1's release description."""
    v1 = bench.release_of("v1") if (bench.artifacts / "v1" / "manifest.json").exists() else None
    status, health = bench.health()
    if v1 is None or status != 200 or health.get("model_sha256") != v1["digest"]:
        run = bench.deploy("v1", seed=1)
        assert run.rc == 0, run.explain()
        v1 = bench.release_of("v1")
    return v1


def test_fresh_deploy_then_the_same_deploy_changes_nothing(one_edge) -> None:
    deploy_bench = one_edge
    assert not (Path(deploy_bench.fleet.edges[0].root) / "state.json").exists(), "this case needs a fresh edge"
    run = deploy_bench.deploy("v1", seed=1)
    assert run.rc == 0, run.explain()
    rel = deploy_bench.release_of("v1")
    status, health = deploy_bench.health()
    assert status == 200, health
    assert (health["model_version"], health["model_sha256"]) == ("v1", rel["digest"])
    record = deploy_bench.last_record()
    assert record["outcome"] == "deployed"
    assert record["gates"]["golden"]["min_cosine"] >= 0.999
    assert record["gates"]["benchmark"]["passed"] is True
    edge_root = Path(deploy_bench.fleet.edges[0].root)
    assert (edge_root / "models" / "current").resolve().name == rel["release"]
    # Its gates passed: it is the release a restarted sidecar falls back to.
    assert os.readlink(edge_root / "models" / "last_good") == f"releases/{rel['release']}"
    assert deploy_bench.state()["last_good"] == rel["release"]

    # The lean path (docs/deploy.md): a fresh deploy in at most 30 task executions of the edge, a
    # no-op in at most 10: one read of the edge, the health and golden gates, the record.
    assert len(run.edge_tasks("edge-1")) <= UPGRADE_TASKS, run.edge_tasks("edge-1")

    again = deploy_bench.deploy("v1", seed=1)
    assert again.rc == 0, again.explain()
    assert again.stats["edge-1"]["changed"] == 0, again.explain()
    assert deploy_bench.last_record()["outcome"] == "unchanged"
    assert len(again.edge_tasks("edge-1")) <= NOOP_TASKS, again.edge_tasks("edge-1")
    edge_tasks = again.edge_tasks("edge-1")
    assert "edgeinfer : No-op | The edge serves this release already, verified" in edge_tasks, edge_tasks
    assert not any("Lock |" in t or "Switch |" in t for t in edge_tasks), edge_tasks
    # Nothing written on the edge: its own records are the fresh deploy's alone.
    assert len(list((edge_root / "records").glob("*.json"))) == 1


def test_an_edge_serving_the_release_that_fails_its_gates_is_unhealthy_and_left_as_it_is(one_edge) -> None:
    """The no-op path's gates run on what the edge serves; when they fail, the run fails naming it,
    and nothing on the edge is taken or written (no lock, no switch)."""
    deploy_bench = one_edge
    v1 = serving_v1(deploy_bench)
    golden = Path(deploy_bench.fleet.edges[0].root) / "models" / "releases" / v1["release"] / "golden.json"
    kept = golden.read_bytes()
    data = json.loads(kept)
    data["embeddings"][0] = [-x for x in data["embeddings"][0]]  # cosine -1 against what the model answers
    golden.write_text(json.dumps(data))
    try:
        run = deploy_bench.deploy("v1", seed=1)
    finally:
        golden.write_bytes(kept)
    assert run.rc != 0, run.explain()
    record = deploy_bench.last_record()
    assert record["outcome"] == "unhealthy", record
    tasks = run.edge_tasks("edge-1")
    assert not any("Lock |" in t or "Switch |" in t for t in tasks), tasks
    assert deploy_bench.health()[1]["model_sha256"] == v1["digest"]


def test_rollback_to_a_release_that_is_not_staged_names_what_is(one_edge) -> None:
    deploy_bench = one_edge
    serving_v1(deploy_bench)
    run = deploy_bench.playbook("rollback.yml", dict(deploy_bench.base_vars, release="v9-deadbeef"))
    assert run.rc != 0
    assert "v9-deadbeef is not staged" in run.stdout
    assert deploy_bench.health()[1]["model_version"] == "v1"


def test_upgrade_under_load_has_zero_failed_requests(one_edge) -> None:
    deploy_bench = one_edge
    serving_v1(deploy_bench)
    window = [[0.1 * (i % 7), 0.0, 9.8, 0.0, 0.0, 0.0, 20.0, -8.0, 40.0] for i in range(100)]
    body = json.dumps({"imu_window": window}).encode()
    port = deploy_bench.fleet.edges[0].sidecar_port
    with BackgroundLoad(port, rate=250, body=body) as load:
        upgrade = deploy_bench.deploy("v2", seed=2)
    assert upgrade.rc == 0, upgrade.explain()
    v2 = deploy_bench.release_of("v2")
    record = deploy_bench.last_record()
    assert record["applied"] == "reload" and record["outcome"] == "deployed"
    assert len(upgrade.edge_tasks("edge-1")) <= UPGRADE_TASKS, upgrade.edge_tasks("edge-1")
    assert load.sent > 250, load.sent
    assert load.failed == 0, load.errors[:5]
    assert load.versions == {"v1", "v2"}
    status, health = deploy_bench.health()
    assert (status, health["model_sha256"]) == (200, v2["digest"])
    assert deploy_bench.state()["last_good"] == v2["release"]
    # The deployment guide's names in the compose env changed with the release, and compose kept
    # the container (a hot reload): they never reach the container's environment.
    edge = deploy_bench.fleet.edges[0]
    env = dict(
        line.split("=", 1)
        for line in (Path(edge.root) / "compose" / ".env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert json.loads(env["MODEL_VERSION"]) == "v2" and json.loads(env["HEF_PATH"]) == ""
    assert json.loads(env["MODEL_ACCURACY"]).startswith("untrained"), env["MODEL_ACCURACY"]
    container_env = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", f"{edge.compose_project}-sidecar"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [e.split("=", 1)[0] for e in json.loads(container_env)]
    assert "EDGEINFER_MODEL_DIR" in names and not {"MODEL_VERSION", "MODEL_ACCURACY", "HEF_PATH"} & set(names), names


def test_rollback_to_the_previous_then_to_a_named_release(one_edge) -> None:
    """After the upgrade above: back to v1 (the previous release), then forward to v2 by name."""
    deploy_bench = one_edge
    v1, v2 = deploy_bench.release_of("v1"), deploy_bench.release_of("v2")
    state = deploy_bench.state()
    assert (state["current"], state["previous"]) == (v2["release"], v1["release"]), "this case follows the upgrade"

    back = deploy_bench.playbook("rollback.yml", deploy_bench.base_vars)
    assert back.rc == 0, back.explain()
    status, health = deploy_bench.health()
    assert (status, health["model_sha256"]) == (200, v1["digest"])
    assert deploy_bench.last_record()["outcome"] == "rolled_back"
    assert deploy_bench.state()["last_good"] == v1["release"]  # the rollback passed its gates

    named = deploy_bench.playbook("rollback.yml", dict(deploy_bench.base_vars, release=v2["release"]))
    assert named.rc == 0, named.explain()
    status, health = deploy_bench.health()
    assert (status, health["model_sha256"]) == (200, v2["digest"])
    assert {v1["release"], v2["release"]} <= set(deploy_bench.state()["releases"])


def signed_again_with_a_new_key(release: dict, directory: Path) -> tuple[dict, str]:
    """``release``'s files signed with a new key as GPUSRV does it (model_tools keygen, then model_tools
    manifest --signing-key on a copy); the release description and the key's public PEM."""
    import shutil
    import sys

    shutil.copytree(release["dir"], directory / "release")
    tools = [sys.executable, "-m", "model_tools"]
    key = directory / "new.pem"
    subprocess.run([*tools, "keygen", "--out", str(key)], check=True, capture_output=True)
    out = subprocess.run(
        [
            *tools,
            "manifest",
            "--json",
            "--release",
            str(directory / "release"),
            "--model-version",
            release["model_version"],
            "--signing-key",
            str(key),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    signed = json.loads(out.stdout)
    assert signed["digest"] == release["digest"] and signed["key_id"] != release["key_id"], signed
    where = str(directory / "release")
    return dict(release, dir=where, source=where, key_id=signed["key_id"]), Path(f"{key}.pub").read_text()


def test_a_key_dropped_at_once_the_release_signed_again_with_the_new_key_serves_on(one_edge, tmp_path: Path) -> None:
    """A key revoked at once (docs/deploy.md, Signing and trust): the inventory trusts only a new key, and
    the serving release, signed again with it on GPUSRV, is deployed. Its id is the same, so the deploy
    stages it again: the staged copy takes the new manifest and signature once its files match them, the
    gates pass, and it is the last good release again. The bench's own key takes it back the same way."""
    deploy_bench = one_edge
    v1 = serving_v1(deploy_bench)
    rebuilt, public = signed_again_with_a_new_key(v1, tmp_path)
    run = deploy_bench.playbook(
        "deploy.yml", dict(deploy_bench.base_vars, edgeinfer_release_source=rebuilt, edgeinfer_trusted_keys=[public])
    )
    assert run.rc == 0, run.explain()
    state = deploy_bench.state()
    assert state["current"] == state["last_good"] == v1["release"], state
    trust = Path(deploy_bench.fleet.edges[0].root) / "trust"
    assert sorted(p.name for p in trust.iterdir()) == [f"{rebuilt['key_id']}.pub"]
    assert state["releases"][v1["release"]]["key_id"] == rebuilt["key_id"], state["releases"]
    assert [h["action"] for h in state["history"]].count("resign") == 1
    assert deploy_bench.last_record()["outcome"] == "deployed"
    assert deploy_bench.health()[1]["model_sha256"] == v1["digest"]
    back = deploy_bench.deploy("v1", seed=1)
    assert back.rc == 0, back.explain()
    assert deploy_bench.state()["releases"][v1["release"]]["key_id"] == v1["key_id"]


def test_check_mode_on_a_fresh_edge_says_what_would_change_and_writes_nothing(deploy_bench) -> None:
    root = Path(deploy_bench.fleet.edges[0].root)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    run = deploy_bench.playbook("deploy.yml", deploy_bench.vars("v1", 1), check=True)
    assert run.rc == 0, run.explain()
    results = run.results("edge-1")
    assert results["edgeinfer : Transfer | Would transfer and stage the release (check mode)"]["changed"] is True
    assert results["edgeinfer : Switch | Compose files and models/current, together"]["changed"] is True
    after = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert after == before, [str(p) for p in after]
    assert deploy_bench.health()[0] == 0  # no sidecar was started
