"""Fixtures of the operations tests: a live sidecar to scrape, and free ports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testbed.sidecar import Server, make_release, point_current, start_server, stop_server

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "monitoring"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.fixture(scope="session")
def promtool() -> str:
    if not Path(PROMTOOL).is_file():
        pytest.fail("promtool not found: install the Debian package prometheus (scripts/bootstrap.sh does)")
    return PROMTOOL


@pytest.fixture(scope="session")
def live_sidecar(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Iterator[Server]:
    """A real sidecar process serving the origin model on 127.0.0.1, with traffic of every kind seen."""
    tmp = tmp_path_factory.mktemp("live-sidecar")
    models = tmp / "models"
    rel = make_release(
        models / "releases" / "v72pct",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
    )
    point_current(models, rel)
    server = start_server(tmp, models / "current")
    try:
        send_traffic(server)
        yield server
    finally:
        stop_server(server)


def send_traffic(server: Server, n: int = 3) -> None:
    """Good and bad requests on every route, so every labelled series exists."""
    window = [[0.1] * 9] * 100
    for _ in range(n):
        assert server.post("/encode", json={"imu_window": window}).status_code == 200
        assert server.post("/encode", json={"imu_windows": [window, window]}).status_code == 200
        assert server.post("/infer", json={"x": window}).status_code == 200
        assert server.post("/encode", data=b"{", headers={"content-type": "application/json"}).status_code == 400
        assert server.get("/healthz").status_code == 200


def scrape(server: Server) -> str:
    r = requests.get(server.url + "/metrics", timeout=10)
    r.raise_for_status()
    return r.text
