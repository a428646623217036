"""The compose template as the deploy role renders it: the hardening is there in both
profiles, and only the Hailo profile gets /dev/hailo0 and the hailo group."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.docker


def rendered(tmp_path: Path, profile: str) -> dict:
    env = tmp_path / ".env"
    env.write_text(
        "\n".join(
            [
                f"COMPOSE_PROFILES={profile}",
                "EDGEINFER_IMAGE=edgeinfer/sidecar:test",
                f"EDGEINFER_MODELS_DIR={tmp_path}",
                f"EDGEINFER_ADMIN_TOKEN_PATH={tmp_path}/admin_token",
                "EDGEINFER_PORT=9123",
                "EDGEINFER_HAILO_GID=44",
                "",
            ]
        )
    )
    cmd = ["docker", "compose", "-f", str(REPO / "sidecar" / "compose.yaml"), "--env-file", str(env)]
    out = subprocess.run([*cmd, "config", "--format", "json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["services"]


def test_cpu_profile_is_hardened_and_has_no_device(docker_engine, tmp_path: Path) -> None:
    services = rendered(tmp_path, "cpu")
    assert list(services) == ["edgeinfer-sidecar"]
    svc = services["edgeinfer-sidecar"]
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert svc["user"] == "10001:10001"
    assert svc["ports"][0]["host_ip"] == "127.0.0.1" and svc["ports"][0]["published"] == "9123"
    assert any(v["target"] == "/models" and v["read_only"] for v in svc["volumes"])
    assert "devices" not in svc and "group_add" not in svc


def test_hailo_profile_adds_the_device_and_the_group(docker_engine, tmp_path: Path) -> None:
    services = rendered(tmp_path, "hailo")
    assert list(services) == ["edgeinfer-sidecar-hailo"]
    svc = services["edgeinfer-sidecar-hailo"]
    assert [d["source"] for d in svc["devices"]] == ["/dev/hailo0"]
    assert [str(g) for g in svc["group_add"]] == ["44"]
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
