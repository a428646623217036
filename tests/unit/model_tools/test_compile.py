"""compile: the DFC call sequence and every failure path, against the hailo_sdk_client double."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest

from edgeinfer_contract import FILES, QUALITY_FLOORS
from model_tools.calibrate import make_calibration
from model_tools.cli import main
from model_tools.compile_hef import HEF_MAGIC, compile_hef
from model_tools.errors import CompileError, DfcMissingError, HailoLintError, QuantizationError
from model_tools.export import export, reference_embeddings
from model_tools.golden import golden_inputs, make_golden
from model_tools.parity import cosine_rows

from .conftest import DOUBLES


@pytest.fixture(scope="module")
def hailo_inputs(tmp_path_factory, loaded, norm):
    d = tmp_path_factory.mktemp("hailo")
    export(loaded, norm, d, ("hailo",))
    golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, "m", count=16)
    calib, _ = make_calibration(norm, count=1024)
    return d / FILES["onnx_hailo"], golden, calib


def _double(name: str):  # noqa: ANN202
    sys.path.insert(0, str(DOUBLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DOUBLES))


def test_compile_writes_a_checked_hef_and_metadata(tmp_path, dfc_double, hailo_inputs, norm):
    onnx_path, golden, calib = hailo_inputs
    r = compile_hef(onnx_path, calib, golden, norm, tmp_path)
    hef = (tmp_path / FILES["hef"]).read_bytes()
    assert hef.startswith(HEF_MAGIC)
    desc, _ = _double("hailo_double_hef").unpack(hef)
    assert desc["input_shape"] == [1, 9, 1, 100] and "quantization_param(output_layer1" in desc["model_script"]
    meta = json.loads((tmp_path / FILES["hailo_metadata"]).read_text())
    assert meta["dfc_version"] == "3.33.0" and meta["hailort_version"] == "4.23" == desc["hailort_version"]
    assert meta["hw_arch"] == "hailo8" and meta["input_units"] == "normalized"
    assert meta["dfc_test_double"] is True and len(meta["calibration_sha256"]) == 64
    fid = meta["fidelity"]["emulator_vs_onnxruntime"]
    assert 0.99 <= fid["cosine_min"] < 1.0  # an INT8 graph, not a copy of fp32
    # The floor is the table's, the one the edge's self-check holds a Hailo-8 to.
    assert fid["floor"] == QUALITY_FLOORS["hailo"] and "QUALITY_FLOORS" in fid["floor_source"]
    assert r["hef_sha256"] == meta["hef_sha256"]


def test_the_hef_serves_on_the_runtime_double_what_the_emulator_measured(
    tmp_path, dfc_double, hailo_inputs, norm, monkeypatch
):
    """The HEF is self-contained: the sidecar's Hailo backend loads it from its bytes alone and
    answers with the emulator's INT8 error; a HailoRT older than its DFC's pair refuses it (92)."""
    from sidecar.backends import HailoBackend, HailoDevice, HailoUnavailable

    onnx_path, golden, calib = hailo_inputs
    r = compile_hef(onnx_path, calib, golden, norm, tmp_path / "rel")
    hef = tmp_path / "edge" / FILES["hef"]
    hef.parent.mkdir()
    hef.write_bytes((tmp_path / "rel" / FILES["hef"]).read_bytes())  # alone, as on an edge
    assert str(onnx_path.parent).encode() not in hef.read_bytes()  # it names no file of the build host
    hp = _double("hailo_platform")
    x, ref = golden_inputs(golden, norm)
    monkeypatch.setenv("HAILO_DOUBLE_VERSION", "4.23")
    owner = HailoDevice(hp, None)
    try:
        backend = HailoBackend(owner, hef, 1000)
        y = backend.run(x)
        backend.close()
        emulator = r["fidelity"]["emulator_vs_onnxruntime"]["cosine_min"]
        assert cosine_rows(y, ref).min() == pytest.approx(emulator, abs=1e-4)
        assert np.abs(y - ref).max() > 1e-4
        monkeypatch.setenv("HAILO_DOUBLE_VERSION", "4.18")
        with pytest.raises(HailoUnavailable, match="HAILO_HEF_NOT_SUPPORTED") as err:
            HailoBackend(owner, hef, 1000)
        assert err.value.status == 92
    finally:
        owner.release()


@pytest.mark.parametrize(
    ("mode", "error", "match"),
    [
        ("parser", CompileError, "translate_onnx_model failed: ParsingWithRecommendationException"),
        ("bad_magic", CompileError, "not a HEF"),
        ("poor_fidelity", QuantizationError, "emulator"),
    ],
)
def test_simulated_dfc_failures_write_nothing(
    tmp_path, dfc_double, hailo_inputs, norm, monkeypatch, mode, error, match
):
    monkeypatch.setenv("HAILO_DOUBLE_FAIL", mode)
    onnx_path, golden, calib = hailo_inputs
    with pytest.raises(error, match=match):
        compile_hef(onnx_path, calib, golden, norm, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_without_the_dfc_compile_names_what_to_install_and_exits_3(
    tmp_path, no_dfc, hailo_inputs, norm, capsys, origin_dir
):
    onnx_path, golden, calib = hailo_inputs
    with pytest.raises(DfcMissingError) as err:
        compile_hef(onnx_path, calib, golden, norm, tmp_path / "out")
    assert "hailo_dataflow_compiler" in err.value.message and "hailo.ai/developer-zone" in err.value.message
    import numpy as np

    np.save(tmp_path / "c.npy", calib)
    golden.save(tmp_path / "g.json")
    args = [
        "compile",
        "--onnx",
        str(onnx_path),
        "--calibration",
        str(tmp_path / "c.npy"),
        "--golden",
        str(tmp_path / "g.json"),
        "--config",
        str(origin_dir / "model_config.json"),
        "--out",
        str(tmp_path / "out"),
        "--json",
    ]
    assert main(args) == 3
    assert json.loads(capsys.readouterr().out)["error"] == "dfc_missing"
    assert not (tmp_path / "out").exists()


def test_a_graph_that_breaks_hailo_rules_is_refused_before_the_dfc(
    tmp_path, dfc_double, hailo_inputs, norm, origin_dir
):
    _, golden, calib = hailo_inputs
    with pytest.raises(HailoLintError, match="Slice"):
        compile_hef(origin_dir / "tcn_encoder_for_edgeinfer.onnx", calib, golden, norm, tmp_path)


def test_the_double_rejects_calls_off_the_documented_sequence(dfc_double):
    import hailo_sdk_client

    runner = hailo_sdk_client.ClientRunner(hw_arch="hailo8")
    with pytest.raises(RuntimeError):
        runner.compile()
    with pytest.raises(ValueError):
        hailo_sdk_client.ClientRunner(hw_arch="hailo9")


def test_hailo_smoke_refuses_the_test_double(tmp_path, dfc_double):
    with pytest.raises(DfcMissingError, match="test double"):
        from model_tools.smoke import hailo_smoke

        hailo_smoke(tmp_path)
