"""The release format: every rule of docs/artifacts.md, including the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeinfer_contract import (
    FILES,
    ContractError,
    GoldenSet,
    Manifest,
    ModelConfig,
    Normalization,
    check_member_name,
    check_model_version,
    cosine,
    release_id,
    sign,
    symlink_problem,
    verify_signature,
)
from testbed.packages import foreign_imports, link_problems


def test_origin_model_config_is_read(origin_dir: Path) -> None:
    cfg = ModelConfig.load(origin_dir / "model_config.json")
    assert cfg.latent_dim == 64 and cfg.sequence_length == 100
    assert cfg.normalization.channel_order[:3] == ("ax", "ay", "az")
    assert cfg.normalization.mean[2] == pytest.approx(9.78, abs=1e-5)
    assert len(cfg.normalization_hash) == 64
    assert cfg.stamp["stamp"].startswith("origin-v72pct/64/")
    assert not cfg.untrained


def test_normalization_hash_changes_with_any_parameter(origin_dir: Path) -> None:
    base = json.loads((origin_dir / "model_config.json").read_text())["normalization"]
    h = Normalization.from_dict(base).hash()
    assert Normalization.from_dict(json.loads(json.dumps(base))).hash() == h
    for key, value in (("mean", [0.0] * 9), ("std", [1.0] * 9), ("channel_order", list("abcdefghi"))):
        assert Normalization.from_dict(dict(base, **{key: value})).hash() != h


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"std": [1.0] * 8}, "normalization.std"),
        ({"std": [1.0] * 8 + [0.0]}, "normalization.std[8]"),
        ({"mean": [1.0] * 8 + [float("nan")]}, "normalization.mean[8]"),
        ({"mean": [1.0] * 8 + ["x"]}, "normalization.mean[8]"),
        ({"channel_order": ["ax"] * 9}, "normalization.channel_order"),
        ({"method": "minmax"}, "normalization.method"),
    ],
)
def test_bad_normalization_names_the_field(origin_dir: Path, patch: dict, field: str) -> None:
    data = json.loads((origin_dir / "model_config.json").read_text())
    data["normalization"].update(patch)
    with pytest.raises(ContractError) as exc:
        ModelConfig.from_dict(data)
    assert exc.value.field == field


def test_declared_normalization_hash_must_match(origin_dir: Path) -> None:
    data = json.loads((origin_dir / "model_config.json").read_text())
    data["normalization_hash"] = "0" * 64
    with pytest.raises(ContractError, match="does not match"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "..", ".", "a\\b", "", "a//b", "./a"])
def test_member_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(ContractError, match="escapes|expected a file name"):
        check_member_name(name)


@pytest.mark.parametrize("name", ["model.onnx", "sub/golden.json"])
def test_plain_member_names_pass(name: str) -> None:
    assert check_member_name(name) == name


@pytest.mark.parametrize("version", ["1.4.0", "v72pct", "demo-untrained", "rc_1", "x" * 246])
def test_a_version_that_names_its_release_directory_as_it_is_passes(version: str) -> None:
    assert check_model_version(version) == version
    assert release_id(version, "ab" * 32) == f"{version}-abababab"  # the edge's name keeps it whole


@pytest.mark.parametrize("version", ["", ".", "..", "../x", "/abs/path", ".hidden", "a b", "1.0+cpu", "x" * 247, 1])
def test_a_version_that_would_be_rewritten_or_escape_is_refused(version: object) -> None:
    with pytest.raises(ContractError, match="cannot name a release directory; expected ASCII letters") as exc:
        check_model_version(version)
    assert exc.value.field == "model_version"


def test_release_id_still_rewrites_what_an_older_release_named_loosely() -> None:
    # Releases already on the edges keep their ids: only new versions are held to the strict form.
    assert release_id("a b", "ab" * 32) == "a_b-abababab"


def _release(tmp_path: Path) -> Path:
    d = tmp_path / "rel"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"onnx-bytes" * 100)
    (d / "golden.json").write_text("{}")
    return d


def test_manifest_roundtrip_and_tamper_detection(tmp_path: Path) -> None:
    d = _release(tmp_path)
    m = Manifest.build(d, {"model.onnx": "onnx", "golden.json": "golden"}, "v1")
    again = Manifest.from_bytes(m.to_bytes())
    assert again == Manifest.from_bytes(again.to_bytes())
    assert again.digest == m.entry("onnx").sha256
    assert again.verify_files(d) == []
    (d / "model.onnx").write_bytes(b"onnx-bytez" * 100)  # same size, other bytes
    problems = again.verify_files(d)
    assert len(problems) == 1 and problems[0].startswith("model.onnx: sha256")
    (d / "golden.json").unlink()
    assert "golden.json: missing" in again.verify_files(d)


def test_a_symlink_among_the_listed_files_is_a_problem_and_cannot_be_listed(tmp_path: Path) -> None:
    d = _release(tmp_path)
    m = Manifest.build(d, {"model.onnx": "onnx", "golden.json": "golden"}, "v1")
    (d / "golden.copy").write_text("{}")
    (d / "golden.json").unlink()
    (d / "golden.json").symlink_to("golden.copy")  # same bytes, inside the directory: still a link
    reason = symlink_problem(d, "golden.json")
    assert reason and reason.startswith("a symbolic link (to golden.copy); a release holds regular files only")
    assert m.verify_files(d) == [f"golden.json: {reason}"]
    assert m.verify_files(d, ["model.onnx"]) == []  # only the files asked about
    assert symlink_problem(d, "model.onnx") is None
    with pytest.raises(ContractError, match="a symbolic link") as exc:
        Manifest.build(d, {"golden.json": "golden"}, "v1")
    assert exc.value.field == "files.golden.json"


def test_motif_prototypes_have_a_role_in_the_release_format() -> None:
    assert FILES["motif_prototypes"] == "motif_prototypes.json"


def test_manifest_from_bytes_refuses_an_escaping_entry(tmp_path: Path) -> None:
    d = _release(tmp_path)
    data = json.loads(Manifest.build(d, {"model.onnx": "onnx"}, "v1").to_bytes())
    data["files"][0]["name"] = "../../etc/shadow"
    with pytest.raises(ContractError) as exc:
        Manifest.from_bytes(json.dumps(data).encode())
    assert exc.value.field == "manifest.files[0].name"


def test_signature_refuses_tampered_manifest_and_wrong_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    blob = Manifest.build(_release(tmp_path), {"model.onnx": "onnx"}, "v1").to_bytes()
    sig = sign(blob, pem)
    verify_signature(blob, sig, pub)
    with pytest.raises(ContractError, match="does not match"):
        verify_signature(blob.replace(b'"v1"', b'"v2"'), sig, pub)
    other = Ed25519PrivateKey.generate().public_key()
    other_pub = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ContractError, match="does not match"):
        verify_signature(blob, sig, other_pub)


def test_golden_set_validation_and_roundtrip(tmp_path: Path) -> None:
    window = [[0.0] * 9 for _ in range(100)]
    g = GoldenSet(windows=[window], embeddings=[[1.0] * 64], model_id="m", normalization_hash="h")
    g.save(tmp_path / "golden.json")
    assert GoldenSet.load(tmp_path / "golden.json").embeddings == [[1.0] * 64]
    bad = g.to_dict()
    bad["windows"] = [window[:99]]
    with pytest.raises(ContractError) as exc:
        GoldenSet.from_dict(bad)
    assert exc.value.field == "golden.windows[0]"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [([1, 0], [1, 0], 1.0), ([1, 0], [0, 1], 0.0), ([1, 0], [-1, 0], -1.0), ([0, 0], [1, 0], -1.0)],
)
def test_cosine(a: list[float], b: list[float], expected: float) -> None:
    assert cosine(a, b) == pytest.approx(expected)


def test_cosine_of_nan_is_a_miss() -> None:
    assert cosine([float("nan"), 1.0], [1.0, 1.0]) == -1.0


def test_quality_floor_is_one_table_by_serving_precision():
    from edgeinfer_contract import QUALITY_FLOORS, ContractError, quality_floor, serving_precision

    assert serving_precision("onnxruntime", "model.onnx") == "fp32"
    assert serving_precision("onnxruntime", "releases/v1/model_int8.onnx") == "int8"
    assert serving_precision("hailo", "model.hef") == "hailo"
    assert quality_floor("onnxruntime", "model_batch.onnx") == QUALITY_FLOORS["fp32"]
    assert quality_floor("hailo") == QUALITY_FLOORS["hailo"] < QUALITY_FLOORS["fp32"]
    with pytest.raises(ContractError, match="backend"):
        quality_floor("tensorrt")


def test_module_utils_reach_every_module_of_the_contract_through_a_link() -> None:
    assert link_problems("edgeinfer_contract", "_contract") == []


def test_the_contract_imports_nothing_but_the_standard_library() -> None:
    """The sidecar image and a bare edge Python import it: no third-party package when imported."""
    assert list(foreign_imports("edgeinfer_contract")) == []
