"""keygen / manifest / verify: every tamper case is refused."""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from edgeinfer_contract import FILES, key_id, sign, symlink_problem
from model_tools.cli import main
from model_tools.errors import InputError, SignatureError
from model_tools.signing import keygen, verify_release, write_manifest


@pytest.fixture
def rel(tmp_path, release):
    d = tmp_path / "rel"
    shutil.copytree(release[0], d)
    return d


def test_keygen_writes_a_private_key_only_the_owner_reads(keys):
    assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in keys[1].read_bytes()


def test_keygen_force_replaces_a_loose_key_file_with_an_owner_only_one(tmp_path):
    priv = tmp_path / "k.pem"
    keygen(priv)
    old, old_inode = priv.read_bytes(), priv.stat().st_ino
    priv.chmod(0o644)  # an old key file someone loosened
    keygen(priv, force=True)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and priv.read_bytes() != old
    # A new file, not the old one rewritten: the new key was never in a 0644 file, even for a moment.
    assert priv.stat().st_ino != old_inode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_signed_release_verifies(rel, keys, capsys):
    r = verify_release(rel, keys[1])
    assert r["verified"] and r["unlisted"] == [] and r["files"] >= 8
    assert main(["verify", "--release", str(rel), "--public-key", str(keys[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_tampered_file_is_refused(rel, keys):
    blob = bytearray((rel / FILES["onnx"]).read_bytes())
    blob[-10] ^= 1
    (rel / FILES["onnx"]).write_bytes(bytes(blob))
    with pytest.raises(SignatureError, match="model.onnx: sha256"):
        verify_release(rel, keys[1])


def test_missing_file_is_refused(rel, keys):
    (rel / FILES["golden"]).unlink()
    with pytest.raises(SignatureError, match="golden.json: missing"):
        verify_release(rel, keys[1])


def test_tampered_manifest_is_refused(rel, keys):
    text = (rel / FILES["manifest"]).read_text().replace("0.1.0-test", "9.9.9")
    (rel / FILES["manifest"]).write_text(text)
    with pytest.raises(SignatureError, match="does not match"):
        verify_release(rel, keys[1])


def test_wrong_key_is_refused(rel, tmp_path):
    other = keygen(tmp_path / "other.pem")
    with pytest.raises(SignatureError, match="does not match"):
        verify_release(rel, other["public_key"])


def test_unsigned_release_is_refused(rel, keys):
    (rel / FILES["signature"]).unlink()
    with pytest.raises(SignatureError, match="not signed"):
        verify_release(rel, keys[1])


@pytest.mark.parametrize("name", ["../outside.bin", "/etc/passwd", "a/../../b"])
def test_a_signed_entry_escaping_the_directory_is_refused(rel, keys, name):
    manifest = json.loads((rel / FILES["manifest"]).read_text())
    manifest["files"].append({"name": name, "size": 1, "sha256": "0" * 64, "role": "extra"})
    blob = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (rel / FILES["manifest"]).write_bytes(blob)
    (rel / FILES["signature"]).write_bytes(sign(blob, keys[0].read_bytes()))  # validly signed, still refused
    with pytest.raises(SignatureError, match="escapes the release directory"):
        verify_release(rel, keys[1])


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_a_symlinked_file_is_refused_wherever_it_points(rel, keys, tmp_path, where):
    target = tmp_path / "outside.onnx" if where == "outside" else rel / "copy.onnx"
    shutil.copyfile(rel / FILES["onnx"], target)
    (rel / FILES["onnx"]).unlink()
    (rel / FILES["onnx"]).symlink_to(target)
    with pytest.raises(SignatureError, match="model.onnx: a symbolic link") as exc:
        verify_release(rel, keys[1])
    assert exc.value.details["problems"] == [f"model.onnx: {symlink_problem(rel, 'model.onnx')}"]


def test_manifest_refuses_to_list_a_symlink(tmp_path, release):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copyfile(release[0] / FILES["onnx"], tmp_path / "elsewhere.onnx")
    (d / FILES["onnx"]).symlink_to(tmp_path / "elsewhere.onnx")
    with pytest.raises(InputError, match="model.onnx: a symbolic link"):
        write_manifest(d, "1.0.0")
    assert not (d / FILES["manifest"]).exists()


def test_manifest_lists_motif_prototypes_with_their_role(tmp_path, release):
    d = tmp_path / "d"
    shutil.copytree(release[0], d)
    (d / FILES["motif_prototypes"]).write_text(json.dumps({"prototypes": [[0.0] * 64]}))
    roles = {f["name"]: f["role"] for f in write_manifest(d, "1.0.0")["files"]}
    assert roles[FILES["motif_prototypes"]] == "motif_prototypes"


def test_manifest_command_signs_a_directory(tmp_path, keys, release):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copyfile(release[0] / FILES["onnx"], d / FILES["onnx"])
    (d / "notes.txt").write_text("not an artifact")
    r = write_manifest(d, "1.0.0", keys[0])
    assert r["signed"] and r["unlisted"] == ["notes.txt"] and [f["role"] for f in r["files"]] == ["onnx"]
    assert verify_release(d, keys[1])["digest"] == r["digest"]


def test_keygen_names_the_key_and_a_signed_manifest_names_its_signer(tmp_path, keys):
    made = keygen(tmp_path / "keys" / "new.pem")
    assert made["key_id"] == key_id((tmp_path / "keys" / "new.pem.pub").read_bytes())
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700  # a directory made for a key is private
    d = tmp_path / "d"
    d.mkdir()
    (d / FILES["onnx"]).write_bytes(b"opaque model bytes")
    signed = write_manifest(d, "1.0.0", keys[0])
    declared = json.loads((d / FILES["manifest"]).read_text())["signing_key_id"]
    assert signed["key_id"] == declared == key_id(keys[1].read_bytes())
    assert verify_release(d, keys[1])["key_id"] == declared
    unsigned = write_manifest(d, "1.0.0")
    assert unsigned["key_id"] is None and not (d / FILES["signature"]).exists()
    assert "signing_key_id" not in json.loads((d / FILES["manifest"]).read_text())


def test_manifest_of_a_directory_that_is_not_there_is_an_input_error(tmp_path, capsys):
    rc = main(["manifest", "--release", str(tmp_path / "nowhere"), "--model-version", "1.0.0"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert f"release: {tmp_path / 'nowhere'} is not a directory" in err, err


def test_the_manifest_command_keeps_what_the_build_recorded(rel, keys, capsys):
    before = json.loads((rel / FILES["manifest"]).read_text())
    recorded = ("untrained", "embedding_stamp", "model_id", "source_sha256", "source_kind", "build_inputs_sha256")
    assert all(k in before for k in recorded)
    rc = main(["manifest", "--release", str(rel), "--model-version", "1.4.1", "--signing-key", str(keys[0])])
    assert rc == 0, capsys.readouterr().err
    after = json.loads((rel / FILES["manifest"]).read_text())
    assert {k: after.get(k) for k in recorded} == {k: before[k] for k in recorded}
    assert after["model_version"] == "1.4.1" and after["signing_key_id"] == before["signing_key_id"]
    assert verify_release(rel, keys[1])["meta"]["untrained"] is True
    # Unsigned now: the key id of a signature that is no longer there goes with it.
    write_manifest(rel, "1.4.1")
    assert "signing_key_id" not in json.loads((rel / FILES["manifest"]).read_text())
