"""A candidate model in shadow beside the serving one (POST/DELETE /admin/shadow, GET /admin/shadow/report).

Real releases: the origin production ONNX, its INT8 form (ONNX Runtime static quantization, as
`model_tools quantize-check` makes it) and two untrained models of different seeds made by
`model_tools init` and `model_tools export`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from edgeinfer_contract import GoldenSet, Manifest, ModelConfig
from sidecar.config import ConfigError, Settings
from testbed.sidecar import REPO, make_release, normalize, ort_embed, point_current

TOKEN = {"Authorization": "Bearer test-admin-token"}
PROTOTYPES = np.random.default_rng(21).standard_normal((6, 64)).astype(np.float32)


def random_walk(cfg: ModelConfig, n: int, seed: int) -> np.ndarray:
    """Raw windows that drift like a sensor trace: a random walk around the normalization mean."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(cfg.normalization.mean, np.float32)
    std = np.asarray(cfg.normalization.std, np.float32)
    return (mean + std * np.cumsum(0.2 * rng.standard_normal((n, 100, 9)), axis=1)).astype(np.float32)


def seeded_onnx(out: Path, seed: int, config: Path) -> Path:
    """An untrained model of the origin architecture and normalization, seeded (model_tools init + export)."""
    env_py = [sys.executable, "-m", "model_tools"]
    ckpt = out / f"seed{seed}.pth"
    for cmd in (
        [*env_py, "init", "--seed", str(seed), "--config", str(config), "--out", str(ckpt), "--json"],
        [*env_py, "export", "--checkpoint", str(ckpt), "--config", str(config), "--out", str(out / f"seed{seed}"),
         "--target", "cpu", "--json"],
    ):  # fmt: skip
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    return out / f"seed{seed}" / "model.onnx"


@pytest.fixture(scope="module")
def ab_root(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Path:
    """/models with releases/{v72pct, v72pct-int8, seed1, seed2, bad-golden} and current -> v72pct."""
    from model_tools.quantize import quantize_check

    work = tmp_path_factory.mktemp("ab")
    root = work / "models"
    onnx, config = origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json"
    motifs = {"motif_prototypes.json": json.dumps({"prototypes": PROTOTYPES.tolist()}).encode()}
    origin = make_release(root / "releases" / "v72pct", onnx, config, extra=motifs)
    point_current(root, origin)

    # The INT8 form of the same model: the same model.onnx (so the same release digest) plus model_int8.onnx.
    int8 = make_release(root / "releases" / "v72pct-int8", onnx, config, version="v72pct-int8", extra=motifs)
    cfg = ModelConfig.load(config)
    # Calibrated on windows of the traffic's kind: calibrated on windows drawn around the mean
    # instead, the same INT8 model scores linear CKA 0.62 against fp32 on random-walk traffic.
    calibration = normalize(cfg, random_walk(cfg, 256, seed=11))
    quantize_check(int8 / "model.onnx", calibration, GoldenSet.load(int8 / "golden.json"), cfg.normalization,
                   int8 / "model_int8.onnx")  # fmt: skip
    roles = {f.name: f.role for f in Manifest.load(int8 / "manifest.json").files} | {"model_int8.onnx": "onnx_int8"}
    (int8 / "manifest.json").write_bytes(Manifest.build(int8, roles, "v72pct-int8").to_bytes())

    seed1, seed2 = seeded_onnx(work, 1, config), seeded_onnx(work, 2, config)
    make_release(root / "releases" / "seed1", seed1, config, version="seed1")
    make_release(root / "releases" / "seed2", seed2, config, version="seed2")
    # golden.json of another model: it fails its self-check
    make_release(root / "releases" / "bad-golden", seed2, config, version="bad-golden", golden_from=seed1)
    return root


def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def shadow_env(root: Path, **extra: str) -> dict[str, str]:
    return {"EDGEINFER_SHADOW_ROOT": str(root), "EDGEINFER_SHADOW_SHARE": "1", "EDGEINFER_SHADOW_QUEUE_WINDOWS": "4096",
            "EDGEINFER_SHADOW_MIN_WINDOWS": "200", **extra}  # fmt: skip


def send(server: Any, windows: np.ndarray, batch: int = 25) -> np.ndarray:
    out = []
    for i in range(0, len(windows), batch):
        r = server.post("/encode", json={"imu_windows": windows[i : i + batch].tolist()})
        assert r.status_code == 200, r.text
        out.append(np.asarray(r.json()["latent_embeddings"], np.float32))
    return np.concatenate(out)


def report_after(server: Any, windows: int) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        r = server.get("/admin/shadow/report", headers=TOKEN)
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["paired_windows_total"] + body["error_windows"] >= windows else None

    return wait_for(ready)


def metric(text: str, name: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " ") or ln.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def test_int8_shadow_of_the_serving_model_agrees_near_1_and_reports_cosine(sidecar, ab_root, origin_dir):
    s = sidecar(ab_root / "current", shadow_env(ab_root))
    r = s.post("/admin/shadow", headers=TOKEN, json={"release": "releases/v72pct-int8", "onnx_file": "model_int8.onnx"})
    assert r.status_code == 200, r.text
    shadow = r.json()["shadow"]
    assert shadow["served_file"] == "model_int8.onnx" and shadow["self_check"]["passed"]
    assert r.json()["serving"] == "v72pct"

    cfg = ModelConfig.load(origin_dir / "model_config.json")
    windows = random_walk(cfg, 300, seed=5)
    answers = send(s, windows)
    # the serving model's answers are fp32 ONNX Runtime's, shadow or not
    ref = ort_embed(origin_dir / "tcn_encoder_for_edgeinfer.onnx", normalize(cfg, windows[:20]))
    np.testing.assert_allclose(answers[:20], ref, rtol=1e-4, atol=1e-4)

    report = report_after(s, 300)
    assert report["windows"] == 300 and report["conclusive"] is True and report["min_windows"] == 200
    assert report["same_network"] is True
    assert report["linear_cka"] > 0.99 and report["knn_jaccard"] > 0.55, report
    assert report["cosine"]["mean"] > 0.98 and report["cosine"]["min"] <= report["cosine"]["mean"]
    assert report["motif_agreement"]["same_label"] > 0.8 and report["motif_agreement"]["prototypes"] == [6, 6]
    assert report["dropped_windows"] == 0 and report["error_windows"] == 0
    assert report["inference_ms"]["primary"]["mean"] > 0 and report["inference_ms"]["shadow"]["mean"] > 0
    assert report["shadow"]["served_file"] == "model_int8.onnx" and report["primary"]["model_version"] == "v72pct"

    text = s.get("/metrics").text
    assert metric(text, "edgeinfer_shadow_linear_cka") == pytest.approx(report["linear_cka"], abs=1e-6)
    assert metric(text, "edgeinfer_shadow_knn_jaccard") == pytest.approx(report["knn_jaccard"], abs=1e-6)
    assert metric(text, "edgeinfer_shadow_report_windows") == 300
    assert metric(text, "edgeinfer_shadow_report_conclusive") == 1
    assert metric(text, "edgeinfer_shadow_mirrored_windows_total") == 300
    assert metric(text, "edgeinfer_shadow_loaded") == 1

    r = requests.delete(s.url + "/admin/shadow", headers=TOKEN, timeout=30)
    assert r.status_code == 200 and r.json()["final_report"]["windows"] == 300
    assert s.get("/admin/shadow/report", headers=TOKEN).status_code == 404
    assert metric(s.get("/metrics").text, "edgeinfer_shadow_loaded") == 0
    assert s.post("/encode", json={"imu_window": windows[0].tolist()}).status_code == 200


def test_a_differently_seeded_shadow_agrees_clearly_less_and_reports_no_cosine(sidecar, ab_root, origin_dir):
    s = sidecar(ab_root / "releases" / "seed1", shadow_env(ab_root))
    r = s.post("/admin/shadow", headers=TOKEN, json={"release": str(ab_root / "releases" / "seed2")})
    assert r.status_code == 200, r.text
    windows = random_walk(ModelConfig.load(origin_dir / "model_config.json"), 300, seed=5)
    send(s, windows)
    report = report_after(s, 300)
    assert report["windows"] == 300 and report["conclusive"] is True and report["same_network"] is False
    assert report["cosine"] is None and "different bases" in report["cosine_note"]
    assert report["motif_agreement"] is None  # neither release ships prototypes
    assert report["linear_cka"] < 0.8 and report["knn_jaccard"] < 0.4, report


def test_a_report_over_too_few_windows_says_it_is_inconclusive(sidecar, ab_root, origin_dir):
    s = sidecar(ab_root / "current", shadow_env(ab_root))
    assert s.post("/admin/shadow", headers=TOKEN, json={"release": "releases/seed1"}).status_code == 200
    send(s, random_walk(ModelConfig.load(origin_dir / "model_config.json"), 40, seed=6), batch=20)
    report = report_after(s, 40)
    assert report["windows"] == 40 and report["conclusive"] is False and report["min_windows"] == 200
    assert "fewer than the 200" in report["inconclusive_reason"]
    assert metric(s.get("/metrics").text, "edgeinfer_shadow_report_conclusive") == 0


def test_the_mirrored_share_is_a_share(sidecar, ab_root, origin_dir):
    s = sidecar(ab_root / "current", shadow_env(ab_root, EDGEINFER_SHADOW_SHARE="0.25"))
    assert s.post("/admin/shadow", headers=TOKEN, json={"release": "releases/seed1"}).status_code == 200
    send(s, random_walk(ModelConfig.load(origin_dir / "model_config.json"), 400, seed=7), batch=40)
    mirrored = s.get("/admin/shadow/report", headers=TOKEN).json()["mirrored_windows"]
    assert 60 <= mirrored <= 140  # 100 expected; binomial sd 8.7


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"release": "../../etc"}, 422, "release"),
        ({"release": "/etc"}, 422, "release"),
        ({"release": "releases/nope"}, 422, "release"),
        ({"release": "."}, 422, "release"),
        ({"release": "releases/seed1\u0000"}, 422, "release"),
        ({"release": "releases/" + "a" * 300}, 422, "release"),  # over NAME_MAX
        ({"release": 7}, 422, "release"),
        ({}, 422, "release"),
        ({"release": "releases/seed1", "onnx_file": "evil.onnx"}, 422, "onnx_file"),
        ({"release": "releases/seed1", "backend": "gpu"}, 422, "backend"),
        ({"release": "releases/seed1", "path": "x"}, 422, "path"),
        ([1, 2], 422, "body"),
        (b"", 400, "body"),
    ],
)
def test_a_bad_shadow_request_is_a_4xx_naming_the_field(sidecar, ab_root, body, status, field):
    s = sidecar(ab_root / "current", shadow_env(ab_root))
    r = s.post("/admin/shadow", headers=TOKEN, **({"data": body} if isinstance(body, bytes) else {"json": body}))
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert "expected" in r.json()


def test_admin_shadow_routes_need_the_admin_token_and_refuse_a_release_that_fails_its_self_check(sidecar, ab_root):
    s = sidecar(ab_root / "current", shadow_env(ab_root))
    assert s.post("/admin/shadow", json={"release": "releases/seed1"}).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert s.post("/admin/shadow", headers=bad, json={"release": "releases/seed1"}).status_code == 403
    assert s.get("/admin/shadow/report").status_code == 401
    assert requests.delete(s.url + "/admin/shadow", timeout=30).status_code == 401
    r = s.post("/admin/shadow", headers=TOKEN, data=b"{not json")
    assert r.status_code == 400 and r.json()["field"] == "body"

    r = s.post("/admin/shadow", headers=TOKEN, json={"release": "releases/bad-golden"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "shadow_refused" and "self-check failed" in r.json()["detail"]
    assert r.json()["serving"] == "v72pct"
    assert s.get("/admin/shadow/report", headers=TOKEN).status_code == 404
    assert requests.delete(s.url + "/admin/shadow", headers=TOKEN, timeout=30).status_code == 404
    assert s.get("/healthz").json()["model_version"] == "v72pct"
    assert s.post("/encode", json={"imu_window": np.zeros((100, 9)).tolist()}).status_code == 200
    # a shadow loaded after a refusal runs; another replaces it
    assert s.post("/admin/shadow", headers=TOKEN, json={"release": "releases/seed1"}).status_code == 200
    r = s.post("/admin/shadow", headers=TOKEN, json={"release": "releases/seed2"})
    assert r.status_code == 200 and r.json()["replaced"] == "seed1"
    assert s.get("/admin/shadow/report", headers=TOKEN).json()["shadow"]["model_version"] == "seed2"


# In-process: the app with its lifespan, driven through ASGI, so that the shadow's backend can be made to fail.


class App:
    def __init__(self, service: Any) -> None:
        self.service = service

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
                 "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": hdrs,
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 9000)}  # fmt: skip
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return {"type": "http.disconnect"}

        status, chunks = 0, []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.service(scope, receive, send)
        return status, json.loads(b"".join(chunks) or b"null")


def in_process(tmp_path: Path, root: Path, coro: Any, **env: str) -> Any:
    from sidecar.app import create_app

    token = tmp_path / "token"
    token.write_text("test-admin-token\n")
    settings = Settings.from_env({"EDGEINFER_MODEL_DIR": str(root / "current"), "EDGEINFER_BACKEND": "onnxruntime",
                                  "EDGEINFER_THREADS": "1", "EDGEINFER_ADMIN_TOKEN_FILE": str(token),
                                  **shadow_env(root), **env})  # fmt: skip
    service = create_app(settings)

    async def main() -> Any:
        async with service.app.router.lifespan_context(service.app):
            return await coro(App(service), service.app.state.sidecar)

    return asyncio.run(main())


async def wait_async(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_shadow_that_raises_never_touches_the_answers_and_its_failures_are_counted(tmp_path, ab_root, origin_dir):
    cfg = ModelConfig.load(origin_dir / "model_config.json")
    windows = random_walk(cfg, 12, seed=8)
    ref = ort_embed(origin_dir / "tcn_encoder_for_edgeinfer.onnx", normalize(cfg, windows))

    async def scenario(app: App, state: Any) -> dict[str, Any]:
        status, body = await app.call("POST", "/admin/shadow", {"release": "releases/seed1"}, TOKEN)
        assert status == 200, body

        def boom(x: np.ndarray) -> np.ndarray:
            raise RuntimeError("shadow backend exploded")

        state.shadow.model.backend.run = boom
        for i, w in enumerate(windows):
            path, key, field = ("/encode", "imu_window", "latent_embedding") if i % 2 else ("/infer", "x", "latent")
            status, body = await app.call("POST", path, {key: w.tolist()})
            assert status == 200, body
            np.testing.assert_allclose(np.asarray(body[field], np.float32), ref[i], rtol=1e-4, atol=1e-4)
        await wait_async(lambda: state.shadow.errors == len(windows))
        status, report = await app.call("GET", "/admin/shadow/report", headers=TOKEN)
        assert status == 200
        return report

    report = in_process(tmp_path, ab_root, scenario)
    assert report["error_windows"] == 12 and report["windows"] == 0
    assert "shadow backend exploded" in report["last_error"]
    assert report["conclusive"] is False and report["linear_cka"] is None


def test_a_shadow_slower_than_the_mirror_rate_drops_windows_and_the_answers_never_wait(tmp_path, ab_root, origin_dir):
    cfg = ModelConfig.load(origin_dir / "model_config.json")
    windows = random_walk(cfg, 20, seed=9)
    ref = ort_embed(origin_dir / "tcn_encoder_for_edgeinfer.onnx", normalize(cfg, windows))
    release = threading.Event()

    async def scenario(app: App, state: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        status, body = await app.call("POST", "/admin/shadow", {"release": "releases/seed1"}, TOKEN)
        assert status == 200, body
        run = state.shadow.model.backend.run

        def stuck(x: np.ndarray) -> np.ndarray:
            release.wait(60)  # a shadow far slower than the traffic: blocked until the test lets it go
            return run(x)

        state.shadow.model.backend.run = stuck
        for i, w in enumerate(windows):  # every answer comes while the shadow is still stuck on the first
            status, body = await app.call("POST", "/encode", {"imu_window": w.tolist()})
            assert status == 200, body
            np.testing.assert_allclose(np.asarray(body["latent_embedding"], np.float32), ref[i], rtol=1e-4, atol=1e-4)
        assert not release.is_set()
        _, stuck_report = await app.call("GET", "/admin/shadow/report", headers=TOKEN)
        release.set()
        await wait_async(lambda: state.shadow.paired_total == state.shadow.mirrored)
        _, final = await app.call("GET", "/admin/shadow/report", headers=TOKEN)
        return stuck_report, final

    stuck, final = in_process(tmp_path, ab_root, scenario, EDGEINFER_SHADOW_QUEUE_WINDOWS="4")
    assert stuck["queued_windows"] <= 4 == stuck["queue_bound"]
    assert stuck["mirrored_windows"] + stuck["dropped_windows"] == 20
    assert stuck["dropped_windows"] >= 20 - 4 - 1  # at most one window in the shadow's call, four waiting
    assert final["windows"] == final["mirrored_windows"] == stuck["mirrored_windows"]
    assert final["dropped_windows"] == stuck["dropped_windows"]


def test_the_shadow_is_fed_its_own_normalization_and_channel_order(tmp_path, ab_root, origin_dir):
    """A shadow release whose normalization differs gets the windows in its own units, whatever the request sent."""
    import copy

    cfg_data = json.loads((origin_dir / "model_config.json").read_text())
    other = copy.deepcopy(cfg_data)
    norm = other["normalization"]
    norm["mean"] = [m + 0.5 for m in norm["mean"]]
    norm["std"] = [s * 2 for s in norm["std"]]
    for key in ("normalization_hash", "embedding_stamp"):
        other.pop(key, None)
    (tmp_path / "other_config.json").write_text(json.dumps(other))
    releases = tmp_path / "models" / "releases"
    shutil.copytree(ab_root / "releases" / "v72pct", releases / "v72pct")
    point_current(tmp_path / "models", releases / "v72pct")
    onnx = origin_dir / "tcn_encoder_for_edgeinfer.onnx"
    make_release(releases / "renormalized", onnx, tmp_path / "other_config.json", version="renormalized")
    other_cfg = ModelConfig.load(releases / "renormalized" / "model_config.json")
    cfg = ModelConfig.load(origin_dir / "model_config.json")
    windows = random_walk(cfg, 6, seed=10)

    async def scenario(app: App, state: Any) -> np.ndarray:
        status, body = await app.call("POST", "/admin/shadow", {"release": "releases/renormalized"}, TOKEN)
        assert status == 200, body
        seen: list[np.ndarray] = []
        run = state.shadow.model.backend.run
        state.shadow.model.backend.run = lambda x: (seen.append(x.copy()), run(x))[1]  # what the shadow is given
        order = list(reversed(cfg.normalization.channel_order))
        await app.call("POST", "/encode", {"imu_windows": windows[:3, :, ::-1].tolist(), "channel_order": order})
        await app.call("POST", "/encode", {"imu_windows": normalize(cfg, windows[3:]).tolist(), "normalized": True})
        await wait_async(lambda: state.shadow.paired_total == 6)
        return np.concatenate(seen)

    given = in_process(tmp_path, tmp_path / "models", scenario, EDGEINFER_SHADOW_ROOT=str(tmp_path / "models"))
    assert other_cfg.normalization_hash != cfg.normalization_hash
    np.testing.assert_allclose(given, normalize(other_cfg, windows), rtol=1e-4, atol=1e-4)


def test_a_reload_of_the_serving_model_starts_the_pairs_afresh(tmp_path, ab_root, origin_dir):
    models = tmp_path / "models"
    for name in ("v72pct", "seed1", "seed2"):
        shutil.copytree(ab_root / "releases" / name, models / "releases" / name)
    point_current(models, models / "releases" / "v72pct")
    windows = random_walk(ModelConfig.load(origin_dir / "model_config.json"), 50, seed=12)

    async def scenario(app: App, state: Any) -> dict[str, Any]:
        status, body = await app.call("POST", "/admin/shadow", {"release": "releases/seed2"}, TOKEN)
        assert status == 200, body
        assert (await app.call("POST", "/encode", {"imu_windows": windows[:30].tolist()}))[0] == 200
        await wait_async(lambda: state.shadow.paired_total == 30)
        point_current(models, models / "releases" / "seed1")
        status, body = await app.call("POST", "/admin/reload", headers=TOKEN)
        assert status == 200 and body["model_version"] == "seed1", body
        assert (await app.call("POST", "/encode", {"imu_windows": windows[30:].tolist()}))[0] == 200
        await wait_async(lambda: state.shadow.paired_total == 50)
        return (await app.call("GET", "/admin/shadow/report", headers=TOKEN))[1]

    report = in_process(tmp_path, models, scenario, EDGEINFER_SHADOW_ROOT=str(models))
    assert report["windows"] == 20 and report["paired_windows_total"] == 50
    assert report["primary_changes"] == 1 and report["primary"]["model_version"] == "seed1"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EDGEINFER_SHADOW_SHARE": "1.5"}, "EDGEINFER_SHADOW_SHARE"),
        ({"EDGEINFER_SHADOW_SHARE": "a tenth"}, "EDGEINFER_SHADOW_SHARE"),
        ({"EDGEINFER_SHADOW_QUEUE_WINDOWS": "0"}, "EDGEINFER_SHADOW_QUEUE_WINDOWS"),
        ({"EDGEINFER_SHADOW_MIN_WINDOWS": "3000"}, "EDGEINFER_SHADOW_MIN_WINDOWS"),  # above MAX_WINDOWS (2000)
        ({"EDGEINFER_SHADOW_MIN_WINDOWS": "20", "EDGEINFER_SHADOW_KNN_K": "20"}, "EDGEINFER_SHADOW_KNN_K"),
    ],
)
def test_an_invalid_shadow_knob_fails_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env)
    assert exc.value.variable == variable


def test_the_shadow_root_defaults_to_the_parent_of_the_model_dir():
    assert Settings.from_env({"EDGEINFER_MODEL_DIR": "/srv/models/current"}).shadow_root == Path("/srv/models")
    assert Settings.from_env({"EDGEINFER_SHADOW_ROOT": "/elsewhere"}).shadow_root == Path("/elsewhere")
