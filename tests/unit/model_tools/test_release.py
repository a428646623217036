"""build and adopt: whole releases in the contract layout, atomic and idempotent."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

import model_tools.release as release_mod
from edgeinfer_contract import FILES, QUALITY_FLOORS, ContractError, GoldenSet, Manifest, ModelConfig, sha256_file
from model_tools.cli import main
from model_tools.errors import ParityError
from model_tools.release import adopt, build

from .conftest import DOUBLES


def test_build_writes_every_artifact_and_reports_what_the_playbook_needs(release, checkpoint):
    out, r = release
    assert r["changed"] and r["signed"] and r["untrained"] is True
    names = {p.name for p in out.iterdir()}
    assert set(r["files"]) | {FILES["manifest"], FILES["signature"]} == names
    for role in (
        "onnx",
        "onnx_batch",
        "onnx_hailo",
        "onnx_int8",
        "hef",
        "config",
        "golden",
        "calibration",
        "hailo_metadata",
    ):
        assert FILES[role] in names
    manifest = Manifest.load(out / FILES["manifest"])
    assert r["digest"] == manifest.digest and manifest.model_version == "0.1.0-test"
    from edgeinfer_contract import sha256_file

    assert r["checkpoint_sha256"] == sha256_file(checkpoint) == manifest.meta["source_sha256"]
    cfg = ModelConfig.load(out / FILES["config"])
    assert cfg.untrained and cfg.stamp["stamp"] == r["embedding_stamp"]
    assert cfg.raw["export_info"]["model_version"] == "0.1.0-test"
    assert GoldenSet.load(out / FILES["golden"]).normalization_hash == cfg.normalization_hash


def test_the_manifest_records_the_measured_int8_and_emulator_minimum_cosines(release):
    out, r = release
    quality = Manifest.load(out / FILES["manifest"]).quality
    assert set(quality) == {"int8", "hailo"}
    int8, hailo = quality["int8"], quality["hailo"]
    assert int8.min_cosine == round(r["int8"]["int8_vs_reference"]["cosine_min"], 6)
    assert hailo.min_cosine == round(r["hailo"]["fidelity"]["emulator_vs_onnxruntime"]["cosine_min"], 6)
    assert (int8.floor, hailo.floor) == (QUALITY_FLOORS["int8"], QUALITY_FLOORS["hailo"])
    assert (int8.file, hailo.file) == (FILES["onnx_int8"], FILES["hef"])
    assert int8.sha256 == sha256_file(out / FILES["onnx_int8"]) and hailo.sha256 == sha256_file(out / FILES["hef"])
    assert int8.windows == hailo.windows == 64
    assert r["edge_serving"].startswith("model.hef for hailo8 (HailoRT 4.23)")


def test_the_release_built_with_the_dfc_serves_on_the_hailo_runtime_double(release, tmp_path, monkeypatch):
    """What the build measured (manifest quality.hailo) is what the edge's Hailo backend gives,
    from the release directory alone; on a HailoRT older than the DFC's pair, the CPU serves."""
    from sidecar.backends import HailoDevice
    from sidecar.config import Settings
    from sidecar.release import load_release

    out, _ = release
    node = tmp_path / "hailo0"
    node.write_text("")
    settings = Settings.from_env(
        {"EDGEINFER_MODEL_DIR": str(out), "EDGEINFER_BACKEND": "hailo", "EDGEINFER_HAILO_DEVICE": str(node),
         "EDGEINFER_THREADS": "1"}
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(DOUBLES))
    sys.modules.pop("hailo_platform", None)
    import hailo_platform

    manifest = Manifest.load(out / FILES["manifest"])
    for version, backend in (("4.23", "hailo"), ("4.18", "onnxruntime")):
        monkeypatch.setenv("HAILO_DOUBLE_VERSION", version)
        owner = HailoDevice(hailo_platform, None)
        try:
            model = load_release(settings, owner)
            info = model.info()
            model.backend.close()
        finally:
            owner.release()
        assert info["backend"] == backend, info
        if backend == "hailo":
            assert info["build_quality"] == manifest.quality["hailo"].to_dict()
            assert info["self_check"]["min_cosine"] == pytest.approx(manifest.quality["hailo"].min_cosine, abs=1e-3)
            assert info["self_check"]["min_cosine"] < 1.0  # the INT8 error reaches the edge
        else:
            assert info["hailo_status"] == 92 and info["backend_reason_code"] == "hailo_fallback_load"
            assert info["build_quality"] is None and info["self_check"]["floor"] == QUALITY_FLOORS["fp32"]
    sys.modules.pop("hailo_platform", None)


def test_rewriting_the_manifest_keeps_the_figures_of_unchanged_files_only(release, tmp_path):
    from model_tools.signing import write_manifest

    rel = tmp_path / "rel"
    shutil.copytree(release[0], rel)
    write_manifest(rel, "0.1.0-again")
    assert set(Manifest.load(rel / FILES["manifest"]).quality) == {"int8", "hailo"}
    (rel / FILES["onnx_int8"]).write_bytes((rel / FILES["onnx"]).read_bytes())  # no longer what was measured
    write_manifest(rel, "0.1.0-again")
    assert set(Manifest.load(rel / FILES["manifest"]).quality) == {"hailo"}


def test_a_manifest_without_quality_still_loads_and_a_bad_record_is_named():
    old = {
        "schema": 1,
        "model_version": "1",
        "files": [{"name": "model.onnx", "size": 1, "sha256": "a" * 64, "role": "onnx"}],
    }
    m = Manifest.from_bytes(json.dumps(old).encode())
    assert m.quality == {} and b"quality" not in m.to_bytes()
    record = {"min_cosine": 1.5, "floor": 0.98, "windows": 8, "file": "model.hef", "sha256": "b" * 64, "reference": "x"}
    with pytest.raises(ContractError, match=r"manifest.quality.hailo.min_cosine: expected a cosine"):
        Manifest.from_bytes(json.dumps({**old, "quality": {"hailo": record}}).encode())
    with pytest.raises(ContractError, match=r"manifest.quality.fp32: expected one of int8, hailo"):
        Manifest.from_bytes(json.dumps({**old, "quality": {"fp32": dict(record, min_cosine=0.9)}}).encode())


def test_rebuilding_the_same_checkpoint_is_a_no_op(release, checkpoint, keys):
    out, first = release
    again = build(checkpoint, out, "0.1.0-test", signing_key=keys[0])
    assert again["changed"] is False and again["digest"] == first["digest"]


def test_a_build_with_other_options_is_not_taken_for_the_existing_release(release, checkpoint, keys, monkeypatch):
    out, _ = release

    class Rebuilt(Exception):
        pass

    def rebuild(*args, **kwargs):
        raise Rebuilt  # the build went on to make a new release: enough to know, without building it

    monkeypatch.setattr(release_mod, "staging_dir", rebuild)
    assert build(checkpoint, out, "0.1.0-test", signing_key=keys[0])["changed"] is False
    for option in ({"require_int8": True}, {"golden_count": 65}, {"hw_arch": "hailo8l"}, {"compile": False}):
        with pytest.raises(Rebuilt):
            build(checkpoint, out, "0.1.0-test", signing_key=keys[0], **option)


def test_build_without_the_dfc_skips_the_hef_with_a_note(tmp_path, checkpoint, no_dfc):
    r = build(checkpoint, tmp_path / "rel", "1.0.0", calibration_count=1024, golden_count=8)
    assert r["hailo"]["skipped"] and "hailo_sdk_client" in r["hailo"]["note"]
    assert r["edge_serving"] == "no HEF: edges will serve ONNX Runtime on CPU"
    assert set(Manifest.load(tmp_path / "rel" / FILES["manifest"]).quality) <= {"int8"}
    assert not r["signed"] and FILES["hef"] not in r["files"] and FILES["onnx_hailo"] in r["files"]
    assert not (tmp_path / "rel" / FILES["signature"]).exists()


def test_a_failing_build_writes_nothing_and_keeps_the_old_release(tmp_path, checkpoint, no_dfc, monkeypatch):
    out = tmp_path / "rel"
    build(checkpoint, out, "1.0.0", calibration_count=1024, golden_count=8)
    before = sorted(p.name for p in out.iterdir())

    def broken(*args, **kwargs):
        raise ParityError("simulated parity failure")

    monkeypatch.setattr(release_mod, "export", broken)
    with pytest.raises(ParityError):
        build(checkpoint, out, "2.0.0", calibration_count=1024, golden_count=8)
    assert sorted(p.name for p in out.iterdir()) == before
    assert Manifest.load(out / FILES["manifest"]).model_version == "1.0.0"
    assert [p.name for p in tmp_path.iterdir()] == ["rel"]  # no staging dir left behind


def test_build_of_the_origin_encoder_only_checkpoint_fails_cleanly(tmp_path, origin_dir, capsys):
    rc = main(
        [
            "build",
            "--checkpoint",
            str(origin_dir / "tcn_encoder_for_edgeinfer.pth"),
            "--config",
            str(origin_dir / "model_config.json"),
            "--out",
            str(tmp_path / "rel"),
            "--model-version",
            "1",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 4 and out["error"] == "checkpoint" and "fc_mu" in out["message"]
    assert not (tmp_path / "rel").exists()


def test_adopt_wraps_the_origin_onnx_with_onnxruntime_references(tmp_path, origin_dir, keys):
    r = adopt(
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        tmp_path / "rel",
        "1.0.0",
        signing_key=keys[0],
        calibration_count=1024,
        golden_count=16,
    )
    rel = tmp_path / "rel"
    golden = GoldenSet.load(rel / FILES["golden"])
    assert golden.meta["reference"] == "onnxruntime" and len(golden) == 16
    assert (rel / FILES["onnx"]).read_bytes() == (origin_dir / "tcn_encoder_for_edgeinfer.onnx").read_bytes()
    assert r["batch"]["passed"] and FILES["onnx_batch"] in r["files"]
    assert r["hailo"]["skipped"]
    assert r["int8"]["int8_vs_reference"]["windows"] == 16
    cfg = ModelConfig.load(rel / FILES["config"])
    assert cfg.raw["export_info"]["model_accuracy"] == "72.13%" and not cfg.untrained
    assert cfg.raw["provenance"]["source_onnx_sha256"] == r["source_onnx_sha256"]
    from model_tools.signing import verify_release

    assert verify_release(rel, keys[1])["digest"] == r["digest"]


def test_cli_build_json_keys(tmp_path, checkpoint, no_dfc, capsys):
    rc = main(
        [
            "build",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "rel"),
            "--model-version",
            "3",
            "--calibration-count",
            "1024",
            "--golden-count",
            "8",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"]
    assert out["edge_serving"] == "no HEF: edges will serve ONNX Runtime on CPU"
    assert out["int8"]["floor"] == QUALITY_FLOORS["int8"]
    assert {
        "changed",
        "release",
        "checkpoint_sha256",
        "model_version",
        "model_id",
        "digest",
        "signed",
        "files",
        "embedding_stamp",
        "export",
        "calibration",
        "int8",
        "hailo",
        "edge_serving",
    } <= set(out)


def test_a_calibration_source_that_is_not_there_is_an_input_error_naming_it(tmp_path, checkpoint, no_dfc):
    from model_tools.errors import InputError

    with pytest.raises(InputError, match=r"windows file .*missing\.npy does not exist"):
        build(checkpoint, tmp_path / "rel", "1.0.0", calibration_source=tmp_path / "missing.npy", golden_count=8)
    assert not (tmp_path / "rel").exists()


def test_a_release_built_without_the_dfc_is_built_again_where_the_dfc_is(tmp_path, checkpoint, monkeypatch):
    from .conftest import _forget_dfc

    out = tmp_path / "rel"
    _forget_dfc()
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)  # no DFC: no HEF
    build(checkpoint, out, "1.0.0", calibration_count=1024, golden_count=8)
    assert build(checkpoint, out, "1.0.0", calibration_count=1024, golden_count=8)["changed"] is False

    class Rebuilt(Exception):
        pass

    def rebuild(*args, **kwargs):
        raise Rebuilt

    monkeypatch.setattr(release_mod, "staging_dir", rebuild)
    monkeypatch.delitem(sys.modules, "hailo_sdk_client")
    monkeypatch.syspath_prepend(str(DOUBLES))  # the DFC is here now: the release can have its HEF
    try:
        with pytest.raises(Rebuilt):
            build(checkpoint, out, "1.0.0", calibration_count=1024, golden_count=8)
    finally:
        _forget_dfc()
