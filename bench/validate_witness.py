"""The third witness of bench_validate.py: the sidecar's own account of the requests each client sent.

The sidecar serves the production model on SERVER_CPU; wrk and the engine, each in a process of its
own on ENGINE_CPU, load it in turn, and every run is compared with what the sidecar counted and
timed (bench/witness.py reads its /metrics).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import edgeinfer_load as lg
from bench import witness
from bench.validate_clients import ENGINE_CPU, SERVER_CPU, median, wrk_ms
from testbed.testserver import stop_process

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared"))
PRODUCTION = SHARED / "fixtures" / "origin-v72pct"  # the files of the model in production


ENGINE_RUN = """
import json, sys
import edgeinfer_load as lg
port, conns, seconds, body = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
window = json.load(open(body))
res = lg.closed_loop(lg.Target("127.0.0.1", port), lg.encode_request(window, binary=True), conns, duration_s=seconds)
s = lg.summarize(res.latencies_ms)
print(json.dumps({"rps": res.rps, "requests": res.requests, "failed": res.failed, "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"]}))
"""


class Sidecar:
    """The sidecar with the production model on ONNX Runtime, one inference thread, pinned to SERVER_CPU."""

    def __init__(self) -> None:
        from testbed.sidecar import free_port, make_release, point_current

        self.work = Path(tempfile.mkdtemp(prefix="bench-validate-"))
        models = self.work / "models"
        rel = make_release(
            models / "releases" / "v72pct",
            PRODUCTION / "tcn_encoder_for_edgeinfer.onnx",
            PRODUCTION / "model_config.json",
        )
        point_current(models, rel)
        window = json.loads((rel / "golden.json").read_text())["windows"][0]
        self.window = self.work / "window.json"
        self.window.write_text(json.dumps(window))
        import numpy as np

        self.body = self.work / "window.bin"
        self.body.write_bytes(np.asarray(window, "<f4").tobytes())
        self.lua = self.work / "binary.lua"
        self.lua.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n'
            'wrk.headers["Accept"] = "application/octet-stream"\n'
            f'local f = io.open("{self.body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        )
        self.port = free_port()
        env = dict(
            os.environ,
            EDGEINFER_MODEL_DIR=str(models / "current"),
            EDGEINFER_HOST="127.0.0.1",
            EDGEINFER_PORT=str(self.port),
            EDGEINFER_BACKEND="onnxruntime",
            EDGEINFER_THREADS="1",
            EDGEINFER_LOG_LEVEL="warning",
            PYTHONPATH=str(REPO),
        )
        pin = ["taskset", "-c", str(SERVER_CPU)] if (os.cpu_count() or 1) > 1 else []
        self.proc = subprocess.Popen([*pin, sys.executable, "-m", "sidecar"], cwd=REPO, env=env)
        for _ in range(300):
            try:
                witness.scrape(self.port)
                break
            except OSError:
                time.sleep(0.2)
        self.target = lg.Target("127.0.0.1", self.port)

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc, timeout=15)
        shutil.rmtree(self.work, ignore_errors=True)


def witnessed(srv: Sidecar, client: str, connections: int, seconds: float) -> dict[str, Any]:
    """One closed-loop run of ``client`` (wrk or the engine, in a process of its own on ENGINE_CPU), and what
    the sidecar itself saw: its /encode count over the run's steady middle (from 1 s after the start to
    1 s before the end) per second, and its latency histogram over every request of the run."""
    pin = ["taskset", "-c", str(ENGINE_CPU)] if (os.cpu_count() or 1) > 1 else []
    if client == "wrk":
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(srv.lua)]
        cmd.append(srv.target.url("/encode"))
    else:
        cmd = [sys.executable, "-c", ENGINE_RUN, str(srv.port), str(connections), str(seconds), str(srv.window)]
    before = witness.scrape(srv.port)
    proc = subprocess.Popen([*pin, *cmd], cwd=REPO, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    early = witness.scrape(srv.port)
    time.sleep(max(seconds - 2.0, 0.5))
    late = witness.scrape(srv.port)
    out, _ = proc.communicate(timeout=seconds + 60)
    after = witness.scrape(srv.port)
    if client == "wrk":
        if "Requests/sec" not in out:
            raise RuntimeError(f"wrk gave no figures: {' '.join(cmd)}\n{out}")
        dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
        got = {
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1)),
            "p50_ms": wrk_ms(dist["50"]) if "50" in dist else float("nan"),
            "p99_ms": wrk_ms(dist["99"]) if "99" in dist else float("nan"),
        }
        if "99" not in dist:
            print(f"wrk printed no p99:\n{out}", file=sys.stderr)
    else:
        got = json.loads(out)
    hist = witness.delta(before.buckets, after.buckets)
    p50, lo, hi = witness.quantile(hist, 0.5)
    p99, _lo, _hi = witness.quantile(hist, 0.99)
    got["witness"] = {
        "rps": (late.requests - early.requests) / (late.at - early.at),
        "requests": after.requests - before.requests,
        "p50_ms": p50 * 1000,
        "p50_bucket_ms": [lo * 1000, hi * 1000],
        "p99_ms": p99 * 1000,
    }
    return got


def witness_agreement(concurrencies: tuple[int, ...], seconds: float, rounds: int = 3) -> list[dict[str, Any]]:
    """At each concurrency, wrk and the engine in turn against one sidecar, ``rounds`` times; each run
    compared with the witness."""
    out: list[dict[str, Any]] = []
    with Sidecar() as srv:
        for connections in concurrencies:
            w: dict[str, Any] = {"rounds": rounds, "connections": connections, "wrk": [], "engine": []}
            lg.closed_loop(srv.target, lg.encode_request(binary=True), connections, duration_s=1.0)  # warm-up
            for _ in range(rounds):
                for client in ("wrk", "engine"):
                    w[client].append(witnessed(srv, client, connections, max(seconds, 3.0)))
            for client in ("wrk", "engine"):
                w[f"{client}_off"] = {
                    fig: median([witness.off(r[fig], r["witness"][fig]) for r in w[client]])
                    for fig in ("rps", "p50_ms", "p99_ms")
                }
            out.append(w)
    return out
