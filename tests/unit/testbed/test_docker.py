"""The Docker half of the bench is real: an image built from the local base image starts
under `docker compose up --wait`, answers on 127.0.0.1, and `down` leaves nothing behind."""

from __future__ import annotations

import subprocess
import textwrap
import urllib.request
from pathlib import Path

import pytest

from testbed.fleet import free_port, remove_compose_project

pytestmark = pytest.mark.docker


def docker(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def project_containers(project: str) -> list[str]:
    out = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_base_image_is_debian_bookworm_with_python(base_image: str) -> None:
    out = docker("run", "--rm", base_image, "python3", "-c", "import sys, venv; print(sys.version_info[:2])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 11)"
    release = docker("run", "--rm", base_image, "cat", "/etc/os-release").stdout
    assert "VERSION_CODENAME=bookworm" in release
    # Built from Debian packages alone: no apt lists or caches left in the image.
    lists = docker("run", "--rm", base_image, "sh", "-c", "ls /var/lib/apt/lists | wc -l").stdout.strip()
    assert lists == "0"


def test_compose_up_wait_serves_on_loopback_and_down_cleans_up(base_image: str, tmp_path: Path) -> None:
    port = free_port()
    project = f"edgeinfer-bench-{port}"
    (tmp_path / "Dockerfile").write_text(
        textwrap.dedent(
            f"""\
            FROM {base_image}
            RUN mkdir /srv/www && echo bench-ok > /srv/www/index.txt
            USER 65534:65534
            CMD ["python3", "-m", "http.server", "8080", "--directory", "/srv/www"]
            """
        )
    )
    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent(
            f"""\
            services:
              web:
                build: .
                image: edgeinfer/bench-web:test
                ports: ["127.0.0.1:{port}:8080"]
                healthcheck:
                  test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/index.txt')"]
                  interval: 1s
                  timeout: 2s
                  retries: 30
            """
        )
    )
    try:
        up = docker("compose", "-p", project, "up", "--build", "--wait", "--wait-timeout", "120", "-d", cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        assert len(project_containers(project)) == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.txt", timeout=5) as resp:
            assert resp.read().decode().strip() == "bench-ok"
        health = docker("inspect", "--format", "{{.State.Health.Status}}", project_containers(project)[0])
        assert health.stdout.strip() == "healthy"
        down = docker("compose", "-p", project, "down", "--volumes", cwd=tmp_path)
        assert down.returncode == 0, down.stderr
        assert project_containers(project) == []
    finally:
        remove_compose_project(project)
        docker("image", "rm", "-f", "edgeinfer/bench-web:test")


def test_fleet_teardown_removes_its_compose_projects(fleet_factory, base_image: str) -> None:
    fleet = fleet_factory(1)
    edge = fleet.edges[0]
    run = docker(
        "run", "-d", "--label", f"com.docker.compose.project={edge.compose_project}", base_image, "sleep", "300"
    )
    assert run.returncode == 0, run.stderr
    assert len(project_containers(edge.compose_project)) == 1
    fleet.down()
    assert project_containers(edge.compose_project) == []
