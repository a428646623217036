"""The sidecar as a real process on 127.0.0.1, serving the origin production ONNX."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client import generate_latest
from starlette.applications import Starlette

from edgeinfer_contract import ModelConfig
from sidecar.app import Service
from sidecar.metrics import Metrics
from testbed.sidecar import (
    broken_onnx,
    dump,
    make_release,
    normalize,
    ort_embed,
    perturbed_onnx,
    point_current,
    raw_windows,
    rewrite_manifest,
)


def test_healthz_names_the_model_that_passed_its_self_check(sidecar, models, origin_config):
    s = sidecar(models / "current")
    r = s.get("/healthz")
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["status"] == "ok"
    assert h["model_version"] == "v72pct"
    assert len(h["model_sha256"]) == 64
    assert h["backend"] == "onnxruntime"
    assert h["normalization_hash"] == origin_config.normalization_hash
    assert h["embedding_stamp"]["stamp"].endswith(origin_config.normalization_hash[:12])
    assert h["self_check"]["passed"] and h["self_check"]["min_cosine"] >= 0.999
    assert h["last_reload"]["outcome"] == "ok"
    assert h["uptime_s"] >= 0
    assert h["hailo_fallback"] is None


def test_encode_equals_onnxruntime_on_the_normalized_window(sidecar, models, origin_onnx, origin_config):
    s = sidecar(models / "current")
    raw = raw_windows(origin_config, 6, seed=7)
    ref = ort_embed(origin_onnx, normalize(origin_config, raw))
    for i in range(3):
        r = s.post("/encode", json={"imu_window": raw[i].tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"latent_embedding", "model_version", "backend", "inference_ms"}
        assert body["backend"] == "onnxruntime" and body["model_version"] == "v72pct"
        np.testing.assert_allclose(np.asarray(body["latent_embedding"], np.float32), ref[i], rtol=1e-5, atol=1e-5)
    # batch form
    r = s.post("/encode", json={"imu_windows": raw.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 6
    np.testing.assert_allclose(np.asarray(r.json()["latent_embeddings"], np.float32), ref, rtol=1e-5, atol=1e-5)
    # binary fast path, JSON answer and binary answer
    r = s.post("/encode", data=raw[0].astype("<f4").tobytes(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["latent_embedding"], np.float32), ref[0], rtol=1e-5, atol=1e-5)
    r = s.post(
        "/encode",
        data=raw[:4].astype("<f4").tobytes(),
        headers={"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"},
    )
    assert r.status_code == 200 and r.headers["x-backend"] == "onnxruntime"
    np.testing.assert_allclose(np.frombuffer(r.content, "<f4").reshape(4, 64), ref[:4], rtol=1e-5, atol=1e-5)
    # the JSON text of an embedding reads back as exactly the float32 values of the binary answer
    octet = "application/octet-stream"
    as_bytes = s.post("/encode", data=raw[5].astype("<f4").tobytes(), headers={"Content-Type": octet, "Accept": octet})
    as_json = s.post("/encode", data=raw[5].astype("<f4").tobytes(), headers={"Content-Type": octet})
    np.testing.assert_array_equal(
        np.asarray(as_json.json()["latent_embedding"], np.float32), np.frombuffer(as_bytes.content, "<f4")
    )
    # already-normalized input, JSON and binary
    norm = normalize(origin_config, raw[1])
    r = s.post("/encode", json={"imu_window": norm.tolist(), "normalized": True})
    np.testing.assert_allclose(np.asarray(r.json()["latent_embedding"], np.float32), ref[1], rtol=1e-5, atol=1e-5)
    r = s.post(
        "/encode?normalized=1", data=norm.astype("<f4").tobytes(), headers={"Content-Type": "application/octet-stream"}
    )
    np.testing.assert_allclose(np.asarray(r.json()["latent_embedding"], np.float32), ref[1], rtol=1e-5, atol=1e-5)
    # another channel order is put back into the model's
    order = list(reversed(origin_config.normalization.channel_order))
    r = s.post("/encode", json={"imu_window": raw[2][:, ::-1].tolist(), "channel_order": order})
    np.testing.assert_allclose(np.asarray(r.json()["latent_embedding"], np.float32), ref[2], rtol=1e-5, atol=1e-5)


def test_infer_keeps_the_edgeinfer_client_contract_without_inventing_motif_scores(
    sidecar, models, origin_onnx, origin_config
):
    s = sidecar(models / "current")
    raw = raw_windows(origin_config, 1, seed=3)
    ref = ort_embed(origin_onnx, normalize(origin_config, raw))[0]
    r = s.post("/infer", json={"x": raw[0].tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["latent"]) == 64
    assert "motif_scores" not in body
    np.testing.assert_allclose(np.asarray(body["latent"], np.float32), ref, rtol=1e-5, atol=1e-5)


def test_infer_returns_motif_scores_when_the_release_ships_prototypes(
    sidecar, tmp_path, origin_dir, origin_onnx, origin_config
):
    protos = np.random.default_rng(5).standard_normal((12, 64)).astype(np.float32)
    rel = make_release(
        tmp_path / "rel",
        origin_onnx,
        origin_dir / "model_config.json",
        extra={"motif_prototypes.json": json.dumps({"prototypes": protos.tolist()}).encode()},
    )
    s = sidecar(rel)
    raw = raw_windows(origin_config, 1, seed=4)
    emb = ort_embed(origin_onnx, normalize(origin_config, raw))[0]
    body = s.post("/infer", json={"x": raw[0].tolist()}).json()
    expected = (protos / np.linalg.norm(protos, axis=1, keepdims=True)) @ (emb / np.linalg.norm(emb))
    np.testing.assert_allclose(body["motif_scores"], expected, rtol=1e-4, atol=1e-5)


def _window(v=0.5):
    return [[v] * 9 for _ in range(100)]


BAD = [
    # (id, route, kwargs, status, field)
    ("missing field", "/encode", {"json": {"window": _window()}}, 422, "imu_window"),
    ("not an object", "/encode", {"json": [1, 2, 3]}, 400, "body"),
    ("not json", "/encode", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "body"),
    ("empty body", "/encode", {"data": b"", "headers": {"Content-Type": "application/json"}}, 400, "body"),
    ("99 rows", "/encode", {"json": {"imu_window": _window()[:99]}}, 422, "imu_window"),
    ("8 channels", "/encode", {"json": {"imu_window": [[0.1] * 8] + _window()[1:]}}, 422, "imu_window[0]"),
    ("string value", "/encode", {"json": {"imu_window": [["a"] * 9] + _window()[1:]}}, 422, "imu_window[0][0]"),
    (
        "numeric string",
        "/encode",
        {"json": {"imu_window": _window()[:5] + [["1.5"] * 9] + _window()[6:]}},
        422,
        "imu_window[5][0]",
    ),
    ("boolean", "/encode", {"json": {"imu_window": [[True] + [0.1] * 8] + _window()[1:]}}, 422, "imu_window[0][0]"),
    (
        "boolean false, normalized",
        "/encode",
        {"json": {"imu_window": _window()[:3] + [[0.1] * 8 + [False]] + _window()[4:], "normalized": True}},
        422,
        "imu_window[3][8]",
    ),
    ("null", "/encode", {"json": {"imu_window": [[None] * 9] + _window()[1:]}}, 422, "imu_window[0][0]"),
    (
        "NaN",
        "/encode",
        {
            "data": dump({"imu_window": _window()}).replace(b"0.5", b"NaN", 1),
            "headers": {"Content-Type": "application/json"},
        },
        422,
        "imu_window[0][0]",
    ),
    (
        "Infinity",
        "/encode",
        {
            "data": dump({"imu_window": _window()}).replace(b"0.5", b"-Infinity", 1),
            "headers": {"Content-Type": "application/json"},
        },
        422,
        "imu_window[0][0]",
    ),
    ("float32 overflow", "/encode", {"json": {"imu_window": [[1e39] * 9] + _window()[1:]}}, 422, "imu_window[0][0]"),
    ("scalar window", "/encode", {"json": {"imu_window": 3}}, 422, "imu_window"),
    ("nested too deep", "/encode", {"json": {"imu_window": [[[0.1]] * 9] * 100}}, 422, "imu_window[0][0]"),
    ("normalized not bool", "/encode", {"json": {"imu_window": _window(), "normalized": "yes"}}, 422, "normalized"),
    (
        "bad channel order",
        "/encode",
        {"json": {"imu_window": _window(), "channel_order": ["ax"] * 9}},
        422,
        "channel_order",
    ),
    ("empty batch", "/encode", {"json": {"imu_windows": []}}, 422, "imu_windows"),
    ("bad window in batch", "/encode", {"json": {"imu_windows": [_window(), _window()[:3]]}}, 422, "imu_windows[1]"),
    ("batch over limit", "/encode", {"json": {"imu_windows": [_window()] * 65}}, 413, "imu_windows"),
    ("both forms", "/encode", {"json": {"imu_window": _window(), "imu_windows": [_window()]}}, 422, "imu_window"),
    (
        "wrong content type",
        "/encode",
        {"data": b"x=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "content-type",
    ),
    (
        "binary short",
        "/encode",
        {"data": b"\0" * 3599, "headers": {"Content-Type": "application/octet-stream"}},
        400,
        "body",
    ),
    (
        "binary NaN",
        "/encode",
        {"data": np.full((100, 9), np.nan, "<f4").tobytes(), "headers": {"Content-Type": "application/octet-stream"}},
        422,
        "body[0][0][0]",
    ),
    (
        "body over limit",
        "/encode",
        {"data": b"[" + b"0," * 3_000_000 + b"0]", "headers": {"Content-Type": "application/json"}},
        413,
        "body",
    ),
    ("infer missing x", "/infer", {"json": {"imu_window": _window()}}, 422, "x"),
    (
        "infer binary refused",
        "/infer",
        {"data": b"\0" * 3600, "headers": {"Content-Type": "application/octet-stream"}},
        415,
        "content-type",
    ),
    ("infer wrong shape", "/infer", {"json": {"x": [[0.1] * 9] * 10}}, 422, "x"),
]


def test_bad_input_battery_gets_4xx_naming_the_field_and_the_process_survives(sidecar, models):
    s = sidecar(models / "current")
    for name, route, kwargs, status, field in BAD:
        r = s.post(route, **kwargs)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
        body = r.json()
        assert body["field"] == field, f"{name}: {body}"
        assert body["expected"], name
    # wrong method and unknown route are 4xx too
    assert s.get("/encode").status_code == 405
    assert s.get("/nope").status_code == 404
    assert s.alive()
    assert s.post("/encode", json={"imu_window": _window()}).status_code == 200
    metrics = s.get("/metrics").text
    assert 'status="500"' not in metrics


def test_release_without_golden_set_is_refused_with_that_reason(sidecar, tmp_path, origin_dir, origin_onnx):
    rel = make_release(tmp_path / "rel", origin_onnx, origin_dir / "model_config.json", golden_windows=0)
    s = sidecar(rel)
    r = s.get("/healthz")
    assert r.status_code == 503
    assert "golden.json" in r.json()["reason"]
    assert s.post("/encode", json={"imu_window": _window()}).status_code == 503
    assert s.alive()


def test_golden_mismatch_fails_the_self_check(sidecar, tmp_path, origin_dir, origin_onnx):
    other = perturbed_onnx(origin_onnx, tmp_path / "other.onnx", scale=-1.0)
    rel = make_release(tmp_path / "rel", origin_onnx, origin_dir / "model_config.json", golden_from=other)
    s = sidecar(rel)
    r = s.get("/healthz")
    assert r.status_code == 503 and "self-check failed" in r.json()["reason"]


def test_admin_reload_needs_the_bearer_token(sidecar, models):
    s = sidecar(models / "current")
    assert s.post("/admin/reload").status_code == 401
    assert s.post("/admin/reload", headers={"Authorization": "Basic abc"}).status_code == 401
    assert s.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    r = s.reload()
    assert r.status_code == 200 and r.json()["outcome"] == "ok"


def _load(s, stop, results, raw):
    session = requests.Session()
    body = raw.astype("<f4").tobytes()
    while not stop.is_set():
        try:
            r = session.post(
                s.url + "/encode", data=body, headers={"Content-Type": "application/octet-stream"}, timeout=10
            )
            results.append((r.status_code, r.json().get("model_version")))
        except requests.RequestException as exc:
            results.append((0, repr(exc)))


def test_reload_under_load_swaps_with_zero_failed_requests(sidecar, models, origin_dir, origin_onnx, origin_config):
    s = sidecar(models / "current")
    new = models / "releases" / "v73"
    make_release(new, perturbed_onnx(origin_onnx, models / "new.onnx"), origin_dir / "model_config.json", version="v73")
    raw = raw_windows(origin_config, 1, seed=11)[0]
    stop, results = threading.Event(), []
    threads = [threading.Thread(target=_load, args=(s, stop, results, raw)) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    point_current(models, new)
    r = s.reload()
    time.sleep(0.7)
    stop.set()
    for t in threads:
        t.join()
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "v73" and r.json()["previous_version"] == "v72pct"
    assert len(results) > 50
    assert [x for x in results if x[0] != 200] == []
    versions = [v for _, v in results]
    assert "v72pct" in versions and "v73" in versions
    assert versions.index("v73") > max(i for i, v in enumerate(versions) if v == "v72pct") - 10  # old, then new
    ref = ort_embed(new / "model.onnx", normalize(origin_config, raw[None]))[0]
    body = s.post("/encode", json={"imu_window": raw.tolist()}).json()
    assert body["model_version"] == "v73"
    np.testing.assert_allclose(np.asarray(body["latent_embedding"], np.float32), ref, rtol=1e-5, atol=1e-5)
    assert s.get("/healthz").json()["model_version"] == "v73"


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("not an onnx", "ONNX Runtime cannot load it"),
        ("missing golden", "golden.json is missing"),
        ("manifest mismatch", "do not match manifest.json"),
        ("wrong golden", "self-check failed"),
        ("no manifest", "has no manifest.json"),
    ],
)
def test_failed_reload_keeps_the_old_model_serving(
    sidecar, models, origin_dir, origin_onnx, origin_config, breakage, reason, tmp_path
):
    s = sidecar(models / "current")
    before = s.get("/healthz").json()
    bad = models / "releases" / "bad"
    make_release(bad, origin_onnx, origin_dir / "model_config.json", version="bad")
    if breakage == "not an onnx":
        broken_onnx(bad / "model_batch.onnx")
        rewrite_manifest(bad)
    elif breakage == "missing golden":
        (bad / "golden.json").unlink()
    elif breakage == "manifest mismatch":
        (bad / "model_config.json").write_text((bad / "model_config.json").read_text().replace("72.13%", "99%"))
    elif breakage == "wrong golden":
        make_release(
            tmp_path / "g",
            perturbed_onnx(origin_onnx, tmp_path / "o.onnx", -1.0),
            origin_dir / "model_config.json",
            manifest=False,
        )
        (bad / "golden.json").write_bytes((tmp_path / "g" / "golden.json").read_bytes())
        rewrite_manifest(bad)
    else:
        (bad / "manifest.json").unlink()
    point_current(models, bad)
    r = s.reload()
    assert r.status_code == 422, r.text
    assert r.json()["outcome"] == "failed" and reason in r.json()["reason"]
    assert r.json()["serving"]["model_version"] == "v72pct"
    h = s.get("/healthz")
    assert h.status_code == 200
    assert h.json()["model_version"] == before["model_version"] and h.json()["model_sha256"] == before["model_sha256"]
    assert h.json()["last_reload"]["outcome"] == "failed"
    assert s.post("/encode", json={"imu_window": _window()}).json()["model_version"] == "v72pct"
    m = s.get("/metrics").text
    assert "edgeinfer_reload_failures_total 1.0" in m


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_move_when_requests_are_served(sidecar, models, origin_config):
    s = sidecar(models / "current")
    m0 = s.get("/metrics")
    assert m0.headers["content-type"].startswith("text/plain")
    raw = raw_windows(origin_config, 4, seed=2)
    for w in raw:
        assert s.post("/encode", json={"imu_window": w.tolist()}).status_code == 200
    s.post("/encode", json={"imu_windows": raw.tolist()})
    s.post("/encode", json={"bad": 1})
    assert s.get("/encode").status_code == 405  # through the router, not the model path
    assert s.get("/nope").status_code == 404
    assert s.get("/v2/models/nope").status_code == 404
    m1 = s.get("/metrics").text
    assert _metric(m1, 'edgeinfer_requests_total{route="/encode",status="200"}') == 5
    assert _metric(m1, 'edgeinfer_requests_total{route="/encode",status="422"}') == 1
    assert _metric(m1, 'edgeinfer_requests_total{route="/encode",status="405"}') == 1
    assert _metric(m1, 'edgeinfer_requests_total{route="other",status="404"}') == 1
    assert _metric(m1, 'edgeinfer_requests_total{route="/v2",status="404"}') == 1
    assert _metric(m1, "edgeinfer_request_duration_seconds_count") >= 6
    assert _metric(m1, "edgeinfer_inference_duration_seconds_count") > _metric(
        m0.text, "edgeinfer_inference_duration_seconds_count"
    )
    assert _metric(m1, "edgeinfer_batch_size_sum") == 8  # 4 single windows + one batch of 4
    assert 'edgeinfer_model_info{backend="onnxruntime"' in m1 and 'model_version="v72pct"' in m1
    assert "edgeinfer_in_flight_requests" in m1
    assert _metric(m1, "edgeinfer_reloads_total") == 1
    assert _metric(m1, "edgeinfer_hailo_fallback") == 0
    assert _metric(m1, "edgeinfer_model_loaded") == 1


def test_openapi_is_served_and_docs_cover_every_route(sidecar, models, repo_root: Path):
    s = sidecar(models / "current")
    spec = s.get("/openapi.json").json()
    doc = (repo_root / "docs" / "api.md").read_text()
    for path in spec["paths"]:
        assert f"`{path}`" in doc or f" {path}" in doc, path


def test_model_version_override_and_seed_aliases(sidecar, models):
    s = sidecar(models / "current", env={"MODEL_VERSION": "v72pct-pinned", "BATCH_SIZE": "1"})
    h = s.get("/healthz").json()
    assert h["model_version"] == "v72pct-pinned"
    assert h["served_file"] == "model.onnx"  # batch 1 prefers the static graph


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("EDGEINFER_PORT", "ninety"),
        ("EDGEINFER_BACKEND", "tpu"),
        ("EDGEINFER_GOLDEN_MIN_COSINE", "2"),
        ("EDGEINFER_ADMIN_TOKEN_FILE", "/nonexistent/token"),
    ],
)
def test_invalid_configuration_fails_loudly_naming_the_variable(sidecar, models, var, value):
    s = sidecar(models / "current", env={var: value}, wait=False)
    assert s.proc.wait(timeout=30) == 2
    assert var in s.output()


def test_int8_and_origin_only_release_dirs(sidecar, tmp_path, origin_dir, origin_onnx, origin_config):
    """A release of just the origin files (no model_batch.onnx) still serves."""
    rel = make_release(tmp_path / "plain", origin_onnx, origin_dir / "model_config.json", batch=False)
    s = sidecar(rel, env={"EDGEINFER_MAX_BATCH": "8"})
    h = s.get("/healthz").json()
    assert h["served_file"] == "model.onnx"
    # a batch on a static batch-1 graph is run window by window and still correct
    raw = raw_windows(origin_config, 3, seed=9)
    ref = ort_embed(origin_onnx, normalize(origin_config, raw))
    body = s.post("/encode", json={"imu_windows": raw.tolist()}).json()
    np.testing.assert_allclose(np.asarray(body["latent_embeddings"], np.float32), ref, rtol=1e-5, atol=1e-5)
    assert ModelConfig.load(rel / "model_config.json").normalization_hash == h["normalization_hash"]


def test_an_endpoint_failure_is_a_json_500_counted_and_not_in_flight():
    """The model routes bypass Starlette's error middleware; their own 500 names the failure."""
    metrics = Metrics()
    service = Service(Starlette(), metrics)  # no lifespan ran: the endpoint finds no state and fails
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"\0" * 3600, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/encode",
        "headers": [(b"content-type", b"application/octet-stream")],
        "query_string": b"",
    }
    asyncio.run(service(scope, receive, send))
    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])
    assert body["error"] == "internal_error" and "log" in body["detail"]
    text = generate_latest(metrics.registry).decode()
    assert _metric(text, 'edgeinfer_requests_total{route="/encode",status="500"}') == 1
    assert _metric(text, "edgeinfer_in_flight_requests") == 0


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the server's main thread (the event loop) and of its other threads together
    (the inference thread; the others sit idle while only /encode is served), from schedstat."""
    out = {"loop": 0.0, "others": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        ns = int((task / "schedstat").read_text().split()[0])
        out["loop" if task.name == str(pid) else "others"] += ns / 1e9
    return out


def test_the_only_connection_s_window_runs_on_the_event_loop_and_a_second_open_one_sends_it_to_the_thread(
    sidecar, models, origin_config
):
    s = sidecar(models / "current")
    window = raw_windows(origin_config, 1, seed=5)[0].astype("<f4").tobytes()
    octet = {"Content-Type": "application/octet-stream"}

    def encode_many(session: requests.Session) -> tuple[dict[str, float], list[float]]:
        before = _thread_cpu(s.proc.pid)
        answers = [session.post(s.url + "/encode", data=window, headers=octet, timeout=30) for _ in range(100)]
        after = _thread_cpu(s.proc.pid)
        embeddings = {tuple(r.json()["latent_embedding"]) for r in answers}
        assert len(embeddings) == 1
        return {k: after[k] - before[k] for k in after}, list(embeddings.pop())

    with requests.Session() as one:
        alone, alone_embedding = encode_many(one)  # one connection, kept alive
        with socket.create_connection(("127.0.0.1", int(s.url.rsplit(":", 1)[1]))):  # a second, idle
            time.sleep(0.2)
            shared, shared_embedding = encode_many(one)
    # An inference costs several times a request's HTTP work, on whichever thread makes it.
    assert alone["others"] * 20 < alone["loop"], alone
    assert shared["others"] > shared["loop"], shared
    assert alone_embedding == shared_embedding  # one ONNX Runtime session, the same answer on either thread
