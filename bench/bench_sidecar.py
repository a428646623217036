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
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.sidecar.conftest import free_port, make_release, point_current  # noqa: E402

SHARED = Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared"))
ORIGIN = SHARED / "fixtures" / "origin-v72pct"

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
    import onnxruntime as ort

    out = {}
    x1 = np.random.default_rng(0).standard_normal((1, 100, 9)).astype(np.float32)
    for label, threads, batch in (("batch 1, 1 thread", 1, 1), ("batch 32, 2 threads", 2, 32)):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
        s = ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])
        x = np.repeat(x1, batch, axis=0)
        for _ in range(20):
            s.run(None, {"imu_window": x})
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            s.run(None, {"imu_window": x})
            n += batch
        out[label] = n / (time.perf_counter() - t0)
    return out


def wrk(url: str, body: Path, ctype: str, conns: int, seconds: int) -> dict[str, float]:
    lua = body.with_suffix(".lua")
    lua.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{ctype}"\nlocal f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    r = subprocess.run(
        ["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{seconds}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    text = r.stdout

    def ms(tag: str) -> float:
        m = re.search(rf"^\s*{tag}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def constant_rate(
    host: str, port: int, path: str, body: bytes, ctype: str, rate: float, seconds: float
) -> dict[str, float]:
    """Open loop: request i is due at t0 + i/rate; latency counts from that due time."""
    workers = 4
    lat: list[float] = []
    fails = [0]
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.2
    total = int(rate * seconds)

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        for i in range(k, total, workers):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("POST", path, body, {"Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except OSError:
                conn = http.client.HTTPConnection(host, port, timeout=10)
                ok = False
            with lock:
                lat.append((time.perf_counter() - due) * 1000)
                fails[0] += not ok

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a = np.asarray(lat)
    return {
        "rate": rate,
        "n": len(a),
        "failed": fails[0],
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
    }


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.2)


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing healthy on port {port}{path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--image", default="edgeinfer/sidecar:dev", help="container to bench ('' to skip)")
    ap.add_argument("--threads", default="1", help="EDGEINFER_THREADS of the sidecar")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-sidecar-"))
    models = work / "models"
    rel = make_release(
        models / "releases" / "v72pct", ORIGIN / "tcn_encoder_for_edgeinfer.onnx", ORIGIN / "model_config.json"
    )
    point_current(models, rel)
    raw = np.asarray(json.loads((rel / "golden.json").read_text())["windows"][0], np.float32)
    bodies = {
        "binary": (work / "w.bin", "application/octet-stream"),
        "json": (work / "w.json", "application/json"),
        "infer": (work / "x.json", "application/json"),
    }
    bodies["binary"][0].write_bytes(raw.astype("<f4").tobytes())
    bodies["json"][0].write_text(json.dumps({"imu_window": raw.tolist()}))
    bodies["infer"][0].write_text(json.dumps({"x": raw.tolist()}))
    results: dict[str, object] = {"cpus": os.cpu_count(), "seconds": args.seconds}

    print("(a) ONNX Runtime in-process ...", flush=True)
    results["ort"] = ort_limit(rel / "model_batch.onnx", args.seconds / 2)

    print("(b) naive FastAPI peer ...", flush=True)
    try:
        import fastapi  # noqa: F401

        app_py = work / "naive_app.py"
        app_py.write_text(f"MODEL = {str(rel / 'model.onnx')!r}\n" + NAIVE)
        port = free_port()
        p = subprocess.Popen(
            [
                sys.executable,
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
            results["naive"] = {
                f"c{c}": wrk(f"http://127.0.0.1:{port}/infer", *bodies["infer"], c, args.seconds) for c in (1, 16, 64)
            }
        finally:
            stop(p)
    except ImportError:
        results["naive"] = "fastapi is not installed"

    print("(c) sidecar on the host ...", flush=True)
    port = free_port()
    token = work / "token"
    token.write_text("bench\n")
    env = dict(
        os.environ,
        EDGEINFER_MODEL_DIR=str(models / "current"),
        EDGEINFER_HOST="127.0.0.1",
        EDGEINFER_PORT=str(port),
        EDGEINFER_BACKEND="onnxruntime",
        EDGEINFER_THREADS=args.threads,
        PYTHONPATH=str(REPO),
    )
    p = subprocess.Popen([sys.executable, "-m", "sidecar"], cwd=REPO, env=env)
    try:
        wait_http(port, "/healthz")
        rss = RssSampler(p.pid)
        rss.start()
        url = f"http://127.0.0.1:{port}"
        host: dict[str, object] = {}
        for c in (1, 16, 64):
            host[f"binary c{c}"] = wrk(url + "/encode", *bodies["binary"], c, args.seconds)
        for c in (1, 16, 64):
            host[f"json c{c}"] = wrk(url + "/encode", *bodies["json"], c, args.seconds)
        host["infer c64"] = wrk(url + "/infer", *bodies["infer"], 64, args.seconds)
        host["constant 250/s json"] = constant_rate(
            "127.0.0.1", port, "/encode", bodies["json"][0].read_bytes(), "application/json", 250, 10
        )
        host["constant 250/s binary"] = constant_rate(
            "127.0.0.1", port, "/encode", bodies["binary"][0].read_bytes(), "application/octet-stream", 250, 10
        )
        rss.stop.set()
        host["peak_rss_mib"] = round(rss.peak / 1024, 1)
        results["sidecar_host"] = host
    finally:
        stop(p)

    if args.image and subprocess.run(["docker", "image", "inspect", args.image], capture_output=True).returncode == 0:
        print("(c) sidecar in its container ...", flush=True)
        for dirpath, _d, files in os.walk(work):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        port = free_port()
        cid = subprocess.run(
            ["docker", "run", "-d", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--memory", "512m", "--pids-limit", "128",
             "-p", f"127.0.0.1:{port}:9000", "-v", f"{models}:/models:ro", "-e", f"EDGEINFER_THREADS={args.threads}", args.image],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        try:
            wait_http(port, "/healthz", 90)
            url = f"http://127.0.0.1:{port}"
            cont: dict[str, object] = {
                f"binary c{c}": wrk(url + "/encode", *bodies["binary"], c, args.seconds) for c in (1, 16, 64)
            }
            cont["json c16"] = wrk(url + "/encode", *bodies["json"], 16, args.seconds)
            cont["constant 250/s json"] = constant_rate(
                "127.0.0.1", port, "/encode", bodies["json"][0].read_bytes(), "application/json", 250, 10
            )
            mem = subprocess.run(
                ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", cid], capture_output=True, text=True
            ).stdout.strip()
            cont["mem_usage_after"] = mem
            results["sidecar_container"] = cont
        finally:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)

    out = REPO / ".bench"
    out.mkdir(exist_ok=True)
    (out / "sidecar.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
