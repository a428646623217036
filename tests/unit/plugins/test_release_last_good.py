"""The last good release on an edge: ``commit`` points models/last_good at the release that
passed its gates (the sidecar serves it when current fails at start), and prune keeps it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError
from tests.unit.plugins.conftest import make_release, new_keypair

PRIVATE, PUBLIC = new_keypair()


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore(tmp_path / "edge" / "opt" / "edgeinfer")


def stage(store: ReleaseStore, tmp_path: Path, version: str, payload: bytes) -> str:
    src = tmp_path / "incoming" / version
    make_release(src, version, payload, private_pem=PRIVATE)
    return store.stage(src, trusted_keys=[PUBLIC])[1]["release"]


def on_disk(store: ReleaseStore) -> dict:
    return json.loads(Path(store.state_path).read_text())


def test_commit_points_last_good_at_the_release_and_records_it(store: ReleaseStore, tmp_path: Path) -> None:
    r1 = stage(store, tmp_path, "v1", b"one")
    store.switch(r1)
    assert store.last_good() is None and on_disk(store).get("last_good") is None

    changed, before, after, removed = store.commit(r1)
    assert (changed, before, after, removed) == (True, None, r1, [])
    # A relative link beside current, so that it resolves inside the sidecar's /models mount too.
    assert os.readlink(Path(store.models) / "last_good") == f"releases/{r1}"
    assert (Path(store.models) / "last_good" / "model.onnx").read_bytes() == b"one" * 1000
    state = on_disk(store)
    assert state["last_good"] == r1
    assert state["history"][-1] == {"time": state["history"][-1]["time"], "action": "good", "release": r1, "from": None}
    assert not [p for p in os.listdir(store.models) if p.startswith(".")], "a temporary link was left"

    # Again: nothing changes, not even the state file.
    blob = Path(store.state_path).read_bytes()
    assert store.commit(r1)[0] is False
    assert Path(store.state_path).read_bytes() == blob


def test_commit_defaults_to_the_current_release_and_moves_on_the_next_deploy(
    store: ReleaseStore, tmp_path: Path
) -> None:
    r1, r2 = stage(store, tmp_path, "v1", b"one"), stage(store, tmp_path, "v2", b"two")
    store.switch(r1)
    store.commit()
    store.switch(r2)
    assert store.last_good() == r1  # switching is not passing the gates
    changed, before, after, _ = store.commit()
    assert (changed, before, after) == (True, r1, r2)
    assert store.last_good() == on_disk(store)["last_good"] == r2


def test_commit_in_check_mode_writes_nothing(store: ReleaseStore, tmp_path: Path) -> None:
    r1 = stage(store, tmp_path, "v1", b"one")
    blob = Path(store.state_path).read_bytes()
    assert store.commit(r1, keep=3, check_mode=True)[:3] == (True, None, r1)
    assert store.last_good() is None and Path(store.state_path).read_bytes() == blob
    # A release the deploy would stage first: would be marked, nothing refused, nothing written.
    assert store.commit("v9-deadbeef", check_mode=True)[:3] == (True, None, "v9-deadbeef")


def test_commit_refuses_a_release_that_is_not_staged(store: ReleaseStore, tmp_path: Path) -> None:
    r1 = stage(store, tmp_path, "v1", b"one")
    with pytest.raises(ReleaseError, match=f"v9-deadbeef is not staged.*{r1}"):
        store.commit("v9-deadbeef")
    with pytest.raises(ReleaseError, match="no release is current"):
        store.commit()


def test_prune_never_removes_the_last_good_release(store: ReleaseStore, tmp_path: Path) -> None:
    ids = []
    for i in range(5):
        ids.append(stage(store, tmp_path, f"v{i}", bytes([65 + i])))
        time.sleep(1.01 if i == 0 else 0)  # v0 is the oldest: the first that prune would take
    store.switch(ids[0])
    store.commit()  # v0 passed its gates ...
    store.switch(ids[3])
    store.switch(ids[4])  # ... v3 and v4 were switched to but never committed
    assert (store.current(), store.read_state()["previous"], store.last_good()) == (ids[4], ids[3], ids[0])
    removed = store.prune(keep=3)
    assert sorted(removed) == sorted([ids[1], ids[2]])
    assert set(store.list_releases()) == {ids[0], ids[3], ids[4]}


def test_commit_prunes_only_when_keep_is_given(store: ReleaseStore, tmp_path: Path) -> None:
    ids = []
    for i in range(5):
        ids.append(stage(store, tmp_path, f"v{i}", bytes([65 + i])))
        time.sleep(1.01 if i == 0 else 0)
    store.switch(ids[1])
    store.switch(ids[4])
    assert store.commit(ids[4])[3] == []
    assert len(store.list_releases()) == 5
    changed, _, after, removed = store.commit(ids[4], keep=3)
    assert changed and after == ids[4]
    # Room for one beside current (and last good) and previous: the oldest go.
    assert ids[0] in removed and len(removed) == 2
    assert {ids[1], ids[4]} <= set(store.list_releases()) and len(store.list_releases()) == 3
