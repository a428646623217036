"""edgeinfer_deadman in check mode predicts what the real run reports, step by step, and a
second arm of the same deploy changes nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import Watcher, read_state
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore


def run(capsys, **args) -> dict:
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.edgeinfer.deploy.plugins.modules import edgeinfer_deadman

    with patch_module_args(args), pytest.raises(SystemExit):
        edgeinfer_deadman.main()
    return json.loads(capsys.readouterr().out)


def predicted_then_real(capsys, **args) -> tuple[bool, bool]:
    would = run(capsys, **args, _ansible_check_mode=True)
    did = run(capsys, **args)
    assert not would.get("failed") and not did.get("failed"), (would, did)
    return would["changed"], did["changed"]


def test_check_mode_predicts_each_step(tmp_path: Path, capsys) -> None:
    root = str(tmp_path / "edge")
    ReleaseStore(root)
    base = {"root": root, "deploy_id": "d1"}
    arm = dict(base, action="arm", release="v2-0000", revert_to="v1-0000", timeout=300)

    # Nothing armed: confirm and cancel would change nothing, and do not.
    assert predicted_then_real(capsys, **base, action="confirm") == (False, False)

    assert predicted_then_real(capsys, **arm) == (True, True)
    first = read_state(ReleaseStore(root), "d1")
    assert first["state"] == "armed"
    # Armed alike: nothing changes, and the clock keeps running from the first arm.
    assert predicted_then_real(capsys, **arm) == (False, False)
    assert read_state(ReleaseStore(root), "d1")["armed_epoch"] == first["armed_epoch"]
    # Armed for another release: arming again is a change.
    assert run(capsys, **dict(arm, release="v3-0000"), _ansible_check_mode=True)["changed"] is True

    # A watcher that waits for the word (the detached process of a deploy), then confirm.
    watcher = Watcher(root, "d1", "v2-0000", "v1-0000", "", 300, "edgeinfer", interval=0.05)
    thread = threading.Thread(target=watcher.watch, daemon=True)
    thread.start()
    would = run(capsys, **base, action="confirm", _ansible_check_mode=True)
    assert would["changed"] is True and read_state(ReleaseStore(root), "d1")["state"] == "armed"
    did = run(capsys, **base, action="confirm")
    thread.join(10)
    assert did["changed"] is True and did["watcher"]["state"] == "confirmed", did
    # Decided: confirming again changes nothing, as predicted.
    assert predicted_then_real(capsys, **base, action="confirm") == (False, False)


def test_check_mode_refuses_a_timeout_the_real_run_refuses(tmp_path: Path, capsys) -> None:
    root = str(tmp_path / "edge")
    ReleaseStore(root)
    arm = {"root": root, "deploy_id": "d1", "action": "arm", "release": "v2-0000", "revert_to": "v1-0000", "timeout": 0}
    would = run(capsys, **arm, _ansible_check_mode=True)
    did = run(capsys, **arm)
    assert would["failed"] and did["failed"] and would["msg"] == did["msg"], (would, did)
    assert "timeout=0" in would["msg"] and read_state(ReleaseStore(root), "d1") is None
