"""The clients that bench_validate.py compares, and the calibration server they load.

The project's load engine (edgeinfer_load), wrk, and the design alternative (one thread and one
http.client connection per worker), each reduced to the same figures; the calibration server
(``python -m edgeinfer_validate.testserver``, no model) pinned to SERVER_CPU, the clients to
ENGINE_CPU, so that "from one core" is literal.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import threading
import time
from typing import Any

import edgeinfer_load as lg
from bench import witness
from testbed import testserver

ENGINE_CPU, SERVER_CPU = 0, 1
PLAIN = lg.Request("GET", "/")


class CalibrationServer(testserver.CalibrationServer):
    """The calibration server pinned to SERVER_CPU (when there is more than one core)."""

    def __init__(self, *args: str) -> None:
        super().__init__(*(["--cpu", str(SERVER_CPU), *args] if (os.cpu_count() or 1) > 1 else args))


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def timed(fn: Any) -> tuple[Any, float]:
    c0 = cpu_seconds()
    out = fn()
    return out, cpu_seconds() - c0


def threaded_httpclient(target: lg.Target, concurrency: int, seconds: float) -> dict[str, Any]:
    """The alternative design: one thread per connection, http.client, keep-alive."""
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=5)
        mine = []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.request("GET", "/")
            conn.getresponse().read()
            mine.append((time.perf_counter() - t0) * 1000)
        conn.close()
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    c0 = cpu_seconds()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_seconds() - c0
    elapsed = time.perf_counter() - t0
    s = lg.summarize(lat)
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "cpu_us_per_req": cpu / len(lat) * 1e6,
    }


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk_ms(text: str) -> float:
    """A latency as wrk prints it (``812.00us``, ``1.23ms``, ``2.00s``), in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def run_wrk(target: lg.Target, connections: int, seconds: float) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", target.url("/")]
    if (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", str(ENGINE_CPU), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "cmd": " ".join(cmd[3:] if cmd[0] == "taskset" else cmd),
        "rps": rps,
        "p50_ms": wrk_ms(dist["50"]),
        "p99_ms": wrk_ms(dist["99"]),
        "errors": errors.group(1) if errors else "none",
    }


def engine_figures(res: lg.LoadResult, cpu: float | None = None) -> dict[str, Any]:
    s = lg.summarize(res.latencies_ms)
    out = {
        "requests": res.requests,
        "failed": res.failed,
        "rps": res.rps,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "p999_ms": s["p999_ms"],
        "max_ms": s["max_ms"],
    }
    if cpu is not None:
        out["cpu_s"] = cpu
        out["cpu_us_per_req"] = cpu / res.requests * 1e6 if res.requests else None
        out["one_core_capacity_rps"] = res.requests / cpu if cpu else None
    if res.mode == "open":
        u = lg.summarize(res.uncorrected_ms)
        out.update(uncorrected_p50_ms=u["p50_ms"], uncorrected_p99_ms=u["p99_ms"], intended=res.intended)
    return out


def median(xs: list[float]) -> float:
    """The middle value; of an even count, the mean of the two middle values."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class ServedRate:
    """The calibration server's own count of load requests (``GET /_stats``), read 1 s after a run
    starts and 1 s before it ends, from timer threads: its rate over the run's steady middle."""

    def __init__(self, target: lg.Target, seconds: float) -> None:
        self.target = target
        self.samples: list[tuple[float, int]] = []
        self.timers = [threading.Timer(t, self.take) for t in (1.0, max(seconds - 1.0, 1.5))]

    def take(self) -> None:
        t = time.perf_counter()
        _status, stats = lg.http_get_json(self.target, "/_stats")
        self.samples.append((t, stats["requests"]))

    def __enter__(self) -> ServedRate:
        for timer in self.timers:
            timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for timer in self.timers:
            timer.join()

    @property
    def rps(self) -> float:
        (t0, n0), (t1, n1) = sorted(self.samples)
        return (n1 - n0) / (t1 - t0)


def agreement(target: lg.Target, connections: int, seconds: float, rounds: int = 3) -> dict[str, Any]:
    """wrk and the engine in alternation, ``rounds`` times each; the median of each figure, and of
    each client's req/s error against the server's own count.

    Alternating spreads whatever else the machine does over both clients alike.
    """
    runs: dict[str, list[dict[str, Any]]] = {"wrk": [], "engine": []}
    for _ in range(rounds):
        with ServedRate(target, seconds) as served:
            figures = run_wrk(target, connections, seconds)
        runs["wrk"].append({**figures, "served_rps": served.rps})
        with ServedRate(target, seconds) as served:
            figures = engine_figures(lg.closed_loop(target, PLAIN, connections, duration_s=seconds))
        runs["engine"].append({**figures, "served_rps": served.rps})
    out: dict[str, Any] = {"rounds": rounds}
    for who, rs in runs.items():
        out[who] = {k: median([r[k] for r in rs]) for k in ("rps", "p50_ms", "p99_ms")}
        out[who]["each"] = [{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "served_rps")} for r in rs]
        out[who]["rps_off_served"] = median([witness.off(r["rps"], r["served_rps"]) for r in rs])
    out["wrk"]["cmd"] = runs["wrk"][0]["cmd"]
    out["wrk"]["errors"] = runs["wrk"][0]["errors"]
    return out
