"""Side-by-side throughput and latency of the sidecar (`make bench-sidecar`; not a test).

(a) ONNX Runtime in-process on the same model and cores, batch 1 and batched;
(b) a naive peer in the style of the system replaced (FastAPI, list-of-lists
    validation, the model run inline on the event loop);
(c) this sidecar on the host and in its container.
Load comes from wrk on 127.0.0.1 (bounded in time); the constant-rate latency run is
an open-loop Python client that measures from each request's scheduled send time.
Results: printed as a Markdown table and written to .bench/sidecar.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import build_sidecar_image  # noqa: E402
from bench.edge_python import edge_python  # noqa: E402
from bench.sidecar_load import (  # noqa: E402
    SERVER_CPU,
    RssSampler,
    constant_rate,
    pinned,
    served,
    stop,
    wait_http,
    wrk,
)
from bench.sidecar_one_core import lone, on_one_core  # noqa: E402
from bench.sidecar_report import LOOPBACK_PROXY, NO_MODEL, report  # noqa: E402
from bench.speed import ort_rate  # noqa: E402
from testbed.sidecar import free_port, make_release, point_current  # noqa: E402

SHARED = Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared"))
PRODUCTION = SHARED / "fixtures" / "origin-v72pct"  # the files of the model in production

NAIVE = """
import numpy as np, onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel
sess = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
app = FastAPI()
class Req(BaseModel):
    x: list[list[float]]
@app.post("/infer")
async def infer(req: Req):
    x = np.asarray(req.x, dtype=np.float32)[None]
    y = sess.run(None, {"imu_window": x})[0][0]
    return {"latent": y.tolist()}
"""


def ort_limit(model: Path, seconds: float) -> dict[str, float]:
    return {
        label: ort_rate(model, threads, batch, seconds)
        for label, threads, batch in (
            ("batch 1, 1 thread", 1, 1),
            ("batch 32, 1 thread", 1, 32),
            ("batch 32, 2 threads", 2, 32),
        )
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument(
        "--image",
        default="edgeinfer/sidecar:bench",
        help="container to bench, built from this tree first (python -m sidecar.build_image); '' to skip",
    )
    ap.add_argument("--base-image", default="edgeinfer/base:bookworm", help="BASE_IMAGE of that build")
    ap.add_argument("--threads", default="1", help="EDGEINFER_THREADS of the sidecar")
    return ap.parse_args()


def request_bodies(work: Path, rel: Path) -> dict[str, tuple[Path, str]]:
    """The first golden window of the release as each route's request body (file, content type)."""
    raw = np.asarray(json.loads((rel / "golden.json").read_text())["windows"][0], np.float32)
    bodies = {
        "binary": (work / "w.bin", "application/octet-stream"),
        "json": (work / "w.json", "application/json"),
        "infer": (work / "x.json", "application/json"),
    }
    bodies["binary"][0].write_bytes(raw.astype("<f4").tobytes())
    bodies["json"][0].write_text(json.dumps({"imu_window": raw.tolist()}))
    bodies["infer"][0].write_text(json.dumps({"x": raw.tolist()}))
    return bodies


def measure_naive(
    work: Path, rel: Path, bodies: dict[str, tuple[Path, str]], seconds: int, python: str = sys.executable
) -> dict | str:
    """(b) The naive FastAPI peer under wrk at 1, 16 and 64 connections, on ``python``."""
    if subprocess.run([python, "-c", "import fastapi"], capture_output=True).returncode != 0:
        return "fastapi is not installed"
    app_py = work / "naive_app.py"
    app_py.write_text(f"MODEL = {str(rel / 'model.onnx')!r}\n" + NAIVE)
    port = free_port()
    p = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "naive_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=work,
    )
    try:
        time.sleep(3)
        return {f"c{c}": wrk(f"http://127.0.0.1:{port}/infer", *bodies["infer"], c, seconds) for c in (1, 16, 64)}
    finally:
        stop(p)


def sidecar_env(models: Path, threads: str) -> dict[str, str]:
    """The environment of a sidecar on the host serving ``models``/current on ONNX Runtime."""
    return dict(
        os.environ,
        EDGEINFER_MODEL_DIR=str(models / "current"),
        EDGEINFER_HOST="127.0.0.1",
        EDGEINFER_BACKEND="onnxruntime",
        EDGEINFER_THREADS=threads,
        PYTHONPATH=str(REPO),
    )


def measure_host(
    env: dict[str, str], bodies: dict[str, tuple[Path, str]], seconds: int, python: str = sys.executable
) -> dict[str, object]:
    """(c) The sidecar on the host under wrk, unpinned, with its peak RSS over all the runs."""
    port = free_port()
    p = subprocess.Popen([python, "-m", "sidecar"], cwd=REPO, env=dict(env, EDGEINFER_PORT=str(port)))
    try:
        wait_http(port, "/healthz")
        rss = RssSampler(p.pid)
        rss.start()
        url = f"http://127.0.0.1:{port}"
        host: dict[str, object] = {}
        for c in (1, 16, 64):
            host[f"binary c{c}"] = wrk(url + "/encode", *bodies["binary"], c, seconds)
        for c in (1, 16, 64):
            host[f"json c{c}"] = wrk(url + "/encode", *bodies["json"], c, seconds)
        host["infer c64"] = wrk(url + "/infer", *bodies["infer"], 64, seconds)
        rss.stop.set()
        host["peak_rss_mib"] = round(rss.peak / 1024, 1)
        return host
    finally:
        stop(p)


def instrument_floor(
    pin: list[str], bodies: dict[str, tuple[Path, str]], seconds: int
) -> tuple[dict[str, float], dict[str, dict[str, object]]]:
    """Against a server with no model (``edgeinfer_validate.testserver``, a canned answer on the
    server's core): the load engine's own latency at the constant rate, and a lone request's round
    trip, which is this machine's loopback and wake-up floor under the lone target's margin."""
    floor = subprocess.Popen(
        [*pin, sys.executable, "-m", "edgeinfer_validate.testserver", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        fport = int(floor.stdout.readline().strip().rsplit(":", 1)[1])
        return constant_rate(fport, "plain"), lone(f"http://127.0.0.1:{fport}", bodies, seconds)
    finally:
        stop(floor)


def measure_constant_load(
    results: dict,
    env: dict[str, str],
    rel: Path,
    bodies: dict[str, tuple[Path, str]],
    seconds: int,
    python: str = sys.executable,
) -> dict[str, object]:
    """(d) Latency at a constant 250 req/s and the one-core targets of the pinned sidecar on the host.

    The load engine runs on one core and the server on the other, so that neither steals the
    other's core; first the instrument's own floor (a server with no model), then the sidecar
    with one inference thread. Returns the constant-rate figures; the one-core figures go into
    ``results`` ("share", "lone", "one_core")."""
    pin = ["taskset", "-c", str(SERVER_CPU)] if pinned() else []
    const: dict[str, object] = {"pinned": pinned()}
    results["share"], results["lone"], results["one_core"] = {}, {}, {}
    const["instrument floor (no model)"], results["lone"][NO_MODEL] = instrument_floor(pin, bodies, seconds)
    port = free_port()
    p = subprocess.Popen(
        [*pin, python, "-m", "sidecar"],
        cwd=REPO,
        env=dict(env, EDGEINFER_PORT=str(port), EDGEINFER_THREADS="1"),
    )
    try:
        wait_http(port, "/healthz")
        for kind in ("json", "binary"):
            constant_rate(port, kind, seconds=2)  # warm-up
            const[f"host {kind}"] = served(port, kind)
        on_one_core(results, "host", port, p.pid, rel / "model_batch.onnx", bodies, seconds)
    finally:
        stop(p)
    return const


def make_readable(work: Path) -> None:
    """Let the container's user (10001, not the owner) read the release: mkdtemp made ``work`` 0700."""
    for dirpath, _d, files in os.walk(work):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


def bridge_gateway() -> str:
    """The Docker bridge's gateway: an address of this host, where a published port is reached through
    the kernel's NAT as from the LAN or the tailnet; '' when Docker does not say."""
    out = subprocess.run(
        ["docker", "network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return next((a for a in out if a.count(".") == 3), "")


def start_container(image: str, models: Path, threads: str, cpuset: str = "", also_on: str = "") -> tuple[str, int]:
    """The sidecar container, hardened as deployed, serving ``models`` read-only, its port published on
    127.0.0.1 (and on ``also_on``); its name and host port. A container that fails to start or to
    answer is removed."""
    port = free_port()
    name = f"edgeinfer-bench-{port}"
    extra = ["--cpuset-cpus", cpuset] if cpuset else []
    if also_on:
        extra += ["-p", f"{also_on}:{port}:9000"]
    try:
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--memory", "512m", "--pids-limit", "128",
             *extra, "-p", f"127.0.0.1:{port}:9000", "-v", f"{models}:/models:ro", "-e", f"EDGEINFER_THREADS={threads}", image],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        wait_http(port, "/healthz", 90)
    except (subprocess.CalledProcessError, RuntimeError):
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        raise
    return name, port


def container_under_wrk(
    image: str, models: Path, threads: str, bodies: dict[str, tuple[Path, str]], seconds: int
) -> dict[str, object]:
    """The container under wrk, unpinned, and its memory after the load (docker stats)."""
    cid, port = start_container(image, models, threads)
    try:
        url = f"http://127.0.0.1:{port}"
        cont: dict[str, object] = {
            f"binary c{c}": wrk(url + "/encode", *bodies["binary"], c, seconds) for c in (1, 16, 64)
        }
        cont["json c16"] = wrk(url + "/encode", *bodies["json"], 16, seconds)
        cont["mem_usage_after"] = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", cid], capture_output=True, text=True
        ).stdout.strip()
        return cont
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def container_on_one_core(
    results: dict, const: dict, image: str, models: Path, rel: Path, bodies: dict[str, tuple[Path, str]], seconds: int
) -> None:
    """The container pinned to SERVER_CPU with one inference thread: its constant-rate rows go into
    ``const``, its one-core targets into ``results``.

    The load reaches it as a client on the LAN or the tailnet does (``inventory/production`` publishes
    on 0.0.0.0): through the port published on the bridge's gateway, by the kernel's NAT. A client on
    the edge itself, through 127.0.0.1, also passes Docker's userland proxy (docker-proxy, a process
    that copies each byte across): its lone round trip is measured beside, for information."""
    gateway = bridge_gateway()
    host = gateway or "127.0.0.1"
    cid, port = start_container(image, models, "1", str(SERVER_CPU) if pinned() else "", also_on=gateway)
    try:
        for kind in ("json", "binary"):
            constant_rate(port, kind, seconds=2, host=host)  # warm-up
            const[f"container {kind}"] = served(port, kind, host=host)
        pid = int(
            subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True, text=True, check=True
            ).stdout
        )
        on_one_core(results, "container", port, pid, rel / "model_batch.onnx", bodies, seconds, host)
        if gateway:
            results["container_gateway"] = gateway
            results["lone"][LOOPBACK_PROXY] = lone(f"http://127.0.0.1:{port}", bodies, seconds)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-sidecar-"))
    models = work / "models"
    rel = make_release(
        models / "releases" / "v72pct", PRODUCTION / "tcn_encoder_for_edgeinfer.onnx", PRODUCTION / "model_config.json"
    )
    point_current(models, rel)
    bodies = request_bodies(work, rel)
    results: dict[str, object] = {"cpus": os.cpu_count(), "seconds": args.seconds}

    print("(a) ONNX Runtime in-process ...", file=sys.stderr, flush=True)
    results["ort"] = ort_limit(rel / "model_batch.onnx", args.seconds / 2)
    python, results["interpreter"] = edge_python()
    print(f"(b) naive FastAPI peer, on {results['interpreter']} ...", file=sys.stderr, flush=True)
    results["naive"] = measure_naive(work, rel, bodies, args.seconds, python)
    print("(c) sidecar on the host ...", file=sys.stderr, flush=True)
    env = sidecar_env(models, args.threads)
    results["sidecar_host"] = measure_host(env, bodies, args.seconds, python)
    print("(d) constant 250 req/s, load and server on separate cores ...", file=sys.stderr, flush=True)
    const = measure_constant_load(results, env, rel, bodies, args.seconds, python)
    results["constant_250"] = const

    if args.image:
        print(f"(c) building {args.image} from this tree ...", file=sys.stderr, flush=True)
        build_sidecar_image(args.image, args.base_image)
        print("(c) sidecar in its container ...", file=sys.stderr, flush=True)
        make_readable(work)
        results["sidecar_container"] = container_under_wrk(args.image, models, args.threads, bodies, args.seconds)
        container_on_one_core(results, const, args.image, models, rel, bodies, args.seconds)

    out = REPO / ".bench"
    out.mkdir(exist_ok=True)
    (out / "sidecar.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
