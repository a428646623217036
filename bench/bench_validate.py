"""How accurate is the instrument? A benchmark of the load engine behind edgeinfer-validate.

    python bench/bench_validate.py [--json PATH] [--seconds S]

Prints a markdown section (machine, commands, figures) on stdout. Everything
runs on 127.0.0.1 against the calibration server
(``python -m edgeinfer_validate.testserver``, no model), pinned to CPU 1;
the engine and wrk are pinned to CPU 0, so "from one core" is literal.

1. Headroom: closed-loop maximum and open-loop constant rates of 5x and
   10x the deployment guide's 250 req/s target, with the engine's CPU time per request.
   For the record, the design alternative (one thread and one http.client
   connection per worker) is measured on the same core.
2. Agreement with wrk: the same server, connections and duration; throughput,
   p50 and p99 side by side, on a server with a 2 ms service time (the
   figures are then the server's, as in a real gate) and with none (where
   each client's own overhead is most of what it measures).
3. Agreement with the server itself (the third witness): the sidecar on CPU 1,
   binary /encode; wrk and the engine in turn, each compared with what the
   sidecar counted and timed (its request counter over a steady window of
   the run, its latency histogram over all of the run's requests).
4. Injected delay: a server that sleeps 20 ms on every 100th request; and a
   200 ms freeze of the whole server, measured closed loop, open loop
   corrected, open loop uncorrected.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import edgeinfer_load as lg  # noqa: E402
from bench.validate_clients import (  # noqa: E402
    ENGINE_CPU,
    PLAIN,
    CalibrationServer,
    agreement,
    engine_figures,
    run_wrk,
    threaded_httpclient,
    timed,
)
from bench.validate_report import markdown  # noqa: E402
from bench.validate_witness import PRODUCTION, witness_agreement  # noqa: E402


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk[0] if wrk else "missing",
        "loadavg_before": os.getloadavg()[0],
    }


def bench(seconds: float) -> dict[str, Any]:
    """Every figure of the section (markdown() renders them), ``seconds`` per measurement."""
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {ENGINE_CPU})
    out: dict[str, Any] = {"machine": machine(), "seconds": seconds, "servers": {}}
    with CalibrationServer() as srv:
        out["servers"]["plain"] = srv.shown
        lg.closed_loop(srv.target, PLAIN, 16, duration_s=1.0)  # warm-up
        res, cpu = timed(lambda: lg.closed_loop(srv.target, PLAIN, 16, duration_s=seconds))
        out["closed_max"] = engine_figures(res, cpu)
        for rate in (1250, 2500):
            res, cpu = timed(lambda rate=rate: lg.open_loop(srv.target, PLAIN, rate, seconds, concurrency=64))
            out[f"open_{rate}"] = engine_figures(res, cpu)
        out["threads_httpclient"] = threaded_httpclient(srv.target, 16, seconds)
        if shutil.which("wrk"):
            out["agree_plain"] = agreement(srv.target, 8, seconds)
    with CalibrationServer("--delay-ms", "2") as srv:
        out["servers"]["delay2"] = srv.shown
        lg.closed_loop(srv.target, PLAIN, 8, duration_s=1.0)
        if shutil.which("wrk"):
            out["agree_delay2"] = agreement(srv.target, 8, seconds, rounds=5)
    if shutil.which("wrk") and (PRODUCTION / "tcn_encoder_for_edgeinfer.onnx").is_file():
        # 8 connections as in the comparisons with wrk above, 16 as edgeinfer-validate's closed loop.
        out["witness"] = witness_agreement((8, 16), seconds)
    with CalibrationServer("--slow-every", "100", "--slow-ms", "20") as srv:
        out["servers"]["slow100"] = srv.shown
        res = lg.closed_loop(srv.target, PLAIN, 8, duration_s=seconds)
        f = engine_figures(res)
        f["share_ge_20ms"] = sum(1 for ms in res.latencies_ms if ms >= 20.0) / res.requests
        out["slow100_closed"] = f
        if shutil.which("wrk"):
            out["slow100_wrk"] = run_wrk(srv.target, 8, seconds)
        res = lg.open_loop(srv.target, PLAIN, 500, seconds, concurrency=8)
        f = engine_figures(res)
        f["share_ge_20ms"] = sum(1 for ms in res.latencies_ms if ms >= 20.0) / res.requests
        f["uncorrected_share_ge_20ms"] = sum(1 for ms in res.uncorrected_ms if ms >= 20.0) / res.requests
        out["slow100_open"] = f
    for name, mode in (("stall_closed", "closed"), ("stall_open", "open")):
        with CalibrationServer("--pause-at-s", "1.0", "--pause-s", "0.2") as srv:
            out["servers"]["stall"] = srv.shown
            if mode == "closed":
                res = lg.closed_loop(srv.target, PLAIN, 8, duration_s=max(seconds, 2.0))
            else:
                res = lg.open_loop(srv.target, PLAIN, 500, max(seconds, 2.0), concurrency=8)
            f = engine_figures(res)
            f["ge_100ms"] = sum(1 for ms in res.latencies_ms if ms >= 100.0)
            if mode == "open":
                f["uncorrected_ge_100ms"] = sum(1 for ms in res.uncorrected_ms if ms >= 100.0)
            out[name] = f
    out["machine"]["loadavg_after"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement (default 5)")
    a = ap.parse_args(argv)
    r = bench(a.seconds)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    sys.stdout.write(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
