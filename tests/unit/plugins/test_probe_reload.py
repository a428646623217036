"""edgeinfer_probe's hot reload (reload_token_file): check mode predicts it and sends nothing, the
real run sends it with the token read where the module runs, and a refused reload fails the task
naming the sidecar's answer while the model served before keeps serving. A real sidecar."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest

from testbed.ansible_run import run_playbook
from testbed.sidecar import make_release, start_server, stop_server


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Path:
    return make_release(
        tmp_path_factory.mktemp("reload") / "v1",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        batch=False,
    )


def reloads(url: str) -> float:
    """The sidecar's own count of reload attempts (/metrics), the startup load included."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return float(re.search(r"^edgeinfer_reloads_total (\S+)$", text, re.M).group(1))


def probe(tmp_path: Path, url: str, token_file: Path, check: bool) -> dict:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [
            {
                "name": "probe",
                "edgeinfer.deploy.edgeinfer_probe": {"url": url, "timeout": 20, "reload_token_file": str(token_file)},
                "register": "probe",
                "ignore_errors": True,
            },
            {
                "name": "out",
                "ansible.builtin.copy": {"content": "{{ probe | to_json }}", "dest": str(tmp_path / "probe.json")},
                "check_mode": False,
            },
        ],
    }
    run = run_playbook([play], inventory="localhost,", tmp_path=tmp_path, check=check, timeout=120)
    assert (tmp_path / "probe.json").is_file(), run.explain()
    return json.loads((tmp_path / "probe.json").read_text())


def test_check_mode_predicts_the_reload_and_the_real_run_sends_it(tmp_path: Path, release: Path) -> None:
    server = start_server(tmp_path, release)
    token = tmp_path / "admin_token"  # start_server wrote the sidecar's token there
    try:
        before = reloads(server.url)
        would = probe(tmp_path, server.url, token, check=True)
        assert would["changed"] is True and not would.get("failed"), would
        # Nothing was judged: no tick for a gate that did not run.
        assert would["passed"] is False and would["check_mode"] is True and "reload" not in would, would
        assert reloads(server.url) == before, "check mode sent a reload"
        did = probe(tmp_path, server.url, token, check=False)
        assert did["changed"] is True and did["passed"] and did["reload"]["status"] == 200, did
        assert reloads(server.url) == before + 1
    finally:
        stop_server(server)


def test_a_refused_reload_fails_naming_the_answer_and_the_model_keeps_serving(tmp_path: Path, release: Path) -> None:
    server = start_server(tmp_path, release)
    wrong = tmp_path / "wrong_token"
    wrong.write_text("not-the-token\n")
    try:
        r = probe(tmp_path, server.url, wrong, check=False)
        assert r["failed"] and r["reload"]["status"] == 403, r
        assert "hot reload refused (HTTP 403): forbidden" in r["msg"] and "keeps serving" in r["msg"], r["msg"]
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as h:
            assert h.status == 200
        missing = probe(tmp_path, server.url, tmp_path / "absent", check=False)
        assert missing["failed"] and "admin token unreadable" in missing["msg"], missing
    finally:
        stop_server(server)
