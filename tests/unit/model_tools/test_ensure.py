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
from model_tools.signing import verify_release

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
    with pytest.raises(InputError, match="set edgeinfer_build_keygen=true"):
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
