"""The image each release served on: ``commit`` keeps its tag and id in state.json beside the
release, so that a rollback to it restores that image by id."""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from tests.unit.plugins.conftest import make_release, new_keypair

PRIVATE, PUBLIC = new_keypair()
A = ("edgeinfer/sidecar:0.1.0-aaaaaaaaaaaa", "sha256:" + "a" * 64)
B = ("edgeinfer/sidecar:0.1.0-bbbbbbbbbbbb", "sha256:" + "b" * 64)


def stage(store: ReleaseStore, tmp_path: Path, version: str) -> str:
    src = tmp_path / "incoming" / version
    make_release(src, version, version.encode(), private_pem=PRIVATE)
    return store.stage(src, trusted_keys=[PUBLIC])[1]["release"]


def known(store: ReleaseStore, rid: str) -> dict:
    return json.loads(Path(store.state_path).read_text())["releases"][rid]


def test_commit_keeps_the_image_per_release_and_changes_nothing_the_second_time(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "edge")
    r1, r2 = stage(store, tmp_path, "v1"), stage(store, tmp_path, "v2")
    store.switch(r1)
    assert store.commit(r1, image=A[0], image_id=A[1])[0] is True
    store.switch(r2)
    store.commit(r2, image=B[0], image_id=B[1])
    assert (known(store, r1)["image"], known(store, r1)["image_id"]) == A
    assert (known(store, r2)["image"], known(store, r2)["image_id"]) == B

    blob = Path(store.state_path).read_bytes()
    assert store.commit(r2, image=B[0], image_id=B[1])[0] is False
    # A commit that names no image (a rollback's) keeps the one recorded.
    assert store.commit(r2)[0] is False
    assert Path(store.state_path).read_bytes() == blob


def test_the_same_release_on_another_image_is_a_change_and_check_mode_writes_nothing(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "edge")
    r1 = stage(store, tmp_path, "v1")
    store.switch(r1)
    store.commit(r1, image=A[0], image_id=A[1])
    blob = Path(store.state_path).read_bytes()
    assert store.commit(r1, image=A[0], image_id=B[1], check_mode=True)[0] is True
    assert Path(store.state_path).read_bytes() == blob

    changed, _, after, _ = store.commit(r1, image=A[0], image_id=B[1])
    assert (changed, after) == (True, r1)
    assert known(store, r1)["image_id"] == B[1]
    history = json.loads(Path(store.state_path).read_text())["history"]
    assert history[-1] == {
        "time": history[-1]["time"],
        "action": "image",
        "release": r1,
        "image_id": B[1],
        "image": A[0],
    }
