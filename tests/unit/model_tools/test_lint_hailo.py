"""lint-hailo: the origin ONNX fails for its specific reasons; edited graphs fail for theirs."""

from __future__ import annotations

import json

import onnx
import pytest

from model_tools.cli import main
from model_tools.export import build_graph
from model_tools.lint_hailo import lint_file, lint_model


def test_origin_onnx_fails_with_transpose_at_the_input_slice_and_squeeze(origin_dir):
    report = lint_file(origin_dir / "tcn_encoder_for_edgeinfer.onnx")
    assert not report.passed
    assert {"op:Transpose", "op:Slice", "op:Squeeze", "input_layout", "conv_kernel"} <= report.rules()
    by_rule = {v.rule: v for v in report.violations}
    assert "at the input" in by_rule["op:Transpose"].message and by_rule["op:Transpose"].nodes == ["/Transpose"]
    assert len(by_rule["op:Slice"].nodes) == 6 and "pads" in by_rule["op:Slice"].fix
    assert "Flatten" in by_rule["op:Squeeze"].fix
    assert "opset" not in report.rules()  # opset 11 is accepted


def test_cli_lint_hailo_exit_code_and_json(origin_dir, capsys):
    assert main(["lint-hailo", str(origin_dir / "tcn_encoder_for_edgeinfer.onnx"), "--json"]) == 7
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["error"] == "hailo_lint"
    assert any(v["rule"] == "op:Slice" for v in out["violations"])


def test_dynamic_shapes_wrong_opset_and_computed_weights_are_flagged(loaded):
    batch = build_graph(loaded.model, "batch")
    assert {"static_shapes", "input_layout"} <= lint_model(batch).rules()
    hailo = build_graph(loaded.model, "hailo")
    hailo.opset_import[0].version = 17
    conv = next(n for n in hailo.graph.node if n.op_type == "Conv")
    hailo.graph.node.insert(0, onnx.helper.make_node("Identity", [conv.input[1]], ["w_computed"], name="weight_norm"))
    conv.input[1] = "w_computed"
    rules = lint_model(hailo).rules()
    assert {"opset", "conv_weights", "op:Identity"} <= rules


@pytest.mark.parametrize("target", ["hailo"])
def test_hailo_graph_is_clean(loaded, target):
    report = lint_model(build_graph(loaded.model, target))
    assert report.passed, report.summary()
