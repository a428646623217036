"""What the revert's health check expects of /healthz: never nothing, even when state.json lost the release."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._revert import expected_model
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
