"""The dead-man watcher when its revert fails: the failure is recorded, the lock released, and the
decision was written before the revert began (a late confirm sees it at once)."""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import Watcher, read_state, signal_watcher
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from tests.unit.plugins.conftest import make_release, new_keypair

PRIVATE, PUBLIC = new_keypair()


def test_a_revert_that_raises_is_recorded_and_unlocks(tmp_path: Path) -> None:
    root = tmp_path / "edge"
    store = ReleaseStore(root)
    make_release(tmp_path / "incoming" / "v2", "v2", b"two", private_pem=PRIVATE)
    _, info = store.stage(tmp_path / "incoming" / "v2", trusted_keys=[PUBLIC])
    new = info["release"]
    store.switch(new)
    store.acquire("ci@controller", "d1", stale_after=1800)
    # The release to go back to is not staged on this edge: the revert raises.
    watcher = Watcher(str(root), "d1", new, "v1-00000000", "", 0.05, "edgeinfer-none", interval=0.01)
    watcher.arm()
    seen: list[str] = []
    real_revert = watcher.revert

    def revert_watched() -> dict:
        seen.append(read_state(store, "d1")["state"])  # what a confirm would read during the revert
        return real_revert()

    watcher.revert = revert_watched  # type: ignore[method-assign]
    state = watcher.watch()

    assert seen == ["reverting"], seen
    assert state["state"] == "revert" and state["outcome"] == "revert_failed", state
    assert "v1-00000000" in state["error"], state["error"]
    assert read_state(store, "d1")["outcome"] == "revert_failed"
    record = json.loads((root / "records" / "d1.deadman.json").read_text())
    assert record["outcome"] == "revert_failed" and "v1-00000000" in record["error"], record
    assert store.lock.read() is None, "the lock of a deploy whose watcher failed must not stay"
    assert signal_watcher(store, "d1", "confirm", wait=0.1)["state"] == "revert"
