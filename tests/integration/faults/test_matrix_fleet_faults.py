"""The fault matrix, second part: faults of the fleet itself (the controller killed after
the switch, the sidecar killed during a reload, an edge unreachable or lost mid-transfer,
two deploys at once), then a deploy to all three edges and the same through ansible-runner,
on three loopback edges over real SSH with the sidecar in Docker.

The cases, their faults and end states are rows 10-15 of the case table (cases.py). Each case
ends with every edge serving a model that passed its gates, the previous
release intact, the lock released, and a record that names what happened. One fleet
serves the module (v1 at first); `matrix.serving` follows what each edge must serve as
the cases move it. The cases run in file order and build on that state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import watcher_gone
from testbed.ansible_run import REPO
from tests.integration.faults.cases import BY_NUMBER, expect
from tests.integration.faults.matrix import Matrix, base, craft, cut, deploy_id, fleet_summary, in_background, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]

# The dead-man timeout of the cases that wait for it: longer than any healthy deploy takes
# from arming it to the switch on this bench, short enough to wait for.
DEADMAN_S = 40


def kill_the_controller_after_the_switch(matrix: Matrix, new: dict, deadman_s: int) -> None:
    """Deploy ``new`` with a dead-man of ``deadman_s``; SIGKILL ansible-playbook once the canary switched."""
    proc = matrix.bench.start(
        "deploy.yml", base(matrix, edgeinfer_release_source=new, edgeinfer_deadman_timeout=deadman_s)
    )
    try:
        wait_for(lambda: matrix.current("edge-1") == new["release"], 240, "the switch on the canary")
        os.killpg(proc.pid, signal.SIGKILL)  # the controller vanishes right after the switch
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- 10. the controller is killed right after the switch on one host --------------------------------


def test_10_controller_killed_after_the_switch_is_reverted_by_the_dead_man(matrix: Matrix) -> None:
    new = craft(matrix.bench, "f10-deadman")
    # The dead-man's clock starts when it is armed, before the transfer: 40 s is past the switch
    # even on 2 cores shared with another test's deploy (20 s was not).
    edge, root, timeout = "edge-1", matrix.root("edge-1"), DEADMAN_S
    was = matrix.serving[edge]
    before = matrix.snapshot()
    kill_the_controller_after_the_switch(matrix, new, timeout)
    killed_at = time.monotonic()
    (state_file,) = wait_for(
        lambda: [
            p for p in (root / "deadman").glob("*.json") if json.loads(p.read_text())["release"] == new["release"]
        ],
        5,
        "the watcher of this deploy",
    )
    final = wait_for(
        lambda: (s := json.loads(state_file.read_text()))["state"] not in ("armed", "reverting") and s,
        timeout + 120,
        "the revert",
    )
    did = final["deploy_id"]
    assert (final["state"], final["outcome"]) == ("revert", "reverted"), final
    assert final["revert_to"] == was["release"], final
    assert time.monotonic() - killed_at < timeout + 120
    record = matrix.deadman_record(edge, did)
    assert record["outcome"] == "reverted" and record["reverted_to"] == was["release"], record
    assert BY_NUMBER[10].caught_by in record["reason"], record
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


# -- 12. one host is unreachable from the start --------------------------------------------------------


def test_12_one_host_unreachable_from_the_start(matrix: Matrix) -> None:
    new = craft(matrix.bench, "f12-good")
    down = "edge-1"  # the canary itself: the rollout goes on with the edges it can reach
    before = matrix.snapshot()
    cut(matrix.bench.fleet, down)
    try:
        run = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=new))
    finally:
        matrix.bench.fleet.start(down)
    did = deploy_id(run)
    summary = fleet_summary(run)
    expect(12, run.rc, summary, run.explain())
    assert summary[down]["reason"], summary
    for edge in ("edge-2", "edge-3"):
        matrix.landed(edge, matrix.record(edge, did), new)
    matrix.assert_untouched(down, before, did)
    matrix.assert_fleet(before)


# -- 13-14. SSH to one host drops in the middle of the transfer ---------------------------------------


@pytest.fixture(scope="module")
def dropped_mid_transfer(matrix: Matrix):
    """edge-2's SSH drops once its staging directory appears; the failure budget (1) lets
    edge-3 go on. Its dead-man (DEADMAN_S there) releases the lock by itself."""
    new = craft(matrix.bench, "f13-drop")
    edge, timeout = "edge-2", DEADMAN_S
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


def test_13_ssh_drops_mid_transfer_end_state(matrix: Matrix, dropped_mid_transfer) -> None:
    d = dropped_mid_transfer
    run, new, edge, did = d["run"], d["new"], d["edge"], d["did"]
    print(f"plays run: {[p['play']['name'] for p in run.data.get('plays', [])]}; stats: {run.stats}")
    assert run.rc != 0
    assert run.stats[edge]["unreachable"] >= 1, run.stats
    matrix.landed("edge-1", matrix.record("edge-1", did), new)
    # The edge's own dead-man found that the switch never happened, and freed the lock.
    record = matrix.deadman_record(edge, did)
    assert record["outcome"] == "not_switched", record
    assert f"{BY_NUMBER[13].caught_by} {DEADMAN_S} s" in record["reason"], record
    assert matrix.current(edge) == d["before"][edge].current
    assert new["release"] not in matrix.bench.state(edge)["releases"]
    assert not (matrix.root(edge) / "models" / "releases" / new["release"]).exists()
    # The budget (1) lets the rollout go on past the lost edge.
    matrix.landed("edge-3", matrix.record("edge-3", did), new)
    matrix.assert_fleet(d["before"])


def test_14_ssh_drop_within_the_budget_goes_on_and_reports_the_lost_edge(matrix: Matrix, dropped_mid_transfer) -> None:
    """edge-2 is alone in its serial batch ([1, 25 %, rest] of 3): losing it must neither end the
    run (the rollout strategy) nor pass unreported (the summary and its record name it lost)."""
    d = dropped_mid_transfer
    assert (matrix.bench.records / "edge-3" / f"{d['did']}.json").is_file(), "edge-3 was not reached"
    summary = fleet_summary(d["run"])
    expect(14, d["run"].rc, summary, d["run"].explain())
    lost = summary[d["edge"]]
    assert lost["reason"].startswith("lost at ") and "dead-man" in lost["reason"], lost
    fleet_record = json.loads((matrix.bench.records / "fleet" / f"{d['did']}.json").read_text())
    assert fleet_record["deploy_id"] == d["did"]
    assert fleet_record["edges"] == summary, (fleet_record, summary)


# -- 15. two deploys at once to the same host --------------------------------------------------------


def test_15_two_deploys_at_once_the_second_is_refused(matrix: Matrix) -> None:
    a_release = craft(matrix.bench, "f15-a")
    edge = "edge-1"
    lock = matrix.root(edge) / "deploy.lock"
    before = matrix.snapshot()
    a_vars = base(matrix, edgeinfer_release_source=a_release)
    duration = a_vars.pop("edgeinfer_benchmark_duration")  # set per host below: A holds edge-1's lock a while
    # A goes to edge-1 alone (B is refused there, the canary, and reaches no other edge).
    a_limit = ["--limit", f"{edge},gpusrv-local"]
    with matrix.host_vars(
        {edge: {"edgeinfer_benchmark_duration": 15}}, group={"edgeinfer_benchmark_duration": duration}
    ):
        a_f = in_background(matrix.bench.playbook, "deploy.yml", a_vars, extra_args=a_limit)
        held = wait_for(lambda: lock.exists() and json.loads(lock.read_text()), 240, "deploy A's lock on edge-1")
        b_vars = base(matrix, edgeinfer_lock_holder="operator-b@faults")
        b = matrix.bench.playbook("deploy.yml", b_vars)
        a = a_f.result(timeout=600)
    assert a.rc == 0, a.explain()
    a_id, b_id = deploy_id(a), deploy_id(b)
    assert held["deploy_id"] == a_id
    b_summary = fleet_summary(b)
    case = expect(15, b.rc, b_summary, b.explain())
    refused = matrix.record(edge, b_id)
    assert refused["outcome"] == "refused", refused
    assert refused["failure"]["task"] == f"Lock | {case.caught_by}, then provision the trusted signing keys under it", (
        refused["failure"]
    )
    assert held["holder"] in refused["failure"]["msg"] and a_id in refused["failure"]["msg"], refused["failure"]
    assert refused["deployed_by"] == "operator-b@faults"
    for other in ("edge-2", "edge-3"):
        assert not (matrix.bench.records / other / f"{b_id}.json").exists()
    assert set(fleet_summary(a)) == {edge}, fleet_summary(a)
    matrix.landed(edge, matrix.record(edge, a_id), a_release)
    matrix.assert_fleet(before)


# -- 16. the controller and the canary's dead-man watcher killed after the switch --------------------


def test_16_watcher_gone_after_the_switch_the_next_deploy_reverts_first(matrix: Matrix) -> None:
    new = craft(matrix.bench, "f16-gone")
    edge, root, timeout = "edge-1", matrix.root("edge-1"), DEADMAN_S
    was = matrix.serving[edge]
    before = matrix.snapshot()
    kill_the_controller_after_the_switch(matrix, new, timeout)
    (state_file,) = [
        p for p in (root / "deadman").glob("*.json") if json.loads(p.read_text())["release"] == new["release"]
    ]
    # The watcher dies too, as it would with the edge's power: nothing on the edge reverts now.
    armed = wait_for(lambda: (s := json.loads(state_file.read_text()))["pid"] and s, 30, "the watcher's pid")
    os.kill(armed["pid"], signal.SIGKILL)
    killed = armed["deploy_id"]
    wait_for(lambda: watcher_gone(json.loads(state_file.read_text())), 10, "the watcher's end")
    time.sleep(max(0.0, armed["armed_epoch"] + timeout + 1 - time.time()))
    assert json.loads(state_file.read_text())["state"] == "armed" and matrix.current(edge) == new["release"]
    assert json.loads((root / "deploy.lock").read_text())["deploy_id"] == killed

    # The deploy rerun on the canary: its lock makes the gone watcher's revert and stops that run,
    # since what it read of the edge before the lock is stale now.
    limit = ["--limit", f"{edge},gpusrv-local"]
    rerun = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=new), extra_args=limit)
    case = expect(16, rerun.rc, fleet_summary(rerun), rerun.explain())
    final = json.loads(state_file.read_text())
    assert (final["state"], final["outcome"], final["revert_to"]) == ("revert", "reverted", was["release"]), final
    assert final["recovered"] and final["health"]["ok"] is True, final
    record = matrix.deadman_record(edge, killed)
    assert record["outcome"] == "reverted" and record["reverted_to"] == was["release"], record
    refused = matrix.record(edge, deploy_id(rerun))
    assert refused["outcome"] == "refused" and case.caught_by in refused["failure"]["msg"], refused["failure"]
    assert matrix.current(edge) == was["release"] and not (root / "deploy.lock").exists()

    # Run again, it starts from the reverted edge: the dead-man armed to go back to what served before.
    again = matrix.bench.playbook("deploy.yml", base(matrix, edgeinfer_release_source=new), extra_args=limit)
    assert again.rc == 0, again.explain()
    armed_again = json.loads((root / "deadman" / f"{deploy_id(again)}.json").read_text())
    assert (armed_again["state"], armed_again["revert_to"]) == ("confirmed", was["release"]), armed_again
    landed = matrix.record(edge, deploy_id(again))
    assert landed["before"]["release"] == was["release"], landed["before"]
    matrix.landed(edge, landed, new)
    matrix.assert_fleet(before)


# -- a deploy to all three that succeeds; then, through ansible-runner, the same again (no
# change), the other release, and a rollback ----------------------------------------------------


def edge_files(matrix: Matrix, edge: str) -> dict[str, bytes]:
    root = matrix.root(edge)
    out = {"state.json": (root / "state.json").read_bytes(), "compose/.env": (root / "compose" / ".env").read_bytes()}
    out["releases"] = "\n".join(sorted(p.name for p in (root / "models" / "releases").iterdir())).encode()
    out["current"] = str(matrix.current(edge)).encode()
    return out


def test_deploy_to_all_three_succeeds(matrix: Matrix) -> None:
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
        log = matrix.deployment_log(edge, did)
        for line in ("SSH access confirmed", "Free disk checked", "Artifacts copied and verified", "Golden set"):
            assert f"[x] {line}" in log, (line, log)
        assert "[x] Performance validation" in log and f"signed (ed25519) by a trusted key ({v2['key_id']})" in log, log
        # The bench's releases are untrained demo models: never production ready.
        assert "Production ready: No (an untrained demo model)" in log, log
    matrix.assert_fleet(before)


def runner_env(monkeypatch) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    monkeypatch.setenv("PATH", env["PATH"])  # ansible-runner looks ansible-playbook up on its own PATH
    return env


# The runner is what these two cases test, not the batches (test_deploy_to_all_three_succeeds
# does): all three edges in one batch.
ONE_BATCH = {"edgeinfer_serial": ["100%"]}


def test_through_ansible_runner_the_same_deploy_changes_nothing_and_another_lands(
    matrix: Matrix, tmp_path: Path, monkeypatch
) -> None:
    """As AWX runs them: the release the fleet serves deployed again through ansible-runner's
    Python API (nothing changes), then the other release through the same API. The outcome
    is read where AWX reads it: the job events and the artifacts directory."""
    import ansible_runner

    serving = {r["model_version"] for r in matrix.serving.values()}
    assert len(serving) == 1 and serving <= {"v1", "v2"}, f"the case needs the fleet on one of v1, v2: {serving}"
    (now,) = serving
    other = "v1" if now == "v2" else "v2"
    seeds = {"v1": 1, "v2": 2}
    before = matrix.snapshot()
    was = dict(matrix.serving)
    files = {e: edge_files(matrix, e) for e in matrix.edges}
    env = runner_env(monkeypatch)
    pdd = tmp_path / "runner"
    pdd.mkdir()
    outcomes = []
    for ident, version in (("again", now), ("the-other", other)):
        r = ansible_runner.run(
            private_data_dir=str(pdd),
            project_dir=str(REPO),
            playbook="playbooks/deploy.yml",
            inventory=[str(p) for p in matrix.bench.inventory],
            extravars=base(matrix, version, seeds[version], **ONE_BATCH),
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
        if ident == "again":
            # The same deploy a second time changes nothing on any edge.
            changed_tasks = [
                (e["event_data"].get("host"), e["event_data"].get("task"))
                for e in events
                if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")
            ]
            for edge in matrix.edges:
                assert stats["changed"].get(edge, 0) == 0, (edge, stats["changed"], changed_tasks)
                assert records[edge]["outcome"] == "unchanged", records[edge]
                assert edge_files(matrix, edge) == files[edge], edge
        else:
            release = matrix.bench.release_of(other)
            for edge in matrix.edges:
                assert edge in stats["changed"], stats["changed"]
                assert records[edge]["model_version"] == other
                matrix.landed(edge, records[edge], release)
    assert outcomes == [dict.fromkeys(matrix.edges, "unchanged"), dict.fromkeys(matrix.edges, "deployed")]
    matrix.assert_fleet(before)
    # What the rollback case below goes back to.
    matrix.notes["before_runner"] = {"serving": was, "deployed": other, "seed": seeds[other]}


def test_a_rollback_through_the_ansible_runner_cli_restores_what_served_before(
    matrix: Matrix, tmp_path: Path, monkeypatch
) -> None:
    """The rollback through ansible-runner's CLI, its inputs in the private data dir as AWX
    lays them out, after the runner's deploy above."""
    assert "before_runner" in matrix.notes, "this case follows the runner's deploy case"
    noted = matrix.notes["before_runner"]
    was, other = noted["serving"], noted["deployed"]
    before = matrix.snapshot()
    env = runner_env(monkeypatch)
    bin_dir = Path(sys.executable).parent
    pdd = tmp_path / "runner"
    pdd.mkdir()

    # -- the rollback through the CLI: back to what each edge served before
    (pdd / "env").mkdir(exist_ok=True)
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(base(matrix, other, noted["seed"], **ONE_BATCH)))
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
        assert record["before"]["release"] == matrix.serving[edge]["release"]
        assert record["after"]["release"] == was[edge]["release"]
        matrix.serving[edge] = was[edge]
    assert (pdd / "artifacts" / "rollback" / "status").read_text().strip() == "successful"
    matrix.assert_fleet(before)
