"""edgeinfer_benchmark in check mode reads /healthz and sends no load to a real sidecar."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from testbed.sidecar import make_release, start_server, stop_server


def run(capsys, **args) -> dict:
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.edgeinfer.deploy.plugins.modules import edgeinfer_benchmark

    with patch_module_args(args), pytest.raises(SystemExit):
        edgeinfer_benchmark.main()
    return json.loads(capsys.readouterr().out)


def encode_requests(url: str) -> float:
    import requests

    text = requests.get(url + "/metrics", timeout=5).text
    found = re.findall(r'^edgeinfer_requests_total\{[^}]*route="/encode"[^}]*\} (\S+)$', text, re.M)
    return sum(float(v) for v in found)


def test_check_mode_sends_no_load(tmp_path: Path, origin_dir: Path, capsys) -> None:
    rel = make_release(
        tmp_path / "v1", origin_dir / "tcn_encoder_for_edgeinfer.onnx", origin_dir / "model_config.json", batch=False
    )
    server = start_server(tmp_path, rel)
    try:
        args = {"url": server.url, "duration": 1, "warmup": 0, "skip_memory": True, "expect_model_version": "v72pct"}
        before = encode_requests(server.url)
        would = run(capsys, **args, _ansible_check_mode=True)
        assert would["check_mode"] is True and would["health"]["ok"] is True, would
        assert would["changed"] is False and would["passed"] is False and "no load sent" in would["msg"]
        assert encode_requests(server.url) == before
        wrong = run(capsys, **dict(args, expect_model_version="v9"), _ansible_check_mode=True)
        assert wrong["health"]["ok"] is False and "v9" in wrong["msg"], wrong
        # The real run does send its load.
        did = run(capsys, **args, fail_on_threshold=False)
        assert encode_requests(server.url) > before + 10, did.get("msg")
    finally:
        stop_server(server)
