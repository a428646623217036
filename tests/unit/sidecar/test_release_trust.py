"""The loader reads only files that manifest.json lists, each checked against its sha256 first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeinfer_contract import Manifest
from sidecar.config import Settings
from sidecar.release import Model, ReleaseError, load_release
from testbed.sidecar import make_release, rewrite_manifest


def load(release: Path, **env: str) -> Model:
    settings = Settings.from_env(
        {"EDGEINFER_MODEL_DIR": str(release), "EDGEINFER_BACKEND": "onnxruntime", "EDGEINFER_THREADS": "1", **env}
    )
    return load_release(settings, None)


@pytest.fixture
def loaded() -> Iterator[list[Model]]:
    models: list[Model] = []
    yield models
    for m in models:
        m.backend.close()


@pytest.fixture
def release(tmp_path: Path, origin_dir: Path) -> Path:
    return make_release(
        tmp_path / "rel",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        golden_windows=2,
        extra={"motif_prototypes.json": json.dumps({"prototypes": np.eye(4, 64).tolist()}).encode()},
    )


def test_a_listed_and_matching_release_loads_with_the_manifest_identity(release, loaded):
    model = load(release)
    loaded.append(model)
    manifest = Manifest.load(release / "manifest.json")
    assert model.version == manifest.model_version and model.sha256 == manifest.digest
    assert model.served_file == "model_batch.onnx" and model.motif_prototypes is not None


def test_a_release_without_manifest_is_refused_naming_the_fix(release):
    (release / "manifest.json").unlink()
    with pytest.raises(ReleaseError, match="has no manifest.json") as err:
        load(release)
    assert "model-tools manifest --release" in str(err.value)


def test_an_unreadable_manifest_is_refused(release):
    (release / "manifest.json").write_text('{"model_version": "v1", "files": []}')
    with pytest.raises(ReleaseError, match=r"manifest.json: .*files.*model-tools manifest"):
        load(release)


def test_unlisted_motif_prototypes_are_not_read(release, loaded):
    roles = {f.name: f.role for f in Manifest.load(release / "manifest.json").files}
    del roles["motif_prototypes.json"]
    (release / "manifest.json").write_bytes(Manifest.build(release, roles, "v72pct").to_bytes())
    model = load(release)
    loaded.append(model)
    assert model.motif_prototypes is None
    assert model.motif_scores(np.ones((1, 64), np.float32)) is None  # /infer sends no motif_scores


@pytest.mark.parametrize("name", ["model_batch.onnx", "model_config.json", "golden.json", "motif_prototypes.json"])
def test_a_listed_file_that_changed_after_the_manifest_is_refused(release, name):
    p = release / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=f"do not match manifest.json: {name}: sha256"):
        load(release)


@pytest.mark.parametrize("name", ["model_batch.onnx", "golden.json"])
def test_a_listed_file_that_is_a_symbolic_link_is_refused(release, tmp_path, name):
    """The link's target has the listed bytes: the link itself is refused, as the edge and model_tools refuse it."""
    target = tmp_path / f"elsewhere-{name}"
    (release / name).rename(target)
    (release / name).symlink_to(target)
    with pytest.raises(ReleaseError, match=f"do not match manifest.json: {name}: a symbolic link"):
        load(release)


@pytest.mark.parametrize("name", ["model_config.json", "golden.json"])
def test_a_config_or_golden_set_the_manifest_does_not_list_is_refused(release, name):
    roles = {f.name: f.role for f in Manifest.load(release / "manifest.json").files if f.name != name}
    (release / "manifest.json").write_bytes(Manifest.build(release, roles, "v72pct").to_bytes())
    with pytest.raises(ReleaseError, match=f"manifest.json does not list {name}"):
        load(release)


def test_an_unlisted_model_file_is_never_served(release, loaded):
    roles = {f.name: f.role for f in Manifest.load(release / "manifest.json").files if f.name != "model_batch.onnx"}
    (release / "manifest.json").write_bytes(Manifest.build(release, roles, "v72pct").to_bytes())
    model = load(release)
    loaded.append(model)
    assert model.served_file == "model.onnx"  # the batched graph is there, but not listed
    with pytest.raises(ReleaseError, match="EDGEINFER_ONNX_FILE=model_batch.onnx: manifest.json does not list it"):
        load(release, EDGEINFER_ONNX_FILE="model_batch.onnx")


def test_rewrite_manifest_makes_a_changed_release_load_again(release, loaded):
    """The helper the reload tests use to break a release in one way only."""
    (release / "golden.json").write_text((release / "golden.json").read_text() + "\n")
    with pytest.raises(ReleaseError):
        load(release)
    rewrite_manifest(release)
    loaded.append(load(release))
