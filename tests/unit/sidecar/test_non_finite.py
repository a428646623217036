"""A model that answers NaN or Infinity: never sent, a 500 non_finite_output, counted; refused at its self-check."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sidecar.batcher import Batcher, NonFiniteOutput
from sidecar.metrics import Metrics
from testbed.sidecar import make_release, normalize, point_current, raw_windows

OCTET = "application/octet-stream"


def poisoned_onnx(src: Path, dst: Path, threshold: float, value: float = math.nan) -> Path:
    """The same graph (same input and output names), its output plus ``value`` for every window
    whose first normalized input value is above ``threshold``; the other windows unchanged."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    graph = model.graph
    x, out = graph.input[0].name, graph.output[0].name
    before = f"{out}_before_poison"
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == out:
                node.output[i] = before
    graph.initializer.extend(
        [
            helper.make_tensor("poison_starts", TensorProto.INT64, [2], [0, 0]),
            helper.make_tensor("poison_ends", TensorProto.INT64, [2], [1, 1]),
            helper.make_tensor("poison_axes", TensorProto.INT64, [2], [1, 2]),
            helper.make_tensor("poison_threshold", TensorProto.FLOAT, [], [threshold]),
            helper.make_tensor("poison_value", TensorProto.FLOAT, [], [value]),
            helper.make_tensor("poison_zero", TensorProto.FLOAT, [], [0.0]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Slice", [x, "poison_starts", "poison_ends", "poison_axes"], ["poison_first"]),
            helper.make_node("Flatten", ["poison_first"], ["poison_first_2d"], axis=1),
            helper.make_node("Greater", ["poison_first_2d", "poison_threshold"], ["poison_cond"]),
            helper.make_node("Where", ["poison_cond", "poison_value", "poison_zero"], ["poison_add"]),
            helper.make_node("Add", [before, "poison_add"], [out]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def poisoned_release(dest: Path, origin_dir: Path, threshold: float, value: float = math.nan) -> Path:
    """A release of the poisoned graph whose golden references come from the origin model."""
    onnx = poisoned_onnx(
        origin_dir / "tcn_encoder_for_edgeinfer.onnx", dest.parent / f"{dest.name}.onnx", threshold, value
    )
    return make_release(
        dest, onnx, origin_dir / "model_config.json", golden_from=origin_dir / "tcn_encoder_for_edgeinfer.onnx"
    )


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + " ", name + "{")))


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_non_finite_model_output_is_a_500_on_every_route_and_is_counted(
    sidecar, tmp_path, origin_dir, origin_config, value
):
    # Golden windows are about N(0, 1) once normalized: a threshold of 50 leaves them all finite,
    # so the release passes its self-check and serves; a window whose first value is 100 does not.
    s = sidecar(poisoned_release(tmp_path / "rel", origin_dir, threshold=50.0, value=value))
    assert s.get("/healthz").status_code == 200
    good = normalize(origin_config, raw_windows(origin_config, 2, seed=3))
    bad = good.copy()
    bad[:, 0, 0] = 100.0
    assert s.post("/encode", json={"imu_window": good[0].tolist(), "normalized": True}).status_code == 200

    answers = [
        s.post("/encode", json={"imu_window": bad[0].tolist(), "normalized": True}),
        s.post("/encode", json={"imu_windows": [good[0].tolist(), bad[1].tolist()], "normalized": True}),
        s.post("/encode?normalized=1", data=bad[0].astype("<f4").tobytes(), headers={"Content-Type": OCTET}),
        s.post(
            "/encode?normalized=1",
            data=bad.astype("<f4").tobytes(),
            headers={"Content-Type": OCTET, "Accept": OCTET},
        ),
        s.post("/infer", json={"x": bad[0].tolist(), "normalized": True}),
    ]
    for r in answers:
        assert r.status_code == 500, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["error"] == "non_finite_output", body
        assert "NaN or Infinity" in body["detail"]
        assert "latent_embedding" not in body and "latent" not in body
    assert answers[1].json()["detail"].endswith("for 1 of the 2 window(s) of this request")
    # The KServe route: the same 500 in the protocol's own form, {"error": "..."}.
    tensor = {"name": "imu_window", "datatype": "FP32", "shape": [1, 100, 9], "data": bad[0].ravel().tolist()}
    kserve = s.post("/v2/models/tcn_encoder/infer", json={"inputs": [tensor], "parameters": {"normalized": True}})
    assert kserve.status_code == 500 and kserve.headers["content-type"] == "application/json", kserve.text
    assert kserve.json()["error"].startswith("non_finite_output: ") and "NaN or Infinity" in kserve.json()["error"]

    m = s.get("/metrics").text
    assert _metric(m, "edgeinfer_non_finite_outputs_total") == 6
    assert _metric(m, 'edgeinfer_requests_total{route="/v2",status="500"}') == 1
    assert _metric(m, 'edgeinfer_requests_total{route="/encode",status="500"}') == 4
    assert _metric(m, 'edgeinfer_requests_total{route="/infer",status="500"}') == 1
    assert _metric(m, 'edgeinfer_requests_total{route="/encode",status="200"}') == 1
    assert "non_finite_output" in s.output()  # logged (once per model)
    assert s.alive()


class _Backend:
    name = "fake"

    def run(self, x: np.ndarray) -> np.ndarray:
        y = np.ones((x.shape[0], 64), np.float32)
        y[x[:, 0, 0] > 50] = np.nan
        return y


def test_one_window_of_a_micro_batch_that_comes_back_nan_fails_only_its_own_request():
    model = SimpleNamespace(backend=_Backend(), backend_name="fake", version="v-test")
    good, bad = np.zeros((2, 100, 9), np.float32), np.zeros((1, 100, 9), np.float32)
    bad[0, 0, 0] = 100.0

    async def run() -> list[object]:
        batcher = Batcher(lambda: model, 32, Metrics())  # type: ignore[arg-type, return-value]
        batcher.start()
        try:
            # submitted together: however the inference thread batches them, only the bad request fails
            return await asyncio.gather(
                batcher.submit(good, True),
                batcher.submit(bad, True),
                batcher.submit(good[:1], True),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    first, second, third = asyncio.run(run())
    assert isinstance(second, NonFiniteOutput) and "1 of the 1 window(s)" in str(second)
    assert first.embeddings.shape == (2, 64) and np.isfinite(first.embeddings).all()  # type: ignore[union-attr]
    assert third.embeddings.shape == (1, 64)  # type: ignore[union-attr]


def test_self_check_names_non_finite_output_at_load_and_at_reload(sidecar, tmp_path, origin_dir):
    # A threshold below every normalized golden value: the model answers NaN for every window.
    nan_everywhere = poisoned_release(tmp_path / "nan", origin_dir, threshold=-1e30)
    s = sidecar(nan_everywhere)
    h = s.get("/healthz")
    assert h.status_code == 503
    assert "self-check failed" in h.json()["reason"] and "non-finite" in h.json()["reason"]
    assert "for 8 of them" in h.json()["reason"]

    models = tmp_path / "models"
    good = make_release(
        models / "releases" / "v72pct", origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json"
    )
    point_current(models, good)
    s2 = sidecar(models / "current")
    assert s2.get("/healthz").status_code == 200
    point_current(models, poisoned_release(models / "releases" / "inf", origin_dir, threshold=-1e30, value=math.inf))
    r = s2.reload()
    assert r.status_code == 422 and "non-finite" in r.json()["reason"], r.text
    assert s2.get("/healthz").json()["model_version"] == "v72pct"
