"""The edge reverts by itself when the controller dies right after the switch."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import decide

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]


@pytest.mark.parametrize(
    ("confirmed", "cancelled", "elapsed", "action"),
    [
        (False, False, 0, "wait"),
        (False, False, 29.9, "wait"),
        (False, False, 30, "revert"),
        (True, False, 31, "confirmed"),
        (False, True, 31, "cancelled"),
        (True, True, 0, "confirmed"),
    ],
)
def test_decide(confirmed: bool, cancelled: bool, elapsed: float, action: str) -> None:
    assert decide(confirmed, cancelled, elapsed, 30) == action


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_controller_killed_after_the_switch_is_reverted_by_the_edge(deploy_bench) -> None:
    assert deploy_bench.deploy("v1", seed=1).rc == 0
    v1 = deploy_bench.release_of("v1")
    # Build v2 first, so that the kill below lands in the edge play, not in the build.
    assert deploy_bench.playbook("deploy.yml", deploy_bench.vars("v2", 2), extra_args=["--limit", "gpusrv"]).rc == 0
    v2 = deploy_bench.release_of("v2")
    root = Path(deploy_bench.fleet.edges[0].root)
    timeout = 25
    proc = deploy_bench.start("deploy.yml", deploy_bench.vars("v2", 2, edgeinfer_deadman_timeout=timeout))
    try:
        wait_for(lambda: os.path.realpath(root / "models" / "current").endswith(v2["release"]), 180, "the switch")
        os.killpg(proc.pid, signal.SIGKILL)  # the controller vanishes mid-deploy
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def v2_watcher():
        for f in (root / "deadman").glob("*.json"):
            if json.loads(f.read_text())["release"] == v2["release"]:
                return f
        return None

    state_file = wait_for(v2_watcher, 5, "the watcher of the v2 deploy")
    watcher = json.loads(state_file.read_text())
    assert watcher["revert_to"] == v1["release"]

    def reverted():
        st = json.loads(state_file.read_text())
        return st if st["state"] != "armed" else None

    final = wait_for(reverted, timeout + 120, "the dead-man revert")
    assert final["state"] == "revert", final
    assert final["outcome"] == "reverted", final
    assert time.monotonic() - killed_at < timeout + 120
    assert os.path.realpath(root / "models" / "current").endswith(v1["release"])
    status, health = deploy_bench.health()
    assert (status, health["model_sha256"]) == (200, v1["digest"])
    record = json.loads((root / "records" / f"{final['deploy_id']}.deadman.json").read_text())
    assert record["outcome"] == "reverted" and "did not confirm" in record["reason"]
    assert not (root / "deploy.lock").exists()
    assert deploy_bench.state()["previous"] != v2["release"] or deploy_bench.state()["current"] == v1["release"]
    # The next deploy goes through: nothing was left locked or half-switched.
    again = deploy_bench.deploy("v2", seed=2)
    assert again.rc == 0, again.explain()
    assert deploy_bench.health()[1]["model_sha256"] == v2["digest"]


def test_a_confirmed_deploy_is_not_reverted(deploy_bench) -> None:
    run = deploy_bench.deploy("v1", seed=1, edgeinfer_deadman_timeout=120)
    assert run.rc == 0, run.explain()
    root = Path(deploy_bench.fleet.edges[0].root)
    (state_file,) = list((root / "deadman").glob("*.json"))
    assert json.loads(state_file.read_text())["state"] == "confirmed"
    assert deploy_bench.last_record()["deadman"]["state"] == "confirmed"
