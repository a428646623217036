"""edgeinfer_shadow against a real sidecar: check mode predicts start and stop and sends nothing, the
real run loads the candidate beside the serving model, the report waits for paired windows of live
traffic and carries the decision, too few windows is inconclusive, and stop drops the shadow with its
final report (the per-window series included), once."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeinfer_contract import ModelConfig
from testbed.ansible_run import run_playbook
from testbed.sidecar import make_release, point_current, raw_windows, start_server, stop_server

TOKEN = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Path:
    """/models: releases/v72pct (served) and releases/v72pct-again (the same network, another version)."""
    root = tmp_path_factory.mktemp("shadow-module") / "models"
    onnx, config = origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json"
    point_current(root, make_release(root / "releases" / "v72pct", onnx, config, batch=False))
    make_release(root / "releases" / "v72pct-again", onnx, config, version="v72pct-again", batch=False)
    return root


@pytest.fixture
def server(tmp_path: Path, models: Path) -> Any:
    env = {
        "EDGEINFER_SHADOW_ROOT": str(models),
        "EDGEINFER_SHADOW_SHARE": "1",
        "EDGEINFER_SHADOW_MIN_WINDOWS": "40",
        "EDGEINFER_SHADOW_QUEUE_WINDOWS": "4096",
    }
    s = start_server(tmp_path, models / "current", env)
    yield s
    stop_server(s)


def play(tmp_path: Path, tasks: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Run the tasks on localhost (the module runs where the token is); each registered result comes back."""
    out = tmp_path / f"{name}.json"
    registered = [t["register"] for t in tasks]
    dump = "{{ {" + ", ".join(f"'{r}': {r}" for r in registered) + "} | to_json }}"
    body = {
        "hosts": "localhost",
        "gather_facts": False,
        "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [
            *({**t, "ignore_errors": True} for t in tasks),
            {"name": "out", "ansible.builtin.copy": {"content": dump, "dest": str(out)}, "check_mode": False},
        ],
    }
    run = run_playbook([body], inventory="localhost,", tmp_path=tmp_path, timeout=180)
    assert out.is_file(), run.explain()
    return json.loads(out.read_text())


def shadow(server: Any, token: Path, register: str, **args: Any) -> dict[str, Any]:
    return {
        "name": register,
        "edgeinfer.deploy.edgeinfer_shadow": {"url": server.url, "token_file": str(token), "timeout": 30, **args},
        "register": register,
    }


def loaded(server: Any) -> bool:
    r = server.get("/admin/shadow/report", headers=TOKEN)
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def test_check_mode_predicts_start_and_stop_and_sends_nothing(tmp_path: Path, server: Any) -> None:
    # No shadow is loaded: a real stop would change nothing, and check mode says so.
    token = tmp_path / "admin_token"
    r = play(
        tmp_path,
        [
            {**shadow(server, token, "start", action="start", release="releases/v72pct-again"), "check_mode": True},
            {**shadow(server, token, "stop", action="stop"), "check_mode": True},
        ],
        "check",
    )
    assert r["start"]["changed"] is True and not r["start"].get("failed"), r
    assert "loaded" not in r["start"]
    assert r["stop"]["changed"] is False and r["stop"]["report"] is None and not r["stop"].get("failed"), r
    assert not loaded(server), "check mode loaded a shadow"


def test_start_report_stop_on_live_traffic(tmp_path: Path, server: Any, origin_dir: Path) -> None:
    token = tmp_path / "admin_token"
    started = play(tmp_path, [shadow(server, token, "start", action="start", release="releases/v72pct-again")], "start")
    assert started["start"]["changed"] is True, started
    assert started["start"]["loaded"]["shadow"]["model_version"] == "v72pct-again"
    assert started["start"]["loaded"]["serving"] == "v72pct"
    assert loaded(server)

    windows = raw_windows(ModelConfig.load(origin_dir / "model_config.json"), 80, seed=5)
    for i in range(0, 80, 8):
        answer = server.post("/encode", json={"imu_windows": windows[i : i + 8].tolist()})
        assert answer.status_code == 200, answer.text

    thresholds = {"min_cka": 0.9, "min_knn_jaccard": 0.5, "max_p95_factor": 50.0, "min_cosine": 0.99}
    r = play(
        tmp_path,
        [
            shadow(server, token, "few", action="report", min_windows=10_000, timeout=1, interval=0.5),
            shadow(server, token, "waited", action="report", min_windows=60, interval=0.5, **thresholds),
            {**shadow(server, token, "would_stop", action="stop"), "check_mode": True},
            shadow(server, token, "stopped", action="stop", min_windows=60, per_window=True, **thresholds),
            shadow(server, token, "again", action="stop"),
        ],
        "run",
    )
    few = r["few"]
    assert few["changed"] is False and few["reached"] is False, few
    assert few["decision"]["verdict"] == "inconclusive", few["decision"]
    assert "fewer than the 10000 required" in few["decision"]["reasons"][0]

    waited = r["waited"]
    assert waited["reached"] is True and waited["report"]["windows"] >= 60, waited
    assert waited["decision"]["verdict"] == "promote", waited["decision"]

    # With a shadow loaded, check mode predicts the change and leaves the shadow loaded (the real stop
    # below still finds it and its 80 windows).
    assert r["would_stop"]["changed"] is True and r["would_stop"]["report"]["windows"] == 80, r["would_stop"]
    stopped = r["stopped"]
    assert stopped["changed"] is True, stopped
    final = stopped["report"]
    assert final["windows"] == 80 and final["same_network"] is True and final["error_windows"] == 0, final
    assert stopped["decision"]["verdict"] == "promote", stopped["decision"]
    assert stopped["decision"]["figures"]["cosine_mean"] > 0.999
    series = final["per_window"]
    assert series["windows"] == 80 and len(series["knn_jaccard"]) == len(series["cosine"]) == 80, series
    assert min(series["cosine"]) > 0.999

    assert r["again"]["changed"] is False and r["again"]["report"] is None, r["again"]
    assert not loaded(server)
    with_health = server.get("/healthz")
    assert with_health.status_code == 200 and with_health.json()["model_version"] == "v72pct"


def test_a_refused_candidate_and_a_missing_token_fail_naming_the_fix(tmp_path: Path, server: Any) -> None:
    token = tmp_path / "admin_token"
    r = play(
        tmp_path,
        [
            shadow(server, token, "outside", action="start", release="releases/none-such"),
            shadow(server, tmp_path / "absent", "untokened", action="report"),
            shadow(server, token, "absolute", action="start", release="/opt/edgeinfer/models/releases/x"),
            shadow(server, token, "spinning", action="report", min_windows=10, interval=0),
        ],
        "refused",
    )
    assert r["outside"]["failed"] and r["outside"]["status"] == 422, r["outside"]
    assert "the sidecar refused the shadow releases/none-such (HTTP 422" in r["outside"]["msg"]
    assert "the serving model is untouched" in r["outside"]["msg"]
    assert r["untokened"]["failed"] and "admin token unreadable" in r["untokened"]["msg"], r["untokened"]
    assert r["absolute"]["failed"] and "relative to EDGEINFER_SHADOW_ROOT" in r["absolute"]["msg"], r["absolute"]
    spinning = r["spinning"]
    assert spinning["failed"] and "interval=0.0: a number of seconds above 0" in spinning["msg"], spinning
    assert not loaded(server)
