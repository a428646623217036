"""The serving model's cost of a shadow (`make bench-ab`; not a test).

One sidecar process, pinned to one core with one inference thread (as in bench_sidecar.py), the
load on the other core. The same process serves with the shadow off and on (POST and DELETE
/admin/shadow between runs), in interleaved pairs whose order alternates (off-on, on-off, ...),
because this machine's speed drifts up to 4 x from minute to minute: each pair's ratio is taken
within a minute, and the figure is the median of the pairs' ratios.

(a) p99 of the serving model at the constant load of the sidecar latency benchmark (12 % of ONNX
    Runtime's batch-1 capacity on the server's core, measured just before), binary /encode, from
    the project's load engine: shadow on / off, target <= 1.2.
(b) throughput at 16 connections (wrk, binary /encode) with the shadow on, as a share of it off.
(c) the sidecar's memory (VmRSS) with the serving model alone and with the shadow loaded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import witness  # noqa: E402
from bench.bench_sidecar import PRODUCTION  # noqa: E402
from bench.sidecar_load import (  # noqa: E402
    LOAD_CPU,
    SERVER_CPU,
    constant_rate,
    ort_one_core,
    pinned,
    stop,
    wait_http,
    wrk,
)
from bench.sidecar_report import LOAD_SHARE  # noqa: E402
from bench.speed import row  # noqa: E402
from testbed.sidecar import free_port, make_release, perturbed_onnx, point_current  # noqa: E402

MAX_P99_RATIO = 1.2  # the serving model's p99 with the shadow on, as a multiple of it off
# Other work on the 2-core machine stalls the server's core for up to a second or more, which is
# the p99 of a 10 s run at this load: when the shadow-off runs' p99 differ by more than this
# factor, the machine, not the shadow, set the figures, and the verdict says inconclusive.
MAX_OFF_SPREAD = 3.0
# Nor is a run conclusive whose shadow-off p99 is beyond this many single inferences: the sidecar
# benchmark's target at this load is 6 x, so a p99 far past it is the machine's stalls.
MAX_OFF_INFERENCES = 20.0
SHARE = "0.1"  # EDGEINFER_SHADOW_SHARE: the sidecar's default, what playbooks/ab.yml runs with


def admin(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        answer = json.loads(resp.read() or b"{}")
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} answered {resp.status}: {answer}")
        return answer
    finally:
        conn.close()


def rss_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


class Toggle:
    """The shadow of one sidecar process, switched on and off between runs."""

    def __init__(self, port: int, token: str, release: str) -> None:
        self.port, self.token, self.release = port, token, release
        self.on = False
        self.last: dict[str, Any] = {}

    def set(self, on: bool) -> None:
        if on and not self.on:
            admin(self.port, "POST", "/admin/shadow", self.token, {"release": self.release})
        elif self.on and not on:
            self.last = admin(self.port, "DELETE", "/admin/shadow", self.token)["final_report"]
        self.on = on


def pairs(toggle: Toggle, rounds: int, measure: Any, key: str) -> list[dict[str, Any]]:
    """``rounds`` pairs of runs, shadow off and on, the order alternating; each pair's on/off ratio of ``key``."""
    out = []
    for i in range(rounds):
        pair: dict[str, Any] = {}
        for on in (False, True) if i % 2 == 0 else (True, False):
            toggle.set(on)
            pair["on" if on else "off"] = measure()
            if on:
                toggle.set(False)  # the final report: what the shadow saw during the run
                pair["shadow"] = {
                    k: toggle.last.get(k) for k in ("mirrored_windows", "dropped_windows", "error_windows")
                }
        pair["ratio"] = round(pair["on"][key] / pair["off"][key], 3) if pair["off"][key] else float("nan")
        out.append(pair)
    return out


def at_constant_load(port: int, rate: float, seconds: float) -> dict[str, Any]:
    """The load engine's figures (client side, from each request's due time) and the sidecar's own
    p99 of the same requests (its histogram): a stall of the load's core moves only the first."""
    before = witness.scrape(port, "/encode").buckets
    r = constant_rate(port, "binary", rate, seconds)
    delta = witness.delta(before, witness.scrape(port, "/encode").buckets)
    r["served_p99_ms"] = round(witness.quantile(delta, 0.99)[0] * 1000, 3)
    return r


def median(values: list[float]) -> float:
    return float(np.median(values))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10, help="seconds of each constant-load run (default 10)")
    ap.add_argument("--wrk-seconds", type=int, default=6, help="seconds of each wrk run (default 6)")
    ap.add_argument("--rounds", type=int, default=5, help="pairs of runs per figure (default 5)")
    return ap.parse_args()


def prepare(work: Path) -> tuple[Path, Path, str, Path]:
    """Under ``work``: the serving release (current) and a candidate beside it, the admin token, and
    a binary /encode body. Returns the models folder, the serving release, the token and the body."""
    models = work / "models"
    serving = make_release(
        models / "releases" / "v72pct", PRODUCTION / "tcn_encoder_for_edgeinfer.onnx", PRODUCTION / "model_config.json"
    )
    point_current(models, serving)
    # The candidate: the same architecture with other weights (the cost of a retrained model).
    candidate_onnx = perturbed_onnx(serving / "model.onnx", work / "candidate.onnx")
    make_release(
        models / "releases" / "candidate", candidate_onnx, PRODUCTION / "model_config.json", version="candidate"
    )
    token = "bench-ab-" + os.urandom(8).hex()
    (work / "token").write_text(token)
    body = work / "w.bin"
    raw = np.asarray(json.loads((serving / "golden.json").read_text())["windows"][0], np.float32)
    body.write_bytes(raw.astype("<f4").tobytes())
    return models, serving, token, body


def sidecar_env(models: Path, work: Path, port: int) -> dict[str, str]:
    """One inference thread, the admin API on (the token under ``work``), the shadow at its default share."""
    return dict(
        os.environ,
        EDGEINFER_MODEL_DIR=str(models / "current"),
        EDGEINFER_HOST="127.0.0.1",
        EDGEINFER_PORT=str(port),
        EDGEINFER_BACKEND="onnxruntime",
        EDGEINFER_THREADS="1",
        EDGEINFER_ADMIN_TOKEN_FILE=str(work / "token"),
        EDGEINFER_SHADOW_SHARE=SHARE,
        PYTHONPATH=str(REPO),
    )


def measure_memory(results: dict[str, Any], toggle: Toggle, pid: int) -> None:
    """(c) VmRSS serving alone (after a warm-up), then with the shadow just loaded."""
    results["memory_off"] = rss_mib(pid)
    toggle.set(True)
    results["memory_on"] = rss_mib(pid)
    toggle.set(False)


def measure_p99(toggle: Toggle, port: int, rate: float, args: argparse.Namespace) -> list[dict[str, Any]]:
    """(a) The pairs of constant-load runs, each with the on/off ratio of the sidecar's own p99 too."""
    print("(a) p99 at the constant load, shadow off and on ...", file=sys.stderr, flush=True)
    out = pairs(toggle, args.rounds, lambda: at_constant_load(port, rate, args.seconds), "p99_ms")
    for pair in out:
        off, on = pair["off"]["served_p99_ms"], pair["on"]["served_p99_ms"]
        pair["served_ratio"] = round(on / off, 3) if off else float("nan")
    return out


def measure_throughput(toggle: Toggle, port: int, body: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """(b) The pairs of wrk runs at 16 connections, wrk on the load's core."""
    print("(b) throughput at 16 connections, shadow off and on ...", file=sys.stderr, flush=True)
    url = f"http://127.0.0.1:{port}/encode"
    cpu = LOAD_CPU if pinned() else None
    return pairs(
        toggle,
        args.rounds,
        lambda: wrk(url, body, "application/octet-stream", 16, args.wrk_seconds, cpu=cpu),
        "rps",
    )


def memory_after_load(toggle: Toggle, port: int, pid: int, rate: float, seconds: float) -> dict[str, float]:
    """(c) VmRSS (and its peak) with the shadow on after a constant-load run and its final report."""
    toggle.set(True)
    constant_rate(port, "binary", rate, seconds=seconds)
    memory = rss_mib(pid)
    toggle.set(False)
    return memory


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    models, serving, token, body = prepare(work)

    batch1 = ort_one_core(serving / "model_batch.onnx", 3, batch=1)
    rate = round(LOAD_SHARE * batch1, 1)
    print(f"machine: {batch1:,.0f} inferences/s at batch 1; constant load {rate:g} req/s", file=sys.stderr)
    port = free_port()
    env = sidecar_env(models, work, port)
    pin = ["taskset", "-c", str(SERVER_CPU)] if pinned() else []
    proc = subprocess.Popen([*pin, sys.executable, "-m", "sidecar"], cwd=REPO, env=env)
    results: dict[str, Any] = {"batch1": round(batch1, 1), "rate": rate, "share": float(SHARE), "pinned": pinned()}
    try:
        wait_http(port, "/healthz")
        toggle = Toggle(port, token, "releases/candidate")
        constant_rate(port, "binary", rate, seconds=2)  # warm-up
        measure_memory(results, toggle, proc.pid)
        results["p99"] = measure_p99(toggle, port, rate, args)
        results["throughput"] = measure_throughput(toggle, port, body, args)
        results["memory_on_after_load"] = memory_after_load(toggle, port, proc.pid, rate, args.seconds)
    finally:
        stop(proc)
    out = REPO / ".bench"
    out.mkdir(exist_ok=True)
    (out / "ab.json").write_text(json.dumps(results, indent=2))
    print(report(results, args))
    return 0


def p99_verdict(r: dict[str, Any]) -> tuple[float, bool, str]:
    """The median on/off ratio of the serving p99, whether it meets MAX_P99_RATIO, and the verdict,
    marked inconclusive when the shadow-off runs show the machine, not the shadow, set the figures."""
    p99 = median([p["ratio"] for p in r["p99"]])
    ok = p99 <= MAX_P99_RATIO
    offs = [p["off"]["p99_ms"] for p in r["p99"]]
    spread = max(offs) / min(offs)
    verdict = "PASS" if ok else "FAIL"
    one = 1000 / r["batch1"]
    if spread > MAX_OFF_SPREAD or median(offs) > MAX_OFF_INFERENCES * one:
        verdict += (
            f" (inconclusive: the shadow-off p99 was {median(offs):,.1f} ms, {median(offs) / one:,.0f} x one inference, "
            f"and varied {spread:.1f} x between pairs: other work stalled the machine)"
        )
    return p99, ok, verdict


def setup_line(r: dict[str, Any], rounds: int) -> str:
    """How the figures were taken: the cores, the two releases, the share, the pairs."""
    where = (
        f"pinned to CPU {SERVER_CPU} with one inference thread, the load on CPU {LOAD_CPU}"
        if r["pinned"]
        else "not pinned (fewer than 2 cores or no taskset)"
    )
    return (
        f"One sidecar process, {where}; "
        f"the serving model is the production model's release, the shadow a release of the same architecture "
        f"with other weights, at `EDGEINFER_SHADOW_SHARE={r['share']:g}` (the default), loaded and dropped between runs. "
        f"{rounds} interleaved pairs per figure (order alternating), the median of the pairs' ratios."
    )


def targets_table(r: dict[str, Any], p99: float, verdict: str) -> list[str]:
    """The p99 target, its cross-check by the sidecar's own histogram, and the throughput for information."""
    served = median([p["served_ratio"] for p in r["p99"]])
    rps = median([p["ratio"] for p in r["throughput"]])
    return [
        "| target | measured | wanted | verdict |",
        "|---|---|---|---|",
        f"| serving p99 at a constant {r['rate']:g} req/s (binary /encode), shadow on / off | {p99:.3f} | "
        f"<= {MAX_P99_RATIO:g} | **{verdict}** |",
        f"| the same, the sidecar's own p99 of those requests (its histogram; cross-check) | {served:.3f} | "
        f"<= {MAX_P99_RATIO:g} | **{'PASS' if served <= MAX_P99_RATIO else 'FAIL'}** |",
        f"| throughput at 16 connections (wrk, binary /encode), shadow on as a share of off | {rps:.3f} | "
        "(informative) | **n/a** |",
    ]


def pairs_table(r: dict[str, Any]) -> list[str]:
    """Every pair of runs, with what the shadow mirrored, dropped and failed during the shadow-on run."""
    lines = [
        "| figure | pair | shadow off | shadow on | on / off | shadow mirrored / dropped / failed windows |",
        "|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(r["p99"], 1):
        lines.append(
            f"| served p99 (sidecar histogram) | {i} | {p['off']['served_p99_ms']:,.2f} ms | "
            f"{p['on']['served_p99_ms']:,.2f} ms | {p['served_ratio']:.3f} | |"
        )
    for name, key, unit in (("p99", "p99_ms", "ms"), ("throughput", "rps", "req/s")):
        for i, p in enumerate(r[name], 1):
            s = p.get("shadow", {})
            lines.append(
                f"| {name} | {i} | {p['off'][key]:,.2f} {unit} | {p['on'][key]:,.2f} {unit} | {p['ratio']:.3f} | "
                f"{s.get('mirrored_windows')} / {s.get('dropped_windows')} / {s.get('error_windows')} |"
            )
    return lines


def memory_line(r: dict[str, Any], seconds: float) -> str:
    m0, m1, m2 = r["memory_off"], r["memory_on"], r["memory_on_after_load"]
    return (
        f"Memory of the sidecar process (VmRSS): {m0['VmRSS']} MiB serving alone (after a warm-up), {m1['VmRSS']} MiB "
        f"with the shadow just loaded, {m2['VmRSS']} MiB with the shadow after {seconds:g} s of the constant "
        f"load and its report (peak VmHWM {m2['VmHWM']} MiB)."
    )


def report(r: dict[str, Any], args: argparse.Namespace) -> str:
    p99, ok, verdict = p99_verdict(r)
    lines = [
        row(r["batch1"]),
        "",
        setup_line(r, args.rounds),
        "",
        *targets_table(r, p99, verdict),
        "",
        *pairs_table(r),
        "",
        memory_line(r, args.seconds),
        "",
        f"PASS/FAIL: p99 ratio {p99:.3f} {'<=' if ok else '>'} {MAX_P99_RATIO:g}: {verdict}. "
        "Every figure: `.bench/ab.json`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
