"""model_config, golden set and calibration set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeinfer_contract import GoldenSet, ModelConfig
from model_tools.calibrate import make_calibration, save_calibration
from model_tools.cli import main
from model_tools.config import build_model_config, normalization_of, provenance, read_config
from model_tools.errors import InputError
from model_tools.export import reference_embeddings
from model_tools.golden import golden_inputs, make_golden
from model_tools.model import Architecture
from model_tools.windows import load_user_windows, synthetic_windows


def test_origin_model_config_is_read(origin_dir):
    raw = read_config(origin_dir / "model_config.json")
    norm = normalization_of(raw)
    assert norm is not None and norm.mean[2] == pytest.approx(9.78, abs=1e-5)
    assert Architecture.from_config(raw).latent_dim == 64


def test_model_config_keeps_origin_fields_and_adds_hash_stamp_provenance(origin_dir):
    base = read_config(origin_dir / "model_config.json")
    norm = normalization_of(base)
    prov = provenance(13, "ab" * 32, "ckpt.pth")
    cfg = build_model_config(
        norm=norm,
        model_id="tcn-vae-x",
        model_version="2.0.0",
        arch=Architecture(),
        prov=prov,
        untrained=False,
        files={"onnx_model": "model.onnx"},
        base=base,
    )
    for key in ("export_info", "model_specs", "normalization", "deployment", "files"):
        assert key in cfg
    assert cfg["export_info"]["model_accuracy"] == "72.13%" and cfg["export_info"]["model_version"] == "2.0.0"
    assert cfg["normalization_hash"] == norm.hash()
    assert cfg["embedding_stamp"]["stamp"] == f"tcn-vae-x/64/{norm.hash()[:12]}"
    for key in ("torch", "onnx", "onnxruntime", "opset", "source_checkpoint_sha256", "created", "git"):
        assert key in cfg["provenance"]
    parsed = ModelConfig.from_dict(json.loads(json.dumps(cfg)))
    assert parsed.model_id == "tcn-vae-x" and not parsed.untrained


def test_untrained_config_never_claims_an_accuracy(norm):
    cfg = build_model_config(
        norm=norm,
        model_id="m",
        model_version="0",
        arch=Architecture(),
        prov=provenance(13, None, None),
        untrained=True,
        files={},
        base={"export_info": {"model_accuracy": "72%", "improvement": "+25%"}},
    )
    assert cfg["export_info"]["untrained"] is True and "untrained" in cfg["export_info"]["model_accuracy"]
    assert "improvement" not in cfg["export_info"]


def test_golden_set_roundtrips_in_raw_units_with_pytorch_references(tmp_path, loaded, norm):
    golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, "m")
    golden.save(tmp_path / "golden.json")
    back = GoldenSet.load(tmp_path / "golden.json")
    assert len(back) == 64 and back.meta["reference"] == "pytorch"
    raw = np.asarray(back.windows)
    assert raw.shape == (64, 100, 9) and 8 < raw[..., 2].mean() < 11  # gravity on az, m/s^2
    x, ref = golden_inputs(back, norm)
    np.testing.assert_allclose(reference_embeddings(loaded.model, x), ref, atol=1e-6)


def test_calibration_set_shape_dtype_size(tmp_path, norm):
    arr, report = make_calibration(norm)
    assert arr.shape == (2000, 1, 100, 9) and arr.dtype == np.float32
    save_calibration(tmp_path / "c.npy", arr)
    assert (tmp_path / "c.npy").stat().st_size == 2000 * 900 * 4 + 128  # 6.9 MiB + npy header
    assert report["warnings"] == [] and len(report["channels"]) == 9
    assert all(abs(c["normalized_mean"]) < 1 for c in report["channels"])


def test_calibration_from_user_npy_and_csv(tmp_path, norm):
    raw = synthetic_windows(1100, seed=5)
    np.save(tmp_path / "w.npy", raw)
    arr, report = make_calibration(norm, count=1024, source=tmp_path / "w.npy")
    assert arr.shape == (1024, 1, 100, 9) and report["source"].endswith("w.npy")
    series = raw[:11].reshape(-1, 9)
    lines = ["ax,ay,az,gx,gy,gz,mx,my,mz"] + [",".join(f"{v:.6f}" for v in row) for row in series]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    windows = load_user_windows(tmp_path / "w.csv")
    assert windows.shape == (11, 100, 9)
    np.testing.assert_allclose(windows, raw[:11], atol=1e-5)
    with pytest.raises(InputError, match="at least 1024"):
        make_calibration(norm, source=tmp_path / "w.csv")


def test_calibration_warns_when_data_strays_from_the_normalization(tmp_path, norm):
    raw = synthetic_windows(1024, seed=1)
    raw[..., 2] -= 9.81  # gravity removed: az is far from the model's mean
    raw[..., 6:9] *= 1000  # magnetometer in nT instead of uT
    np.save(tmp_path / "w.npy", raw)
    _, report = make_calibration(norm, count=1024, source=tmp_path / "w.npy")
    text = " ".join(report["warnings"])
    assert "az: mean" in text and "mx:" in text


def test_bad_user_windows_are_input_errors(tmp_path, norm):
    np.save(tmp_path / "bad.npy", np.zeros((4, 50, 9), np.float32))
    with pytest.raises(InputError, match="expected"):
        load_user_windows(tmp_path / "bad.npy")
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    with pytest.raises(InputError, match="9"):
        load_user_windows(tmp_path / "bad.csv")


def test_cli_calibrate_json(tmp_path, origin_dir, capsys):
    rc = main(
        ["calibrate", "--config", str(origin_dir / "model_config.json"), "--out", str(tmp_path / "c.npy"), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["shape"] == [2000, 1, 100, 9] and out["bytes"] == 7_200_000


@pytest.mark.parametrize(
    "content",
    [b"", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (4, 100, 9), }", b"not npy"],
    ids=["empty", "truncated", "foreign"],
)
def test_a_corrupt_npy_is_an_input_error_naming_the_file(tmp_path, content):
    from model_tools.calibrate import load_calibration

    (tmp_path / "c.npy").write_bytes(content)
    with pytest.raises(InputError, match=r"calibration: .*c\.npy is not a plain numeric \.npy array"):
        load_calibration(tmp_path / "c.npy")
    with pytest.raises(InputError, match=r"windows: .*c\.npy is not a plain numeric \.npy array"):
        load_user_windows(tmp_path / "c.npy")
