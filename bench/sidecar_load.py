"""The measuring tools of the sidecar benchmarks (bench_sidecar.py, bench_ab.py).

wrk (closed loop), the project's load engine at a constant rate in a process of its own,
ONNX Runtime on the server's core, and what the server process itself spent (CPU per
thread, resident memory). The load runs on LOAD_CPU and the server on SERVER_CPU where the
machine has two cores and taskset, so that neither steals the other's core.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import witness
from testbed.testserver import stop_process

REPO = Path(__file__).resolve().parents[1]

LOAD_CPU, SERVER_CPU = 0, 1
ROUTES = {"binary": "/encode", "json": "/encode", "infer": "/infer"}

OPEN_LOOP = """
import json, sys
import edgeinfer_load as lg
port, kind, rate, seconds, host = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
req = lg.Request("GET", "/") if kind == "plain" else lg.encode_request(binary=kind == "binary")
r = lg.open_loop(lg.Target(host, port), req, rate, seconds, concurrency=16)
print(json.dumps(r.to_dict()))
"""


def pinned() -> bool:
    return (os.cpu_count() or 1) > 1 and shutil.which("taskset") is not None


def ort_one_core(model: Path, seconds: float, batch: int = 32) -> float:
    """ONNX Runtime at ``batch``, one thread, in its own process on the server's core: inferences/s."""
    return ort_one_core_rates(model, seconds, batch)[0]


def ort_one_core_rates(model: Path, seconds: float, batch: int = 32) -> tuple[float, float]:
    """ort_one_core's inferences per second of wall time and per second of its CPU time."""
    code = "import sys; from speed import ort_rates; print(*ort_rates(sys.argv[1], 1, int(sys.argv[3]), float(sys.argv[2])))"
    pin = ["taskset", "-c", str(SERVER_CPU)] if pinned() else []
    out = subprocess.run(
        [*pin, sys.executable, "-c", code, str(model), str(seconds), str(batch)],
        cwd=Path(__file__).parent, capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    wall, cpu = out.split()
    return float(wall), float(cpu)


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process so far: its main thread (the event loop), and all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if task.name == str(pid):
            main += cpu
        else:
            other += cpu
    return main, other


def switches(pid: int) -> tuple[int, int]:
    """Context switches of a process so far: its main thread's voluntary ones (the event loop
    blocking, to wake on the next event) and its other threads' involuntary ones (the inference
    preempted)."""
    loop = preempted = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
        if task.name == str(pid):
            loop += int(status["voluntary_ctxt_switches"])
        else:
            preempted += int(status["nonvoluntary_ctxt_switches"])
    return loop, preempted


def wrk(url: str, body: Path, ctype: str, conns: int, seconds: int, cpu: int | None = None) -> dict[str, float]:
    """wrk (closed loop); on ``cpu`` alone (one wrk thread) when given."""
    lua = body.with_suffix(".lua")
    lua.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{ctype}"\nlocal f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    threads = 1 if cpu is not None else min(conns, 2)
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    r = subprocess.run(
        [*pin, "wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency", "-s", str(lua), url],
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
    done = re.search(r"^\s*(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "requests": int(done.group(1)) if done else 0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def constant_rate(
    port: int, kind: str, rate: float = 250, seconds: float = 10, host: str = "127.0.0.1"
) -> dict[str, float]:
    """Open loop through the project's calibrated load engine (edgeinfer_load; its
    accuracy is the "Measuring instrument" section), in a process of its own on LOAD_CPU:
    request i is due at t0 + i/rate, and latency counts from that due time."""
    cmd = [sys.executable, "-c", OPEN_LOOP, str(port), kind, str(rate), str(seconds), host]
    if pinned():
        cmd = ["taskset", "-c", str(LOAD_CPU), *cmd]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 60, check=True)
    r = json.loads(proc.stdout)
    lat = r["latency"]
    return {
        "rate": rate,
        "n": r["requests"],
        "failed": r["failed"],
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "max_ms": lat["max_ms"],
    }


def served(port: int, kind: str, rate: float = 250, host: str = "127.0.0.1") -> dict[str, float]:
    """constant_rate against ``host``, plus what the sidecar itself measured for those requests (its
    histogram, read through 127.0.0.1): the share served within 5 ms and its p50 and p99
    (interpolated within their buckets)."""
    route = ROUTES[kind]
    before = witness.scrape(port, route).buckets
    r = constant_rate(port, kind, rate, host=host)
    delta = witness.delta(before, witness.scrape(port, route).buckets)
    total = delta[math.inf] or 1.0
    r["served_within_5ms"] = round(delta.get(0.005, 0.0) / total, 4)
    r["served_p50_ms"] = round(witness.quantile(delta, 0.50)[0] * 1000, 3)
    r["served_p99_ms"] = round(witness.quantile(delta, 0.99)[0] * 1000, 3)
    return r


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
    """A server, given the time of its graceful shutdown (uvicorn's 10 s) before it is killed."""
    stop_process(proc, timeout=15)
