"""build and adopt: whole releases in the contract layout, atomic and idempotent."""

from __future__ import annotations

import json

import pytest

import model_tools.release as release_mod
from edgeinfer_contract import FILES, GoldenSet, Manifest, ModelConfig
from model_tools.cli import main
from model_tools.errors import ParityError
from model_tools.release import adopt, build


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


def test_rebuilding_the_same_checkpoint_is_a_no_op(release, checkpoint, keys):
    out, first = release
    again = build(checkpoint, out, "0.1.0-test", signing_key=keys[0])
    assert again["changed"] is False and again["digest"] == first["digest"]


def test_build_without_the_dfc_skips_the_hef_with_a_note(tmp_path, checkpoint, no_dfc):
    r = build(checkpoint, tmp_path / "rel", "1.0.0", calibration_count=1024, golden_count=8)
    assert r["hailo"]["skipped"] and "hailo_sdk_client" in r["hailo"]["note"]
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
    } <= set(out)
