"""init -> export (cpu, batch, hailo): parity holds, and a broken export writes nothing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import model_tools.export as export_mod
from edgeinfer_contract import FILES
from model_tools.errors import ParityError
from model_tools.export import export, reference_embeddings
from model_tools.lint_hailo import lint_file
from model_tools.parity import session
from model_tools.windows import normalize, synthetic_windows, to_nchw


def _dims(vi):
    return [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, loaded, norm):
    out = tmp_path_factory.mktemp("export")
    return out, export(loaded, norm, out)


def test_all_targets_pass_parity_at_the_required_tolerance(exported):
    _, result = exported
    for target in ("cpu", "batch", "hailo"):
        parity = result["targets"][target]["parity"]
        assert parity["passed"], parity["problems"]
        assert parity["min_cosine"] >= 0.99999 and parity["max_abs_diff"] <= 1e-4
        assert {w["window"] for w in parity["windows"]} >= {"zeros", "stationary", "walking", "running", "random_0"}


def test_interfaces_match_the_release_format(exported):
    out, _ = exported
    cpu, batch, hailo = (onnx.load(str(out / FILES[k])) for k in ("onnx", "onnx_batch", "onnx_hailo"))
    assert [(i.name, _dims(i)) for i in cpu.graph.input] == [("imu_window", [1, 100, 9])]
    assert [(o.name, _dims(o)) for o in cpu.graph.output] == [("latent_embeddings", [1, 64])]
    assert _dims(batch.graph.input[0]) == ["N", 100, 9]
    assert [(i.name, _dims(i)) for i in hailo.graph.input] == [("imu_window", [1, 9, 1, 100])]
    assert 11 <= hailo.opset_import[0].version <= 13
    assert {n.op_type for n in hailo.graph.node} == {"Conv", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"}
    meta = {p.key: p.value for p in cpu.metadata_props}
    assert meta["untrained"] == "true" and len(meta["normalization_hash"]) == 64


def test_exported_graphs_agree_with_pytorch_on_fresh_windows(exported, loaded, norm):
    out, _ = exported
    x = normalize(synthetic_windows(6, seed=99), norm)
    ref = reference_embeddings(loaded.model, x)
    batch = session(str(out / FILES["onnx_batch"])).run(None, {"imu_window": x})[0]
    hailo = session(str(out / FILES["onnx_hailo"]))
    h = np.concatenate([hailo.run(None, {"imu_window": to_nchw(x)[i : i + 1]})[0] for i in range(6)])
    np.testing.assert_allclose(batch, ref, atol=1e-4)
    np.testing.assert_allclose(h, ref, atol=1e-4)


def test_hailo_export_passes_lint_hailo(exported):
    out, _ = exported
    assert lint_file(out / FILES["onnx_hailo"]).passed


def test_perturbed_weights_fail_parity_and_write_nothing(tmp_path, loaded, norm, monkeypatch):
    real = export_mod._torch_to_onnx

    def perturbed(*args, **kwargs):
        proto = real(*args, **kwargs)
        init = next(i for i in proto.graph.initializer if i.name.startswith("convs1.0.weight"))
        w = numpy_helper.to_array(init).copy()
        w += 0.05 * np.random.default_rng(0).standard_normal(w.shape).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(w, init.name))
        return proto

    monkeypatch.setattr(export_mod, "_torch_to_onnx", perturbed)
    with pytest.raises(ParityError) as err:
        export(loaded, norm, tmp_path / "out", ("cpu", "hailo"))
    problems = err.value.details["parity"]["problems"]
    assert any("cosine" in p or "max abs diff" in p for p in problems)
    assert len(problems) > 1  # every failing window is reported
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert err.value.exit_code == 5


def test_a_later_failing_target_writes_none_of_the_earlier_ones(tmp_path, loaded, norm, monkeypatch):
    real = export_mod._torch_to_onnx

    def break_hailo(module, example, dynamic_batch, opset):
        proto = real(module, example, dynamic_batch, opset)
        if example.dim() == 4:
            proto.graph.output[0].name = "wrong_name"
            proto.graph.node[-1].output[0] = "wrong_name"
        return proto

    monkeypatch.setattr(export_mod, "_torch_to_onnx", break_hailo)
    with pytest.raises(ParityError, match="outputs") as err:
        export(loaded, norm, tmp_path, ("cpu", "batch", "hailo"))
    assert "shapes and values not checked" in " ".join(err.value.details["parity"]["problems"])
    assert list(tmp_path.iterdir()) == []
