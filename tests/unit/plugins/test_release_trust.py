"""The edge's trust anchor: which signed (or unsigned) releases it stages, against the keys the
inventory provisions, never a key that comes with the release."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import (
    ContractError,
    ed25519_public_pem,
    key_id,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError
from tests.unit.plugins.conftest import make_release, new_keypair, public_of

A = new_keypair()  # (private, public) PEM
B = new_keypair()
ID_A, ID_B = key_id(A[1]), key_id(B[1])


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore(tmp_path / "edge" / "opt" / "edgeinfer")


def release(tmp_path: Path, name: str, signer: tuple[bytes, bytes] | None = None, **kw) -> Path:
    src = tmp_path / "incoming" / name
    make_release(src, name, name.encode(), private_pem=signer[0] if signer else None, **kw)
    return src


def make_release_manifest(directory: Path, private_pem: bytes) -> None:
    """Write and sign ``directory``'s manifest again for the files it holds now."""
    from edgeinfer_contract import Manifest, sign

    roles = {f.name: f.role for f in Manifest.load(directory / "manifest.json").files}
    manifest = Manifest.build(directory, roles, "v1", signing_key_id=key_id(public_of(private_pem)))
    (directory / "manifest.json").write_bytes(manifest.to_bytes())
    (directory / "manifest.json.sig").write_bytes(sign(manifest.to_bytes(), private_pem))


def nothing_staged(store: ReleaseStore) -> bool:
    return store.list_releases() == [] and not Path(store.state_path).exists()


# -- the key id ------------------------------------------------------------------------------


def test_key_id_is_the_first_16_hex_digits_of_the_sha256_of_the_raw_public_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    raw = load_pem_public_key(A[1]).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(A[1]) == hashlib.sha256(raw).hexdigest()[:16]
    # The same key however the inventory carries it: str or bytes, CRLF, indented, no final newline.
    text = A[1].decode()
    for variant in (text, text.strip(), text.replace("\n", "\r\n"), "\n  " + text.replace("\n", "\n  ")):
        assert key_id(variant) == ID_A
    assert ed25519_public_pem(raw) == A[1]  # what the edge writes is what keygen wrote
    assert ID_A != ID_B


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "expected a PEM public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@host", "expected a PEM public key"),
        (A[0].decode(), "expected a PEM public key"),  # the private key: never that
        (A[1].decode() + B[1].decode(), "one key per entry"),
        ("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "not valid base64"),
        ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", "expected an ed25519 public key"),
    ],
)
def test_key_id_refuses_what_is_not_one_ed25519_public_key(text: str, phrase: str) -> None:
    with pytest.raises(ContractError, match=phrase):
        key_id(text)


# -- unsigned releases -----------------------------------------------------------------------


def test_an_unsigned_release_is_refused_by_default_naming_the_fix(store: ReleaseStore, tmp_path: Path) -> None:
    src = release(tmp_path, "v1")
    for trusted in (None, [], [A[1]]):
        with pytest.raises(ReleaseError, match="is not signed") as exc:
            store.stage(src, trusted_keys=trusted)
        assert "edgeinfer_trusted_keys" in str(exc.value) and "edgeinfer_build_signing_key" in str(exc.value)
    assert nothing_staged(store)


def test_an_unsigned_release_is_staged_unchecked_when_unsigned_releases_are_allowed(
    store: ReleaseStore, tmp_path: Path
) -> None:
    changed, info = store.stage(release(tmp_path, "v1"), trusted_keys=[A[1]], allow_unsigned=True)
    assert changed and (info["signed"], info["key_id"]) == (False, None)
    assert "not signed" in info["note"]
    assert store.read_state()["releases"][info["release"]] | {"staged": ""} == {
        "model_version": "v1",
        "digest": info["digest"],
        "staged": "",
        "signed": False,
        "key_id": None,
    }


# -- signed releases -------------------------------------------------------------------------


def test_a_release_signed_by_an_untrusted_key_is_refused_naming_both_ids(store: ReleaseStore, tmp_path: Path) -> None:
    src = release(tmp_path, "v1", signer=B)
    for allow_unsigned in (False, True):  # a foreign signature is never waved through
        with pytest.raises(ReleaseError, match="does not trust") as exc:
            store.stage(src, trusted_keys=[A[1]], allow_unsigned=allow_unsigned)
        assert ID_B in str(exc.value) and ID_A in str(exc.value), exc.value
        assert exc.value.details == {"key_id": ID_B, "trusted_key_ids": [ID_A]}
    # Signed by an older model_tools, the manifest does not name its key: the refusal says so.
    undeclared = release(tmp_path, "v2", signer=B, declare=False)
    with pytest.raises(ReleaseError, match="a key the manifest does not name") as exc:
        store.stage(undeclared, trusted_keys=[A[1]])
    assert ID_A in str(exc.value)
    assert nothing_staged(store)


def test_a_signed_release_is_refused_when_no_key_is_trusted(store: ReleaseStore, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="trusts no key") as exc:
        store.stage(release(tmp_path, "v1", signer=A), trusted_keys=[])
    assert ID_A in str(exc.value) and "edgeinfer_trusted_keys" in str(exc.value)
    assert nothing_staged(store)


def test_a_manifest_changed_after_signing_is_refused(store: ReleaseStore, tmp_path: Path) -> None:
    src = release(tmp_path, "v3", signer=A)
    # A tampered model with its manifest rewritten to match: every digest agrees, the signature does not.
    (src / "model.onnx").write_bytes(b"tampered" * 1000)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["files"][[f["name"] for f in manifest["files"]].index("model.onnx")] |= {
        "size": 8000,
        "sha256": hashlib.sha256(b"tampered" * 1000).hexdigest(),
    }
    (src / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with pytest.raises(ReleaseError, match=f"does not verify with trusted key {ID_A}"):
        store.stage(src, trusted_keys=[A[1]])
    assert nothing_staged(store)


def test_rotation_from_key_a_to_key_b_with_both_trusted_in_between(store: ReleaseStore, tmp_path: Path) -> None:
    def staged_by(name: str, signer, trusted) -> str:
        changed, info = store.stage(release(tmp_path, name, signer=signer), trusted_keys=[k[1] for k in trusted])
        assert changed and info["signed"] and info["trusted_key_ids"] == sorted(key_id(k[1]) for k in trusted)
        return info["key_id"]

    assert staged_by("v1", A, [A]) == ID_A
    # Both trusted: the fleet takes releases of the old key and of the new one.
    assert staged_by("v2", A, [A, B]) == ID_A
    assert staged_by("v3", B, [A, B]) == ID_B
    # The old key retired: its releases are refused, the new key's go on.
    with pytest.raises(ReleaseError, match=f"signed with key id {ID_A}, which this edge does not trust"):
        store.stage(release(tmp_path, "v4", signer=A), trusted_keys=[B[1]])
    assert staged_by("v5", B, [B]) == ID_B
    known = store.read_state()["releases"]
    assert {known[r]["model_version"]: known[r]["key_id"] for r in known} == {
        "v1": ID_A,
        "v2": ID_A,
        "v3": ID_B,
        "v5": ID_B,
    }


def test_a_key_removed_from_trust_no_longer_lets_its_staged_releases_serve(store: ReleaseStore, tmp_path: Path) -> None:
    """Staged under A, served, then A removed from the inventory: switching back to that release (a
    redeploy, a rollback, a revert) is refused, preflight refuses a deploy of it, and the last good
    release it was stops being the sidecar's fallback."""
    from ansible_collections.edgeinfer.deploy.plugins.module_utils._preflight import survey
    from ansible_collections.edgeinfer.deploy.plugins.module_utils._revert import revert
    from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import provision

    _, old = store.stage(release(tmp_path, "v1", signer=A), trusted_keys=[A[1], B[1]])
    _, new = store.stage(release(tmp_path, "v2", signer=B), trusted_keys=[A[1], B[1]])
    provision(store, [A[1].decode(), B[1].decode()])
    store.switch(old["release"])
    store.mark_good()
    store.switch(new["release"])
    changed, info = provision(store, [B[1].decode()])  # A retired
    assert changed and info["untrusted_last_good"] == old["release"]
    assert store.last_good() is None and store.read_state()["last_good"] is None
    with pytest.raises(
        ReleaseError, match=f"release {old['release']} may not serve: .*{ID_A}.*signed by a trusted key"
    ):
        store.switch(old["release"])
    assert store.current() == new["release"]
    compose = tmp_path / "compose"
    with pytest.raises(ReleaseError, match="may not serve"):
        revert(lambda argv: (1, "", "no docker here"), store, old["release"], compose_dir=str(compose))
    assert store.current() == new["release"] and not compose.exists()  # the refused revert wrote nothing
    p = {"root": store.root, "release": old["release"], "trusted_keys": [B[1].decode()], "allow_unsigned": False}
    facts = survey(lambda argv: (1, "", "no docker here"), p)
    assert "may not serve" in (facts["staged_untrusted"] or "") and facts["staged"] is False  # a deploy stages it
    # B's releases serve on, and A's once A is trusted again.
    assert store.switch(new["release"])[0] is False
    provision(store, [A[1].decode(), B[1].decode()])
    assert store.switch(old["release"])[0] is True


def test_the_staged_files_signed_again_by_a_trusted_key_re_sign_the_staged_copy(
    store: ReleaseStore, tmp_path: Path
) -> None:
    """The files of a staged release signed again with another key (after a key was revoked): once a
    trusted key verifies the new manifest, staging it replaces the staged manifest and signature after
    checking the staged files, and the release serves again. Other files under the id, an unchecked
    build, or files changed on the edge are refused."""
    from ansible_collections.edgeinfer.deploy.plugins.module_utils._preflight import differs, refusals, survey
    from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import provision
    from edgeinfer_contract import Manifest

    _, old = store.stage(release(tmp_path, "v1", signer=A), trusted_keys=[A[1]])
    rid, path = old["release"], Path(old["path"])
    store.switch(rid)
    store.mark_good()
    provision(store, [B[1].decode()])  # A revoked
    p = {"root": store.root, "release": rid, "trusted_keys": [B[1].decode()], "allow_unsigned": False}
    facts = survey(lambda argv: (1, "", "no docker here"), p)
    assert facts["staged"] is False and ID_A in facts["staged_untrusted"] and "release" in differs(facts, p)
    # The same model with another golden set is another content under the id: refused.
    other = release(tmp_path / "g", "v1", signer=B)
    (other / "golden.json").write_text('{"windows": [[0.5]]}')
    make_release_manifest(other, B[0])
    with pytest.raises(ReleaseError, match=r"another manifest, and this build has other files \(golden.json\)"):
        store.stage(other, trusted_keys=[B[1]])
    # Preflight says so before anything changes, given the build's files; the same files may go on.
    listed = [f.to_dict() for f in Manifest.load(other / "manifest.json").files]
    facts = survey(lambda argv: (1, "", "no docker here"), dict(p, release_files=listed))
    assert "other files (golden.json)" in facts["restage_refused"]
    assert facts["restage_refused"] in refusals(facts, dict(p, release_files=listed))
    listed = [f.to_dict() for f in Manifest.load(path / "manifest.json").files]
    assert survey(lambda argv: (1, "", "no docker here"), dict(p, release_files=listed))["restage_refused"] is None
    # Unsigned under allow_unsigned: never replaces a signed copy.
    with pytest.raises(ReleaseError, match="this build has the same files, unsigned"):
        store.stage(release(tmp_path / "u", "v1"), trusted_keys=[], allow_unsigned=True)
    served = {f.name: f.read_bytes() for f in path.iterdir() if f.name not in ("manifest.json", "manifest.json.sig")}
    signature = store.read_signature(str(path))
    changed, info = store.stage(release(tmp_path / "b", "v1", signer=B), trusted_keys=[B[1]], check_mode=True)
    assert changed and info["resigned"] == {"key_id": ID_A}
    assert store.read_signature(str(path)) == signature and store.read_state()["releases"][rid]["key_id"] == ID_A
    changed, info = store.stage(release(tmp_path / "b", "v1", signer=B), trusted_keys=[B[1]])
    assert changed and info["release"] == rid and info["key_id"] == ID_B and info["resigned"] == {"key_id": ID_A}
    assert {f.name: f.read_bytes() for f in path.iterdir() if f.name in served} == served  # the model untouched
    assert oct(os.stat(path / "manifest.json").st_mode & 0o777) == "0o444"
    assert store.read_state()["releases"][rid]["key_id"] == ID_B
    facts = survey(lambda argv: (1, "", "no docker here"), p)
    assert facts["staged"] is True and facts["staged_untrusted"] is None
    assert store.switch(rid)[0] is False  # serves under B
    # Staged again as built: nothing changes.
    assert store.stage(release(tmp_path / "c", "v1", signer=B), trusted_keys=[B[1]])[0] is False
    # Files changed on the edge since staging are not blessed by a new signature.
    os.chmod(path / "model.onnx", 0o644)
    (path / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ReleaseError, match="do not match the manifest"):
        store.stage(release(tmp_path / "d", "v1", signer=A), trusted_keys=[A[1], B[1]])
    assert store.read_state()["releases"][rid]["key_id"] == ID_B


def test_a_signature_is_copied_into_the_release_only_when_it_was_checked(store: ReleaseStore, tmp_path: Path) -> None:
    checked = release(tmp_path, "v1", signer=A)
    _, info = store.stage(checked, trusted_keys=[A[1]])
    assert (Path(info["path"]) / "manifest.json.sig").read_bytes() == (checked / "manifest.json.sig").read_bytes()
    # Signed, but nobody here can check it: in unchecked (allowed), and without its signature.
    unchecked = release(tmp_path, "v2", signer=B)
    _, info = store.stage(unchecked, trusted_keys=[], allow_unsigned=True)
    assert (info["signed"], info["key_id"]) == (False, None)
    assert "without its manifest.json.sig" in info["note"]
    assert sorted(os.listdir(info["path"])) == ["golden.json", "manifest.json", "model.onnx", "model_config.json"]


# -- the trust directory ---------------------------------------------------------------------


def test_trust_writes_the_inventory_keys_and_no_others(store: ReleaseStore) -> None:
    changed, info = store.trust.write([A[1].decode(), B[1].decode(), A[1].decode()])
    assert changed and info == {"trusted_key_ids": sorted([ID_A, ID_B]), "written": sorted([ID_A, ID_B]), "removed": []}
    trust = Path(store.trust_dir)
    assert stat.S_IMODE(trust.stat().st_mode) == 0o755
    for kid, pub in ((ID_A, A[1]), (ID_B, B[1])):
        assert (trust / f"{kid}.pub").read_bytes() == pub
        assert stat.S_IMODE((trust / f"{kid}.pub").stat().st_mode) == 0o644
    assert store.trust.write([B[1].decode() + "\n", A[1].decode().strip()])[0] is False  # idempotent
    # Check mode says what would change and writes nothing.
    assert store.trust.write([B[1].decode()], check_mode=True) == (
        True,
        {"trusted_key_ids": [ID_B], "written": [], "removed": [ID_A]},
    )
    assert sorted(p.name for p in trust.iterdir()) == sorted([f"{ID_A}.pub", f"{ID_B}.pub"])
    assert store.trust.write([B[1].decode()])[0] is True
    assert sorted(p.name for p in trust.iterdir()) == [f"{ID_B}.pub"]


def test_a_key_that_does_not_parse_is_named_and_nothing_is_written(store: ReleaseStore) -> None:
    with pytest.raises(ReleaseError, match=r"trusted_keys\[1\]: expected a PEM public key"):
        store.trust.write([A[1].decode(), A[0].decode()])
    assert not Path(store.trust_dir).exists()


def test_stage_without_trusted_keys_checks_against_the_keys_provisioned_on_the_edge(
    store: ReleaseStore, tmp_path: Path
) -> None:
    store.trust.write([B[1].decode()])
    _, info = store.stage(release(tmp_path, "v1", signer=B))
    assert (info["signed"], info["key_id"], info["trusted_key_ids"]) == (True, ID_B, [ID_B])
    with pytest.raises(ReleaseError, match=f"trusted key ids: {ID_B}"):
        store.stage(release(tmp_path, "v2", signer=A))


# -- the module, in process ------------------------------------------------------------------


def run_module(capsys, **args) -> dict:
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.edgeinfer.deploy.plugins.modules import edgeinfer_release

    with patch_module_args(args), pytest.raises(SystemExit):
        edgeinfer_release.main()
    return json.loads(capsys.readouterr().out)


def test_the_module_stages_what_a_trusted_key_signed_and_refuses_the_rest(
    store: ReleaseStore, tmp_path: Path, capsys
) -> None:
    root = store.root
    trust = {"root": root, "action": "trust", "trusted_keys": [A[1].decode()]}
    would = run_module(capsys, **trust, _ansible_check_mode=True, _ansible_diff=True)
    assert would["changed"] and would["diff"] == {"before": "", "after": f"trust/{ID_A}.pub\n"}
    assert not Path(store.trust_dir).exists()  # check mode wrote nothing
    assert run_module(capsys, **trust)["trusted_key_ids"] == [ID_A]

    stage = {"root": root, "action": "stage", "trusted_keys": [A[1].decode()]}
    res = run_module(capsys, **stage, source=str(release(tmp_path, "v1", signer=A)))
    assert res["changed"] and (res["signed"], res["key_id"]) == (True, ID_A)
    assert res["known"][res["release"]]["key_id"] == ID_A

    res = run_module(capsys, **stage, source=str(release(tmp_path, "v2", signer=B)))
    assert res["failed"] and ID_A in res["msg"] and ID_B in res["msg"]
    assert (res["key_id"], res["trusted_key_ids"]) == (ID_B, [ID_A])

    res = run_module(capsys, **stage, source=str(release(tmp_path, "v3")))
    assert res["failed"] and "edgeinfer_allow_unsigned" in res["msg"]
    res = run_module(capsys, **stage, source=str(release(tmp_path, "v3")), allow_unsigned=True)
    assert res["changed"] and (res["signed"], res["key_id"]) == (False, None)
    assert "not signed" in json.dumps(res["warnings"])
    assert sorted(store.list_releases()) == sorted(res["releases"]) and len(res["releases"]) == 2
