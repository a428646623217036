"""The release manager's logic, on real files: staging, verification, atomic switch, prune, lock."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseError, ReleaseStore, release_id
from edgeinfer_contract import sha256_file, symlink_problem
from tests.unit.plugins.conftest import make_release, new_keypair

# The releases of these tests are signed, as a build signs them, by a key the edge trusts
# (tests/unit/plugins/test_release_trust.py pins what is refused).
PRIVATE, PUBLIC = new_keypair()


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore(tmp_path / "edge" / "opt" / "edgeinfer")


def stage(store: ReleaseStore, tmp_path: Path, version: str, payload: bytes) -> str:
    src = tmp_path / "incoming" / f"{version}-{payload.hex()[:6]}"
    make_release(src, version, payload, private_pem=PRIVATE)
    changed, info = store.stage(src, trusted_keys=[PUBLIC])
    assert changed
    return info["release"]


def test_stage_then_switch_builds_the_layout(store: ReleaseStore, tmp_path: Path) -> None:
    rid = stage(store, tmp_path, "v1", b"one")
    assert rid.startswith("v1-") and len(rid) == len("v1-") + 8
    assert store.current() is None
    changed, before, after = store.switch(rid)
    assert (changed, before, after) == (True, None, rid)
    assert os.readlink(store.current_link) == f"releases/{rid}"  # relative: resolves inside the container too
    assert (Path(store.current_link) / "model.onnx").read_bytes() == b"one" * 1000
    # Served files are read-only.
    assert not os.access(Path(store.path_of(rid)) / "model.onnx", os.W_OK) or os.getuid() == 0
    assert oct(os.stat(Path(store.path_of(rid)) / "model.onnx").st_mode & 0o777) == "0o444"


def test_same_release_again_is_no_change(store: ReleaseStore, tmp_path: Path) -> None:
    rid = stage(store, tmp_path, "v1", b"one")
    again = tmp_path / "again"
    make_release(again, "v1", b"one", private_pem=PRIVATE)
    changed, info = store.stage(again, trusted_keys=[PUBLIC])
    assert not changed and info["release"] == rid
    store.switch(rid)
    assert store.switch(rid)[0] is False


def test_corrupted_artifact_is_refused_and_nothing_is_staged(store: ReleaseStore, tmp_path: Path) -> None:
    src = tmp_path / "bad"
    make_release(src, "v2", b"two", private_pem=PRIVATE)
    data = bytearray((src / "model.onnx").read_bytes())
    data[10] ^= 0xFF
    (src / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match="model.onnx: sha256") as exc:
        store.stage(src, trusted_keys=[PUBLIC])
    assert exc.value.details["problems"]
    assert store.list_releases() == []
    assert (
        not any(p.name.startswith(".incoming") for p in Path(store.staging).glob("*"))
        if Path(store.staging).exists()
        else True
    )


def test_manifest_entry_escaping_the_release_dir_is_refused(store: ReleaseStore, tmp_path: Path) -> None:
    src = tmp_path / "evil"
    make_release(src, "v1", b"one")
    data = json.loads((src / "manifest.json").read_text())
    data["files"][0]["name"] = "../../../etc/passwd"
    (src / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ReleaseError, match="escapes the release directory"):
        store.stage(src)


def test_switch_records_previous_and_rollback_goes_back(store: ReleaseStore, tmp_path: Path) -> None:
    r1 = stage(store, tmp_path, "v1", b"one")
    r2 = stage(store, tmp_path, "v2", b"two")
    store.switch(r1)
    store.switch(r2)
    state = store.read_state()
    assert (state["current"], state["previous"]) == (r2, r1)
    target = store.rollback_target(state)
    assert target == r1
    store.switch(target, reason="rollback")
    assert store.current() == r1
    assert store.read_state()["history"][-1]["action"] == "rollback"


def test_rollback_without_previous_names_the_fix(store: ReleaseStore, tmp_path: Path) -> None:
    store.switch(stage(store, tmp_path, "v1", b"one"))
    with pytest.raises(ReleaseError, match="release=<id>"):
        store.rollback_target(store.read_state())


def test_prune_never_removes_current_previous_or_protected(store: ReleaseStore, tmp_path: Path) -> None:
    ids = []
    for i in range(6):
        ids.append(stage(store, tmp_path, f"v{i}", bytes([65 + i])))
        time.sleep(1.01 if i == 0 else 0)  # distinct staging times for the oldest
    store.switch(ids[0])
    store.switch(ids[5])  # current = v5, previous = v0 (the oldest)
    removed = store.prune(keep=3, protect=[ids[1]])
    assert ids[0] not in removed and ids[5] not in removed and ids[1] not in removed
    left = set(store.list_releases())
    assert {ids[0], ids[5], ids[1]} <= left
    assert len(left) == 3


def test_a_protected_id_that_is_not_staged_takes_no_room(store: ReleaseStore, tmp_path: Path) -> None:
    ids = []
    for i in range(4):
        ids.append(stage(store, tmp_path, f"v{i}", bytes([65 + i])))
        time.sleep(1.01 if i < 3 else 0)  # distinct staging times: v3 is the newest
    store.switch(ids[3])
    # keep=2: the current and the newest other; two protected names that are not on this edge change nothing.
    removed = store.prune(keep=2, protect=["v8-00000000", "v9-00000000"])
    assert sorted(removed) == sorted(ids[:2])
    assert set(store.list_releases()) == {ids[2], ids[3]}


@pytest.mark.parametrize("rid", ["../../staging/v9-00000000", "v1/../../x", "..", ".hidden-00000000", ""])
def test_a_name_that_is_not_a_release_id_never_becomes_a_path(store: ReleaseStore, tmp_path: Path, rid: str) -> None:
    with pytest.raises(ReleaseError, match="is not a release id"):
        store.switch(rid)
    with pytest.raises(ReleaseError, match="is not a release id"):
        store.exists(rid)


def test_switch_to_unstaged_release_lists_what_is_there(store: ReleaseStore, tmp_path: Path) -> None:
    rid = stage(store, tmp_path, "v1", b"one")
    with pytest.raises(ReleaseError, match=rid):
        store.switch("v9-deadbeef")


def test_lock_is_exclusive_reentrant_and_breakable_only_when_stale(store: ReleaseStore) -> None:
    changed, lock, _ = store.acquire("alice@ctl", "run-1", stale_after=60)
    assert changed and lock["holder"] == "alice@ctl"
    assert store.acquire("alice@ctl", "run-1", stale_after=60)[0] is False  # same deploy: re-entrant
    with pytest.raises(ReleaseError, match="being deployed by alice@ctl since") as exc:
        store.acquire("bob@ctl", "run-2", stale_after=60, break_stale=True)  # fresh: never broken
    assert exc.value.details["stale"] is False
    held = json.loads(Path(store.lock_path).read_text())
    held["epoch"] -= 120
    Path(store.lock_path).write_text(json.dumps(held))
    with pytest.raises(ReleaseError, match="lock_break_stale=true"):
        store.acquire("bob@ctl", "run-2", stale_after=60)
    changed, lock, broken = store.acquire("bob@ctl", "run-2", stale_after=60, break_stale=True)
    assert changed and broken["holder"] == "alice@ctl" and lock["holder"] == "bob@ctl"
    assert store.read_state()["history"][-1]["action"] == "lock_broken"
    with pytest.raises(ReleaseError, match="belongs to deploy run-2"):
        store.lock.release("run-1")
    assert store.lock.release("run-2")[0] is True
    assert store.lock.read() is None


@pytest.mark.parametrize(
    ("version", "ok"), [("v72pct", True), ("1.2.3", True), ("a b", True), (".hidden", False), ("", False)]
)
def test_release_id_is_a_safe_directory_name(version: str, ok: bool) -> None:
    if ok:
        rid = release_id(version, "ab" * 32)
        assert "/" not in rid and " " not in rid and rid.endswith("-abababab")
    else:
        with pytest.raises(ReleaseError):
            release_id(version, "ab" * 32)


# -- load only what was verified: symbolic links, and the transfer a refusal leaves ----------------


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_a_symlinked_artifact_is_refused_as_model_tools_verify_refuses_it(
    store: ReleaseStore, tmp_path: Path, where: str
) -> None:
    """The link's target has the listed bytes, so size and sha256 match: the link itself is refused,
    with the message model_tools verify gives (one rule, in edgeinfer_contract)."""
    from model_tools.errors import SignatureError
    from model_tools.signing import verify_release

    src = tmp_path / "linked"
    make_release(src, "v1", b"one", private_pem=PRIVATE)
    config = src / "model_config.json"
    target = tmp_path / "outside.json" if where == "outside" else src / "copy_of_config.json"
    target.write_bytes(config.read_bytes())
    config.unlink()
    config.symlink_to(target)
    problem = f"model_config.json: {symlink_problem(src, 'model_config.json')}"
    assert "symbolic link" in problem

    with pytest.raises(ReleaseError) as edge:
        store.stage(src, trusted_keys=[PUBLIC])
    assert edge.value.details["problems"] == [problem]
    assert store.list_releases() == []

    public = tmp_path / "key.pub"
    public.write_bytes(PUBLIC)
    with pytest.raises(SignatureError) as gpusrv:
        verify_release(src, public)
    assert gpusrv.value.details["problems"] == [problem]


def test_a_link_to_a_directory_above_a_listed_file_is_refused(store: ReleaseStore, tmp_path: Path) -> None:
    src = tmp_path / "nested"
    make_release(src, "v1", b"one")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "extra.bin").write_bytes(b"x")
    (src / "sub").symlink_to(tmp_path / "elsewhere")
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["files"].append(
        {"name": "sub/extra.bin", "size": 1, "sha256": sha256_file(src / "sub/extra.bin"), "role": "extra"}
    )
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match=r"sub/extra\.bin: under sub, a symbolic link"):
        store.stage(src, allow_unsigned=True)


def transfer(store: ReleaseStore, name: str, payload: bytes = b"one") -> Path:
    """A release unpacked where the deploy transfers it: <root>/staging/<release>."""
    src = Path(store.staging) / name
    make_release(src, "v1", payload, private_pem=PRIVATE)
    return src


def test_a_refused_transfer_is_removed_from_the_edge(store: ReleaseStore) -> None:
    src = transfer(store, "v1-refused")
    (src / "model.onnx").write_bytes(b"changed in transit")
    with pytest.raises(ReleaseError, match="model.onnx: size"):
        store.stage(src, trusted_keys=[PUBLIC], remove_source=True)
    assert not src.exists()
    assert os.listdir(store.staging) == [] and store.list_releases() == []


def test_a_staged_transfer_is_removed_and_check_mode_removes_nothing(store: ReleaseStore) -> None:
    src = transfer(store, "v1-ok")
    assert store.stage(src, trusted_keys=[PUBLIC], remove_source=True, check_mode=True)[0] is True
    assert src.is_dir()
    changed, info = store.stage(src, trusted_keys=[PUBLIC], remove_source=True)
    assert changed and store.list_releases() == [info["release"]]
    assert os.listdir(store.staging) == []
    # The same release transferred again (a redeploy after a lost connection): found staged, removed.
    again = transfer(store, "v1-again")
    assert store.stage(again, trusted_keys=[PUBLIC], remove_source=True)[0] is False
    assert not again.exists()


def test_remove_source_takes_only_a_transfer_directory_under_staging(store: ReleaseStore, tmp_path: Path) -> None:
    src = tmp_path / "mine"
    make_release(src, "v1", b"one", private_pem=PRIVATE)
    with pytest.raises(ReleaseError, match="not a transfer directory directly under"):
        store.stage(src, trusted_keys=[PUBLIC], remove_source=True)
    assert (src / "manifest.json").is_file() and store.list_releases() == []
