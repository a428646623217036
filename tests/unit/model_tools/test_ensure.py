"""ensure: the release GPUSRV serves, built once per fingerprint and described for the edges by the
release contract's rules (the edgeinfer_build role runs this alone)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeinfer_contract import FILES, Manifest
from model_tools.cli import main
from model_tools.ensure import ensure
from model_tools.errors import InputError
from model_tools.signing import keygen, verify_release

# Small golden and calibration sets: these tests judge the bookkeeping, not the model.
SMALL = ["--golden-count", "8", "--calibration-count", "1024", "--compile", "no"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    art = tmp_path_factory.mktemp("artifacts")
    r = ensure(art, "v1", demo_seed=3, signing_key=str(art / "keys" / "k.pem"), keygen=True, extra_args=SMALL)
    return art, r


def test_the_first_call_builds_and_describes_the_release_as_the_edges_stage_it(built) -> None:
    art, r = built
    rel = r["release"]
    assert r["changed"] and rel["built"] and rel["untrained"] is True
    manifest = Manifest.load(art / "v1" / FILES["manifest"])
    verified = verify_release(art / "v1", (art / "keys" / "k.pem.pub").read_bytes())
    # One rule for the release id, the contract's: the edge stages the release under this name.
    assert rel["release"] == manifest.release_id == verified["release_id"] == f"v1-{manifest.digest[:8]}"
    assert (rel["digest"], rel["signed"], rel["key_id"]) == (manifest.digest, True, verified["key_id"])
    assert [f["name"] for f in rel["files"]] == [f.name for f in manifest.files]
    assert rel["size"] == sum(f.size for f in manifest.files) and rel["hef"] is False
    assert rel["dir"] == str(art / "v1") and Path(rel["source"]).name == "demo-untrained-seed3.pt"
    assert os.stat(art / "keys" / "k.pem").st_mode & 0o777 == 0o600


def test_the_same_call_again_builds_nothing(built) -> None:
    art, r = built
    stamp = (art / "v1" / FILES["manifest"]).stat().st_mtime_ns
    again = ensure(art, "v1", demo_seed=3, signing_key=str(art / "keys" / "k.pem"), keygen=True, extra_args=SMALL)
    assert (again["changed"], again["release"]["built"]) == (False, False)
    assert again["release"]["release"] == r["release"]["release"]
    assert (art / "v1" / FILES["manifest"]).stat().st_mtime_ns == stamp


def test_other_build_arguments_are_another_build(built) -> None:
    art, r = built
    other = SMALL[:1] + ["9"] + SMALL[2:]
    again = ensure(art, "v1", demo_seed=3, signing_key=str(art / "keys" / "k.pem"), keygen=True, extra_args=other)
    assert again["changed"] and again["release"]["built"]
    assert json.loads((art / "v1.build.json").read_text())["extra_args"] == other
    assert len(json.loads((art / "v1" / FILES["golden"]).read_text())["windows"]) == 9


def test_an_edited_config_at_the_same_path_is_another_build(tmp_path: Path, origin_dir: Path) -> None:
    config = tmp_path / "model_config.json"
    config.write_text((origin_dir / "model_config.json").read_text())
    first = ensure(tmp_path / "art", "v1", demo_seed=3, config=str(config), extra_args=SMALL)
    same = ensure(tmp_path / "art", "v1", demo_seed=3, config=str(config), extra_args=SMALL)
    assert (first["changed"], same["changed"]) == (True, False)
    edited = json.loads(config.read_text())
    edited["normalization"]["mean"][0] += 0.5  # the normalization fixed in place
    config.write_text(json.dumps(edited))
    again = ensure(tmp_path / "art", "v1", demo_seed=3, config=str(config), extra_args=SMALL)
    assert again["changed"] and again["release"]["digest"] != first["release"]["digest"]


def test_a_key_without_its_public_half_is_refused_naming_the_fix(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("not read")
    with pytest.raises(InputError, match=r"k\.pem\.pub missing: write the public half with: openssl pkey"):
        ensure(tmp_path, "v1", demo_seed=0, signing_key=str(key))
    with pytest.raises(InputError, match="pass --keygen to create it"):
        ensure(tmp_path, "v1", demo_seed=0, signing_key=str(tmp_path / "absent.pem"))


def test_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="exactly one of --checkpoint, --onnx and --demo-seed"):
        ensure(tmp_path, "v1")
    with pytest.raises(InputError, match="does not exist"):
        ensure(tmp_path, "v1", checkpoint=str(tmp_path / "none.pt"))


def test_the_cli_names_bad_extra_arguments(tmp_path: Path, capsys) -> None:
    rc = main(
        ["ensure", "--artifacts", str(tmp_path), "--model-version", "v1", "--demo-seed", "0", "--extra-args", "x"]
    )
    assert rc == 2 and "--extra-args: expected a JSON list of strings" in capsys.readouterr().err


@pytest.mark.parametrize(
    "version", ["../escaped", "/abs/path", "..", "keys", "v1.build.json", "demo-untrained-seed1.pt"]
)
def test_a_version_that_is_no_release_directory_of_its_own_is_refused_before_any_work(
    tmp_path: Path, capsys, version: str
) -> None:
    art = tmp_path / "art"
    key = art / "keys" / "signing.pem"
    argv = ["ensure", "--artifacts", str(art), "--model-version", version, "--demo-seed", "1"]
    rc = main([*argv, "--signing-key", str(key), "--keygen"])
    err = capsys.readouterr().err
    assert rc == 2 and "--model-version (edgeinfer_build_model_version): " in err and "Traceback" not in err, err
    # Nothing made: no demo checkpoint, no key, and nothing beside the artifacts directory.
    assert not art.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_a_version_whose_directory_holds_the_signing_key_is_refused(tmp_path: Path, capsys) -> None:
    art = tmp_path / "art"
    key = keygen(art / "mine" / "signing.pem")["private_key"]
    rc = main(["ensure", "--artifacts", str(art), "--model-version", "mine", "--demo-seed", "1", "--signing-key", key])
    err = capsys.readouterr().err
    assert rc == 2 and f"would replace --signing-key {key}" in err, err
    assert Path(key).is_file() and sorted(p.name for p in art.iterdir()) == ["mine"]


def test_a_key_whose_public_half_is_another_keys_is_refused(tmp_path: Path) -> None:
    key = keygen(tmp_path / "k.pem")["private_key"]
    keygen(tmp_path / "other.pem", tmp_path / "k.pem.pub", force=True)
    with pytest.raises(InputError, match=r"k\.pem\.pub is not its public half"):
        ensure(tmp_path / "art", "v1", demo_seed=0, signing_key=key)


def test_a_release_that_no_longer_verifies_is_built_again_and_signed_means_verified(
    tmp_path: Path, checkpoint: Path
) -> None:
    art = tmp_path / "art"
    key = str(tmp_path / "keys" / "k.pem")
    first = ensure(art, "v1", checkpoint=str(checkpoint), signing_key=key, keygen=True, extra_args=SMALL)
    # An init checkpoint is untrained, whichever option named it: the build recorded so.
    assert first["release"]["untrained"] is True and first["release"]["signed"] is True
    assert Manifest.load(art / "v1" / FILES["manifest"]).meta["untrained"] is True
    with (art / "v1" / FILES["onnx"]).open("ab") as fh:
        fh.write(b"appended")
    again = ensure(art, "v1", checkpoint=str(checkpoint), signing_key=key, keygen=True, extra_args=SMALL)
    assert again["changed"] and again["release"]["built"] and "did not verify" in again["note"], again
    assert "model.onnx" in again["note"]
    verify_release(art / "v1", Path(f"{key}.pub").read_bytes())
    assert again["release"]["signed"] is True and again["release"]["digest"] == first["release"]["digest"]
    # A signature file that is not the key's signature is no signature: built again too.
    (art / "v1" / FILES["signature"]).write_bytes(b"\0" * 64)
    third = ensure(art, "v1", checkpoint=str(checkpoint), signing_key=key, keygen=True, extra_args=SMALL)
    assert third["changed"] and "does not match" in third["note"] and third["release"]["signed"] is True
    verify_release(art / "v1", Path(f"{key}.pub").read_bytes())


def test_extra_arguments_that_build_refuses_are_an_input_error_not_an_exit(tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match=r'--extra-args \["--int8-floor", "nan"\]: build refused them'):
        ensure(tmp_path, "v1", demo_seed=0, extra_args=["--int8-floor", "nan"])
    assert "argument --int8-floor: expected a cosine similarity" in capsys.readouterr().err
