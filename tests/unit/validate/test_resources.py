"""Which container edgeinfer-validate measures: only the one that publishes the target's port.

A fake Docker Engine on a unix socket answers with what a real one said on a machine that runs
the deploy's compose sidecar (127.0.0.1:9000); the calibration server runs in no container.
"""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import edgeinfer_load as lg
from edgeinfer_validate.resources import ps_containers
from tests.unit.load.recorded import SIDECAR

STATS = {"memory_stats": {"usage": 140 * 2**20, "stats": {"inactive_file": 12 * 2**20}}}  # 128 MiB in use


class FakeEngine(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, containers: list[dict]) -> None:
        self.containers = containers
        self.urls: list[str] = []
        super().__init__(path, _Answer)


class _Answer(BaseHTTPRequestHandler):
    server: FakeEngine

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.urls.append(self.path)
        body = json.dumps(self.server.containers if self.path.startswith("/containers/json") else STATS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path) -> Iterator:
    started: list[FakeEngine] = []

    def make(containers: list[dict]) -> tuple[FakeEngine, str]:
        path = str(tmp_path / f"docker{len(started)}.sock")
        e = FakeEngine(path, containers)
        threading.Thread(target=e.serve_forever, daemon=True).start()
        started.append(e)
        return e, path

    yield make
    for e in started:
        e.shutdown()
        e.server_close()


def validate(server, sock: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, "-m", "edgeinfer_validate", "--port", str(server.target.port), "--duration", "1"]
    cmd += ["--warmup", "0", "--rate", "0", "--no-progress", "--docker", "socket", "--docker-socket", sock]
    proc = subprocess.run([*cmd, *args, "--report", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    return proc, json.loads((tmp_path / "out" / "report.json").read_text())


def test_a_sidecar_on_another_port_is_not_measured_for_the_target(server, engine, tmp_path):
    """It passed memory with the 128 MiB of a sidecar serving 9000, for a calibration server in no container."""
    fake, sock = engine([SIDECAR])
    proc, report = validate(server, sock, tmp_path)
    assert proc.returncode == 128, proc.stdout + proc.stderr  # memory not measured fails, as the docs say
    memory = {c["name"]: c for c in report["checks"]}["memory"]
    assert memory["status"] == "failed" and memory["value"] is None
    assert (
        f"publishes port {server.target.port}, the target's (edgeinfer-local-sidecar publishes 9000)"
        in (memory["detail"])
    )
    assert report["resources"]["measured"] is False and report["resources"]["container"] is None
    assert not any("/stats" in u for u in fake.urls)
    assert "PASSED   memory" not in proc.stdout


def test_the_container_publishing_the_target_port_is_measured_and_named(server, engine, tmp_path):
    serving = dict(SIDECAR, Id="f" * 64, Names=["/edgeinfer-sidecar-under-test"])
    serving["Ports"] = [dict(SIDECAR["Ports"][0], PublicPort=server.target.port)]
    _fake, sock = engine([SIDECAR, serving])
    proc, report = validate(server, sock, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["resources"]["container"] == "edgeinfer-sidecar-under-test"
    assert report["memory_peak_mb"] == 128.0
    assert "of container edgeinfer-sidecar-under-test" in proc.stdout
    assert (
        "container `edgeinfer-sidecar-under-test`: memory peak 128.00 MiB"
        in (tmp_path / "out" / "report.md").read_text()
    )


# `docker ps --format '{{.Names}}\t{{.Ports}}\t{{.Networks}}'` on an edge, as the ssh sampler reads it.
PS = (
    "edgeinfer-sidecar\t127.0.0.1:9000->9000/tcp\tedgeinfer_default\n"
    "grafana\t0.0.0.0:3000->3000/tcp, :::3000->3000/tcp\tmonitoring\n"
    "node-exporter\t\thost\n"
)


def test_docker_ps_lines_read_as_engine_entries():
    found = ps_containers(PS)
    assert [lg.container_name(c) for c in found] == ["edgeinfer-sidecar", "grafana", "node-exporter"]
    assert [lg.published_ports(c) for c in found] == [[9000], [3000], []]
    assert lg.host_network(found[2]) and not lg.host_network(found[0])
    assert lg.container_name(lg.pick_container(found, 9000, "of service x")) == "edgeinfer-sidecar"
