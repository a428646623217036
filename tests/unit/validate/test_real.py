"""With real components: a container's memory through the Docker API, and the real sidecar serving the origin ONNX."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import edgeinfer_load as lg

REPO = Path(__file__).resolve().parents[3]


def _labelled(name: str, service: str, *args: str) -> None:
    """``docker run -d`` a container labelled as compose service ``service`` of project validate-test."""
    labels = ["--label", f"com.docker.compose.service={service}", "--label", "com.docker.compose.project=validate-test"]
    subprocess.run(["docker", "run", "-d", "--name", name, *labels, *args], check=True, capture_output=True)


@pytest.fixture
def memory_container(base_image: str):
    """A container holding 64 MiB, labelled like a compose service; removed after the test."""
    name = f"edgeinfer-validate-test-{uuid.uuid4().hex[:8]}"
    service = f"svc-{name}"
    hold = "import time; x = bytearray(64 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(120)"
    _labelled(name, service, base_image, "python3", "-c", hold)
    try:
        api = lg.DockerSocket()
        cid = api.find(name)
        ok, last, _ = lg.wait_for(
            lambda: lg.docker_memory_bytes(api.stats(cid)) or 0, lambda b: b >= 64 * 2**20, timeout=30, interval=0.2
        )
        assert ok, f"the test container never held 64 MiB (last {last} bytes)"
        yield name, service
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.mark.docker
def test_memory_is_read_from_the_docker_socket(memory_container):
    name, service = memory_container
    sample = lg.socket_sampler(None, service, "validate-test")  # found by its compose labels
    with lg.ResourceSampler(sample, interval_s=0.2) as s:
        time.sleep(2.5)
    summary = s.summary()
    assert summary["measured"] is True and summary["samples"] >= 2  # the daemon refreshes about once a second
    assert 60 <= summary["memory_peak_mb"] < 200  # the 64 MiB it holds, plus the interpreter
    assert summary["cpu_mean_pct"] is not None and summary["cpu_mean_pct"] < 50  # it sleeps


def _free_port() -> int:
    """A free 127.0.0.1 port among those the tests may use (19600-19699)."""
    for port in range(19600, 19700):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 19600-19699")


@pytest.fixture
def serving_container(base_image: str):
    """The calibration server in a container holding 64 MiB, published on 127.0.0.1 like the sidecar."""
    name = f"edgeinfer-validate-test-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    serve = (
        "import runpy, sys; x = bytearray(64 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
        "sys.argv = ['testserver', '--host', '0.0.0.0', '--port', '9100']; "
        "runpy.run_path('/opt/testserver.py', run_name='__main__')"
    )
    _labelled(
        name,
        f"svc-{name}",
        "-p",
        f"127.0.0.1:{port}:9100",
        "-v",
        f"{REPO / 'edgeinfer_validate' / 'testserver.py'}:/opt/testserver.py:ro",
        base_image,
        "python3",
        "-c",
        serve,
    )
    try:
        target = lg.Target("127.0.0.1", port)
        api = lg.DockerSocket()
        cid = api.find(name)

        def ready() -> int:
            try:
                status = lg.http_get_json(target, "/healthz")[0]
            except OSError:
                return 0
            return status if (lg.docker_memory_bytes(api.stats(cid)) or 0) >= 64 * 2**20 else 0

        ok, last, _ = lg.wait_for(ready, lambda s: s == 200, timeout=30, interval=0.2)
        assert ok, f"the test container never served /healthz holding 64 MiB (last {last})"
        yield name, port
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.mark.docker
def test_cli_gates_on_the_memory_of_the_container_serving_the_target(serving_container, server, tmp_path):
    name, port = serving_container
    base = [sys.executable, "-m", "edgeinfer_validate", "--duration", "1", "--warmup", "0", "--no-progress"]
    base += ["--rate", "0", "--json", str(tmp_path / "r.json")]
    by_labels = ["--compose-service", f"svc-{name}", "--compose-project", "validate-test"]
    assert subprocess.run([*base, "--port", str(port), *by_labels], capture_output=True, timeout=60).returncode == 0
    resources = json.loads((tmp_path / "r.json").read_text())["resources"]
    assert resources["container"] == name and resources["memory_peak_mb"] >= 60
    proc = subprocess.run(
        [*base, "--port", str(port), "--container", name, "--max-memory-mb", "32"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 128 and f"of container {name}" in proc.stdout, proc.stdout
    # The same container, its labels or its name, is not the calibration server on another port.
    for which in (by_labels, ["--container", name]):
        proc = subprocess.run(
            [*base, "--port", str(server.target.port), *which], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 128, proc.stdout
        assert f"publishes port {server.target.port}, the target's ({name} publishes {port})" in proc.stdout


@pytest.mark.docker
def test_module_gates_on_the_memory_of_the_container_serving_the_target(serving_container, server):
    """edgeinfer_benchmark, the edge's copy of the gate, takes the container as the CLI does: named or
    by its labels, it is measured only while it publishes the port of the url under load."""
    from types import SimpleNamespace

    from tests.unit.validate.test_module import adhoc

    name, port = serving_container
    labels = f"compose_service=svc-{name} compose_project=validate-test"
    served = SimpleNamespace(url=f"http://127.0.0.1:{port}")
    rc, r = adhoc(served, f"rate=0 container={name} thresholds={{'max_memory_mb':1024,'min_rps':1,'p95_ms':5000}}")
    assert rc == 0 and r["resources"]["container"] == name and r["memory_peak_mb"] >= 60, r
    for which in (f"container={name}", labels):
        rc, r = adhoc(server, f"rate=0 fail_on_threshold=false {which}")
        assert rc == 0 and "memory" in r["failed_checks"] and r["resources"]["measured"] is False, r
        assert (
            f"publishes port {server.target.port}, the target's ({name} publishes {port})" in r["resources"]["reason"]
        )


@pytest.mark.slow
def test_against_the_real_sidecar_serving_the_origin_onnx(tmp_path, origin_dir):
    """The sidecar (python -m sidecar) with the origin model: healthy, the expected model, golden cosines ~1."""
    sidecar_conftest = pytest.importorskip("testbed.sidecar")
    root = tmp_path / "models"
    release = sidecar_conftest.production_release(root, origin_dir)
    srv = sidecar_conftest.start_server(tmp_path, root / "current")
    try:
        target = lg.Target.parse(srv.url)
        out = tmp_path / "report"
        cmd = [
            sys.executable,
            "-m",
            "edgeinfer_validate",
            "--host",
            target.host,
            "--port",
            str(target.port),
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--concurrency",
            "4",
            "--rate",
            "100",
            "--skip-memory",
            "--golden",
            str(release / "golden.json"),
            "--expect-model-version",
            "v72pct",
            # correctness here, not speed: this machine's two cores also run the tests
            "--min-rps",
            "1",
            "--p95-ms",
            "1000",
            "--no-progress",
            "--report",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert proc.returncode == 0, proc.stdout + proc.stderr + srv.output()
        report = json.loads((out / "report.json").read_text())
        assert report["health"]["model"]["model_version"] == "v72pct"
        assert report["quality"]["golden"]["windows"] == 8
        assert report["quality"]["golden"]["min_cosine"] >= 0.999
        assert report["phases"]["closed"]["failed"] == 0 and report["phases"]["open"]["failed"] == 0
        assert report["phases"]["open"]["requests"] == 200
    finally:
        sidecar_conftest.stop_server(srv)
