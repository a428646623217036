"""quantize-check: INT8 with ONNX Runtime against the fp32 golden references."""

from __future__ import annotations

import numpy as np
import pytest

from edgeinfer_contract import FILES
from model_tools.calibrate import make_calibration
from model_tools.errors import QuantizationError
from model_tools.export import export, reference_embeddings
from model_tools.golden import golden_inputs, make_golden
from model_tools.parity import cosine_rows, session
from model_tools.quantize import quantize_check


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, loaded, norm):
    d = tmp_path_factory.mktemp("q")
    export(loaded, norm, d, ("cpu",))
    golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, "m")
    calib, _ = make_calibration(norm, count=1024)
    return d, golden, calib


def test_int8_figures_and_a_usable_int8_graph(inputs, norm):
    d, golden, calib = inputs
    r = quantize_check(d / FILES["onnx"], calib, golden, norm, d / FILES["onnx_int8"])
    f = r["int8_vs_reference"]
    assert 0.99 <= f["cosine_min"] <= f["cosine_p5"] <= f["cosine_mean"] <= 1.0
    assert f["cosine_mean"] < 1.0 - 1e-9  # it really is quantized
    assert r["fp32_onnx_vs_reference"]["cosine_min"] > 0.99999
    sess = session(str(d / FILES["onnx_int8"]))
    assert [i.name for i in sess.get_inputs()] == ["imu_window"] and sess.get_inputs()[0].shape == [1, 100, 9]
    assert {n.op_type for n in __import__("onnx").load(str(d / FILES["onnx_int8"])).graph.node} >= {
        "QuantizeLinear",
        "DequantizeLinear",
    }
    x, ref = golden_inputs(golden, norm)
    y = sess.run(None, {"imu_window": x[:1]})[0]
    assert cosine_rows(y, ref[:1])[0] == pytest.approx(f["cosine_min"], abs=0.01)


def test_below_the_floor_fails_and_writes_nothing(inputs, norm):
    d, golden, calib = inputs
    target = d / "strict_int8.onnx"
    with pytest.raises(QuantizationError, match="below the floor") as err:
        quantize_check(d / FILES["onnx"], calib, golden, norm, target, floor=0.9999999)
    assert not target.exists() and not list(d.glob(".strict_int8*"))
    assert err.value.details["result"]["int8_vs_reference"]["windows"] == 64
    assert err.value.exit_code == 6


def test_origin_onnx_opset11_is_quantized_after_upgrade(tmp_path, origin_dir, norm, inputs):
    _, _, calib = inputs
    src = origin_dir / "tcn_encoder_for_edgeinfer.onnx"
    sess = session(str(src))
    golden = make_golden(
        lambda x: np.concatenate([sess.run(None, {"imu_window": x[i : i + 1]})[0] for i in range(len(x))]),
        norm,
        "o",
        count=16,
    )
    r = quantize_check(src, calib, golden, norm, tmp_path / "o8.onnx", floor=0.5)
    assert r["opset"] == 13 and 0.5 < r["int8_vs_reference"]["cosine_min"] <= 1.0
