"""The KServe v2 routes, called by the real Triton client (tritonclient[http] from PyPI), on the
numbers ONNX Runtime computes for the same windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from edgeinfer_contract import ModelConfig, quality_floor
from testbed.sidecar import normalize, ort_embed, raw_windows

pytest.importorskip("tritonclient.http")


@pytest.fixture
def triton(sidecar, models: Path):
    server = sidecar(models / "current")
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield server, client
    client.close()


def infer(client, x: np.ndarray, binary_in: bool, binary_out: bool | None, **kw):
    tensor = httpclient.InferInput("imu_window", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    outputs = (
        None if binary_out is None else [httpclient.InferRequestedOutput("latent_embeddings", binary_data=binary_out)]
    )
    return client.infer("tcn_encoder", [tensor], outputs=outputs, **kw)


def test_health_and_metadata_through_the_triton_client(triton, origin_config: ModelConfig) -> None:
    server, client = triton
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tcn_encoder")
    assert not client.is_model_ready("resnet50")
    meta = client.get_model_metadata("tcn_encoder")
    version = server.get("/healthz").json()["model_version"]
    assert meta["versions"] == [version]
    assert meta["inputs"] == [{"name": "imu_window", "datatype": "FP32", "shape": [-1, 100, 9]}]
    assert meta["outputs"] == [
        {"name": "latent_embeddings", "datatype": "FP32", "shape": [-1, origin_config.latent_dim]}
    ]
    assert client.get_server_metadata()["name"] == "edgeinfer-sidecar"


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, True), (False, False), (True, None), (False, True)])
def test_infer_equals_onnx_runtime(triton, origin_dir: Path, origin_config: ModelConfig, binary_in, binary_out) -> None:
    server, client = triton
    raw = raw_windows(origin_config, 5, seed=7).astype(np.float32)
    want = ort_embed(origin_dir / "tcn_encoder_for_edgeinfer.onnx", normalize(origin_config, raw))
    result = infer(client, raw, binary_in, binary_out, request_id="r-1")
    got = result.as_numpy("latent_embeddings")
    assert got.shape == (5, origin_config.latent_dim) and got.dtype == np.float32
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= quality_floor("onnxruntime", "model.onnx"), cos
    response = result.get_response()
    assert response["model_name"] == "tcn_encoder" and response["id"] == "r-1"
    # Normalized windows, as /encode's ?normalized=true takes them, give the same answer.
    again = infer(client, normalize(origin_config, raw).astype(np.float32), True, True, parameters={"normalized": True})
    np.testing.assert_allclose(again.as_numpy("latent_embeddings"), got, rtol=1e-5, atol=1e-6)


def test_bad_requests_are_4xx_naming_the_field(triton) -> None:
    server, client = triton
    with pytest.raises(InferenceServerException, match="inputs\\[0\\].shape: expected \\[N, 100, 9\\]"):
        infer(client, np.zeros((1, 100, 8), np.float32), True, True)
    with pytest.raises(InferenceServerException, match="model 'other' not found"):
        tensor = httpclient.InferInput("imu_window", [1, 100, 9], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 100, 9), np.float32))
        client.infer("other", [tensor])
    with pytest.raises(InferenceServerException, match="NaN or Infinity"):
        infer(client, np.full((1, 100, 9), np.nan, np.float32), True, False)
    # In JSON a NaN is not a number at all (the client writes the non-standard token NaN).
    with pytest.raises(InferenceServerException, match=r"\[400\] the inference request is not valid JSON"):
        infer(client, np.full((1, 100, 9), np.nan, np.float32), False, False)
    r = requests.post(server.url + "/v2/models/tcn_encoder/infer", data=b"{not json", timeout=5)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    head = (
        b'{"inputs":[{"name":"imu_window","datatype":"FP32","shape":[1,100,9],"parameters":{"binary_data_size":3600}}]}'
    )
    r = requests.post(
        server.url + "/v2/models/tcn_encoder/infer",
        data=head + b"\0" * 10,
        headers={"Inference-Header-Content-Length": str(len(head))},
        timeout=5,
    )
    assert r.status_code == 400 and "binary_data_size" in r.json()["error"], r.text
    # The range of /encode: a value is finite and within ±1e9, judged as sent. In binary FP32, 2e9;
    # in JSON, 1000000001, which float32 would round to 1e9.
    far = np.zeros((1, 100, 9), np.float32)
    far[0, 3, 7] = 2e9
    with pytest.raises(InferenceServerException, match=r"within ±1e9, got 2000000000\.0 at \[0, 3, 7\]"):
        infer(client, far, True, False)
    data = np.zeros(900)
    data[9 * 99 + 8] = 1000000001
    tensor = {"name": "imu_window", "datatype": "FP32", "shape": [1, 100, 9], "data": data.tolist()}
    r = requests.post(server.url + "/v2/models/tcn_encoder/infer", json={"inputs": [tensor]}, timeout=5)
    assert r.status_code == 400 and "got 1000000001.0 at [0, 99, 8]" in r.json()["error"], r.text
    # A model version that does not serve is a 404 too.
    r = requests.get(server.url + "/v2/models/tcn_encoder/versions/v0/ready", timeout=5)
    assert r.status_code == 404 and "version 'v0' not found" in r.json()["error"]


def test_parameters_and_data_of_the_wrong_type_are_400s_naming_the_field(triton) -> None:
    """Booleans are JSON booleans and numbers JSON numbers: the string "false" would read as true, and
    "0.5" or true as numbers, which /encode refuses too."""
    server, client = triton
    good = {"name": "imu_window", "datatype": "FP32", "shape": [1, 100, 9], "data": [0.0] * 900}
    url = server.url + "/v2/models/tcn_encoder/infer"
    cases = {
        "parameters: expected an object": {"inputs": [good], "parameters": [1]},
        "parameters.normalized: expected true or false, got 'false'": {
            "inputs": [good],
            "parameters": {"normalized": "false"},
        },
        "parameters.binary_data_output: expected true or false": {
            "inputs": [good],
            "parameters": {"binary_data_output": "false"},
        },
        "inputs[0].parameters: expected an object": {"inputs": [dict(good, parameters="x")]},
        "outputs: expected a list": {"inputs": [good], "outputs": 5},
        "outputs[0].parameters: expected an object": {
            "inputs": [good],
            "outputs": [{"name": "latent_embeddings", "parameters": [1]}],
        },
        "outputs[0]: 'other' unknown": {"inputs": [good], "outputs": [{"name": "other"}]},
        "inputs[0].data: expected numbers": {"inputs": [dict(good, data=["0.5"] * 900)]},
    }
    for detail, body in cases.items():
        r = requests.post(url, json=body, timeout=5)
        assert r.status_code == 400 and detail in r.json()["error"], (detail, r.status_code, r.text)
    with_bool = dict(good, data=[0.0] * 899 + [True])
    r = requests.post(url, json={"inputs": [with_bool]}, timeout=5)
    assert r.status_code == 400 and "inputs[0].data: expected numbers" in r.json()["error"], r.text
    # The same request with real booleans is answered, in binary where asked.
    r = requests.post(url, json={"inputs": [good], "parameters": {"normalized": False, "binary_data_output": True}})
    assert r.status_code == 200 and "inference-header-content-length" in r.headers, r.text
