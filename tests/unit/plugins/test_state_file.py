"""state.json between the processes of an edge: updates serialized, a file of the wrong shape refused
by name, and a prune that a crash cannot leave half done."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils import _release
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseError, ReleaseStore
from tests.unit.plugins.conftest import make_release, new_keypair

PRIVATE, PUBLIC = new_keypair()


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore(tmp_path / "edge")


def stage(store: ReleaseStore, tmp_path: Path, version: str) -> str:
    src = tmp_path / "incoming" / version
    make_release(src, version, version.encode(), private_pem=PRIVATE)
    return store.stage(src, trusted_keys=[PUBLIC])[1]["release"]


def _record_image(root: str, done: multiprocessing.synchronize.Event) -> None:
    ReleaseStore(root).record_image("v9-00000000", image="edgeinfer/sidecar:9")
    done.set()


def test_an_update_from_another_process_waits_for_the_one_in_progress_and_neither_is_lost(
    store: ReleaseStore,
) -> None:
    # The dead-man's watcher and the controller's modules are separate processes on the edge: an
    # update written between another one's read and write would be lost.
    ctx = multiprocessing.get_context("fork")
    done = ctx.Event()
    with store.update_state() as state:
        other = ctx.Process(target=_record_image, args=(store.root, done))
        other.start()
        assert not done.wait(1.0), "the other process wrote state.json while this update held it"
        state["history"].append({"action": "deadman", "outcome": "reverted"})
    other.join(30)
    assert other.exitcode == 0 and done.is_set()
    state = store.read_state()
    assert [h["action"] for h in state["history"]] == ["deadman", "image"]
    assert state["releases"]["v9-00000000"]["image"] == "edgeinfer/sidecar:9"


def test_an_update_that_fails_writes_nothing(store: ReleaseStore) -> None:
    with pytest.raises(RuntimeError), store.update_state() as state:
        state["previous"] = "v1-00000000"
        raise RuntimeError("the block failed")
    assert not os.path.exists(store.state_path)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[]", "holds a JSON list, not an object"),
        ('"v1"', "holds a JSON str, not an object"),
        ('{"history": {}}', "'history' is a dict, not a list"),
        ('{"releases": []}', "'releases' is a list, not a dict"),
    ],
)
def test_a_state_file_of_the_wrong_shape_is_refused_by_name(store: ReleaseStore, text: str, named: str) -> None:
    os.makedirs(store.root)
    Path(store.state_path).write_text(text)
    with pytest.raises(ReleaseError) as err:
        store.read_state()
    assert named in str(err.value) and "restore it or remove it" in str(err.value)


def test_a_prune_that_crashes_midway_leaves_no_half_release_and_the_next_prune_finishes_it(
    store: ReleaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, mid, new = (stage(store, tmp_path, v) for v in ("v1", "v2", "v3"))
    store.switch(new)
    real_rmtree = _release.shutil.rmtree

    def crash(path: str, *args: object, **kwargs: object) -> None:
        os.unlink(os.path.join(path, "manifest.json"))  # part of it is gone, as in a crash mid-delete
        raise OSError("power lost")

    monkeypatch.setattr(_release.shutil, "rmtree", crash)
    with pytest.raises(OSError, match="power lost"):
        store.prune(keep=1)
    # No release is left half deleted under its own name: each is whole, or hidden, or absent.
    (hidden,) = [e for e in os.listdir(store.releases) if e.startswith(".pruning-")]
    assert hidden.startswith((f".pruning-{old}-", f".pruning-{mid}-")), hidden
    for rid in store.list_releases():
        store.verify(store.path_of(rid), store.load_manifest(store.path_of(rid))[0])  # whole
    assert new in store.list_releases() and len(store.list_releases()) == 2

    monkeypatch.setattr(_release.shutil, "rmtree", real_rmtree)
    whole = [r for r in (old, mid) if r in store.list_releases()]
    assert store.prune(keep=1) == whole
    assert os.listdir(store.releases) == [new]
    assert set(store.read_state()["releases"]) == {new}, "the releases of the crashed prune are forgotten too"


def test_a_lock_stamped_in_the_future_reads_as_just_taken(store: ReleaseStore) -> None:
    # A clock stepped back after the lock was taken: its age is 0, not negative.
    store.acquire("ci", "deploy-1", stale_after=60)
    lock = json.loads(Path(store.lock_path).read_text())
    lock["epoch"] += 3600
    Path(store.lock_path).write_text(json.dumps(lock))
    with pytest.raises(ReleaseError, match=r"held 0 s"):
        store.acquire("ci", "deploy-2", stale_after=60)
