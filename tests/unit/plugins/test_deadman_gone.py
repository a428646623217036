"""A dead-man watcher that is gone while armed (the edge rebooted, or its process was killed): a
confirm fails at once, a cancel is recorded, and once its timeout has passed the next lock of the
edge makes its revert and takes the lock, instead of waiting for the lock to go stale."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import (
    WATCH_START_GRACE_S,
    Watcher,
    _process_start,
    boot_id,
    read_state,
    watcher_gone,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore


def run(capsys, module: str, **args) -> dict:
    from importlib import import_module

    from ansible.module_utils.testing import patch_module_args

    main = import_module(f"ansible_collections.edgeinfer.deploy.plugins.modules.{module}").main
    with patch_module_args(args), pytest.raises(SystemExit):
        main()
    return json.loads(capsys.readouterr().out)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def wait_until_zombie(pid: int) -> None:
    for _ in range(500):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"{pid} did not end")


def armed(tmp_path: Path, timeout: float, **state) -> ReleaseStore:
    """An edge locked by deploy d1, whose watcher was armed ``age`` seconds ago for a release that
    was never switched to (so its revert needs no sidecar)."""
    store = ReleaseStore(tmp_path / "edge")
    store.acquire("ci@controller", "d1", stale_after=1800)
    Watcher(store.root, "d1", "v2-00000000", "v1-00000000", "", timeout, "edgeinfer-none").arm()
    path = Path(store.root) / "deadman" / "d1.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **state)))
    return store


def test_a_watcher_is_gone_when_the_edge_booted_since_or_its_process_is_dead(tmp_path: Path) -> None:
    assert boot_id(), "this kernel names its boot"
    base = {"state": "armed", "boot_id": boot_id(), "armed_epoch": time.time()}
    assert not watcher_gone(dict(base, pid=os.getpid()))
    assert not watcher_gone(dict(base, pid=os.getpid(), pid_start=_process_start(os.getpid())))
    assert watcher_gone(dict(base, pid=os.getpid(), pid_start="1")), "its pid reused by another process"
    assert not watcher_gone(dict(base, pid=None)), "armed, the watch not started yet"
    assert watcher_gone(dict(base, pid=None, armed_epoch=time.time() - WATCH_START_GRACE_S - 1)), (
        "armed, and the watch never started"
    )
    assert watcher_gone(dict(base, pid=dead_pid()))
    zombie = subprocess.Popen(["true"])
    try:
        wait_until_zombie(zombie.pid)
        assert watcher_gone(dict(base, pid=zombie.pid)), "killed, not reaped yet: gone"
    finally:
        zombie.wait()
    assert watcher_gone(dict(base, boot_id="another-boot", pid=os.getpid()))
    assert watcher_gone(dict(base, state="reverting", pid=dead_pid()))
    assert not watcher_gone(dict(base, state="revert", pid=dead_pid())), "decided: nothing left to do"


def test_a_confirm_to_a_gone_watcher_fails_at_once_and_a_cancel_is_recorded(tmp_path: Path, capsys) -> None:
    store = armed(tmp_path, 300, pid=dead_pid())
    args = {"root": store.root, "deploy_id": "d1"}
    t0 = time.monotonic()
    would = run(capsys, "edgeinfer_deadman", **args, action="confirm", _ansible_check_mode=True)
    assert would["failed"] and "is gone" in would["msg"], "check mode predicts the failure"
    out = run(capsys, "edgeinfer_deadman", **args, action="confirm")
    assert time.monotonic() - t0 < 5, "no wait for a watcher that cannot answer"
    assert out["failed"] and "is gone" in out["msg"] and "the controller must" in out["msg"], out
    assert read_state(store, "d1")["state"] == "armed"
    assert not (Path(store.root) / "deadman" / "d1.confirm").exists()

    out = run(capsys, "edgeinfer_deadman", **args, action="cancel")
    assert not out.get("failed") and out["changed"] and out["watcher"]["state"] == "cancelled", out
    assert read_state(store, "d1")["state"] == "cancelled"


def test_the_next_lock_makes_the_revert_of_a_gone_watcher_past_its_timeout_and_stops_that_run(
    tmp_path: Path, capsys
) -> None:
    store = armed(tmp_path, 60, boot_id="a-boot-before-a-power-cut", armed_epoch=time.time() - 61, pid=4242)
    lock = {"root": store.root, "action": "lock", "deploy_id": "d2", "lock_holder": "ci@controller"}

    would = run(capsys, "edgeinfer_release", **lock, _ansible_check_mode=True)
    assert would["failed"] and not would["changed"], would
    assert "a real run makes its revert to v1-00000000" in would["msg"], would["msg"]
    assert would["deadman_recovered"]["check_mode"], would
    assert store.lock.read()["deploy_id"] == "d1" and read_state(store, "d1")["state"] == "armed"

    # The run that finds it makes the revert and stops: what it read of the edge before is stale now.
    did = run(capsys, "edgeinfer_release", **lock)
    assert did["failed"] and did["changed"] and "made (not_switched) its revert to v1-00000000" in did["msg"], did
    assert "this run stops there" in did["msg"] and did["deadman_recovered"]["recovered"], did
    assert store.lock.read() is None, "the gone deploy's lock is released, and this run took none"
    final = read_state(store, "d1")
    assert final["state"] == "revert" and final["outcome"] == "not_switched", final
    assert final["boot_id"] == boot_id() and final["pid"] == os.getpid()
    record = json.loads((Path(store.root) / "records" / "d1.deadman.json").read_text())
    assert record["outcome"] == "not_switched"
    assert store.read_state()["history"][-1]["action"] == "deadman"

    # The next run starts from the reverted edge and takes the lock.
    again = run(capsys, "edgeinfer_release", **lock)
    assert not again.get("failed") and again["lock"]["deploy_id"] == "d2", again


def test_a_gone_watcher_within_its_timeout_keeps_the_lock(tmp_path: Path, capsys) -> None:
    store = armed(tmp_path, 300, boot_id="a-boot-before-a-power-cut", pid=4242)
    out = run(capsys, "edgeinfer_release", root=store.root, action="lock", deploy_id="d2", lock_holder="ci")
    assert out["failed"] and "being deployed by ci@controller" in out["msg"], out
    assert "deadman_recovered" not in out
    assert store.lock.read()["deploy_id"] == "d1" and read_state(store, "d1")["state"] == "armed"


def test_a_stale_lock_whose_watcher_still_runs_is_not_broken(tmp_path: Path, capsys) -> None:
    store = armed(tmp_path, 300, pid=os.getpid())  # this process stands for the running watcher
    lock = json.loads(Path(store.lock_path).read_text())
    Path(store.lock_path).write_text(json.dumps(dict(lock, epoch=lock["epoch"] - 7200)))  # stale
    args = {"root": store.root, "action": "lock", "deploy_id": "d2", "lock_holder": "ci", "lock_stale_after": 60}
    out = run(capsys, "edgeinfer_release", **args, lock_break_stale=True)
    assert out["failed"] and "its dead-man watcher still runs" in out["msg"], out
    assert out["deadman"]["pid"] == os.getpid() and store.lock.read()["deploy_id"] == "d1"

    # Once the watcher is gone (within its timeout), the stale lock may be broken as asked.
    path = Path(store.root) / "deadman" / "d1.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), pid=dead_pid())))
    out = run(capsys, "edgeinfer_release", **args, lock_break_stale=True)
    assert not out.get("failed") and out["broken_lock"]["deploy_id"] == "d1", out
    assert store.lock.read()["deploy_id"] == "d2"


def test_a_watcher_made_from_a_state_without_previous_never_makes_the_failed_release_the_rollback_target(
    tmp_path: Path,
) -> None:
    # A state armed before it recorded ``previous``: the revert clears the rollback target ("")
    # rather than letting the switch make the release being reverted the new one (None).
    store = armed(tmp_path, 60)
    state = {k: v for k, v in read_state(store, "d1").items() if k not in ("previous", "compose_project")}
    watcher = Watcher.of(store, state)
    assert (watcher.previous, watcher.compose_project, watcher.release) == ("", "edgeinfer", "v2-00000000")


def test_a_revert_a_killed_watcher_began_is_made_again_not_taken_for_a_deploy_never_switched(
    tmp_path: Path, capsys
) -> None:
    # The watcher of d1 was killed after it switched current back to v1-00000000, before it had
    # restarted the sidecar: the recovery must make the whole revert again (here it stops at the
    # missing release v1, which a real edge has), not call the edge "not switched" and serve on.
    def killed_mid_revert(state: str) -> ReleaseStore:
        store = armed(tmp_path / state, 60, state=state, armed_epoch=time.time() - 61, pid=dead_pid())
        Path(store.current_link).parent.mkdir(parents=True)
        os.symlink("releases/v1-00000000", store.current_link)  # as the revert's switch leaves it
        return store

    store = killed_mid_revert("reverting")
    out = run(capsys, "edgeinfer_release", root=store.root, action="lock", deploy_id="d2", lock_holder="ci")
    assert out["failed"] and out["changed"] and out["deadman_recovered"]["recovered"], out
    final = read_state(store, "d1")
    assert final["state"] == "revert" and final["outcome"] == "revert_failed", final
    assert "release v1-00000000 is not staged" in final["error"], final
    assert store.lock.read() is None, "a failed revert still releases the gone deploy's lock"

    # The same edge with a watcher that had not begun its revert: the deploy never switched.
    store = killed_mid_revert("armed")
    run(capsys, "edgeinfer_release", root=store.root, action="lock", deploy_id="d2", lock_holder="ci")
    assert read_state(store, "d1")["outcome"] == "not_switched"
