"""What the revert's health check expects of /healthz: never nothing, even when state.json lost the release."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._revert import expected_model, revert
from tests.unit.plugins.conftest import make_release, new_keypair

PRIVATE, PUBLIC = new_keypair()


def test_the_expected_model_comes_from_state_json_else_from_the_manifest(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "edge")
    make_release(tmp_path / "incoming" / "v2", "v2", b"two", private_pem=PRIVATE)
    _, info = store.stage(tmp_path / "incoming" / "v2", trusted_keys=[PUBLIC])
    rid = info["release"]
    manifest = store.load_manifest(store.path_of(rid))[0]
    recorded = store.read_state()["releases"][rid]
    assert expected_model(store, rid, recorded) == {"model_version": "v2", "digest": manifest.digest}
    # state.json without the release (removed to start over): the manifest still says what must serve.
    assert expected_model(store, rid, {}) == {"model_version": "v2", "digest": manifest.digest}
    assert manifest.digest.startswith(rid.rsplit("-", 1)[1])


def test_the_revert_returns_what_it_expects_for_the_gates_after_it(tmp_path: Path) -> None:
    """The role's gates after a revert read the revert's ``expected``: a release state.json lost still
    has its model checked."""
    store = ReleaseStore(tmp_path / "edge")
    make_release(tmp_path / "incoming" / "v2", "v2", b"two", private_pem=PRIVATE)
    _, info = store.stage(tmp_path / "incoming" / "v2", trusted_keys=[PUBLIC])
    rid = info["release"]
    with store.update_state() as state:
        state["releases"].pop(rid)
    manifest = store.load_manifest(store.path_of(rid))[0]

    def no_container(argv):  # the docker CLI's answer on an edge where no sidecar runs
        return 1, "", "Error: No such object: edgeinfer-sidecar"

    out = revert(no_container, store, rid, url="http://127.0.0.1:9", check_mode=True)
    assert out["expected"] == {"model_version": "v2", "digest": manifest.digest}
    assert out["applied"] == "restart"
