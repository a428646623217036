"""The targets judged on the server's own core (bench_sidecar.py): the server pinned to SERVER_CPU with
one inference thread, the load on LOAD_CPU, each figure against ONNX Runtime measured on that core in
the same run, just before and just after."""

from __future__ import annotations

from pathlib import Path

from bench.sidecar_load import (
    LOAD_CPU,
    ROUTES,
    ort_one_core,
    ort_one_core_rates,
    pinned,
    served,
    switches,
    thread_cpu,
    wrk,
)
from bench.sidecar_report import LOAD_SHARE


def paired(
    model: Path, url: str, body: tuple[Path, str], seconds: int, rounds: int = 3, pid: int | None = None
) -> dict[str, object]:
    """The limit and the server measured by turns on the same core, ``rounds`` times.

    This VM's CPU speed drifts by 20 % and more between minutes (other tenants), so a
    ratio of two figures taken minutes apart measures the drift; each pair here is
    taken back to back, the limit both before and after the server (their mean is the
    pair's limit, which cancels a steady drift), and the median of the pairs' ratios is
    the figure. With the server's ``pid``, each pair also splits the server's CPU per
    request between its event-loop thread (HTTP, parsing, batching) and its other threads
    (the model), and counts their context switches per request."""
    pairs = []
    for _ in range(rounds):
        limit_before, cpu_before = ort_one_core_rates(model, seconds / 4)
        before = (thread_cpu(pid), switches(pid)) if pid else None
        server = wrk(url, *body, 16, seconds, cpu=LOAD_CPU)
        after = (thread_cpu(pid), switches(pid)) if pid else None
        limit_after, cpu_after = ort_one_core_rates(model, seconds / 4)
        limit = (limit_before + limit_after) / 2
        pair = {
            "limit": round(limit, 1),
            "limit_before_after": [round(limit_before, 1), round(limit_after, 1)],
            "server": server,
            "ratio": round(server["rps"] / limit, 3),
        }
        if before is not None and after is not None and server["requests"]:
            (cpu0, switched0), (cpu1, switched1), n = before, after, server["requests"]
            loop_us = (cpu1[0] - cpu0[0]) / n * 1e6
            model_us = (cpu1[1] - cpu0[1]) / n * 1e6
            pair["loop_us_per_request"] = round(loop_us, 1)
            pair["model_us_per_request"] = round(model_us, 1)
            # How often the event loop blocked to wake again, and the inference was preempted.
            pair["loop_wakes_per_request"] = round((switched1[0] - switched0[0]) / n, 3)
            pair["inference_preempted_per_request"] = round((switched1[1] - switched0[1]) / n, 3)
            # The same ratio from CPU time: requests per CPU-second of the server against inferences
            # per CPU-second of ONNX Runtime. Time that other work takes from the core moves neither.
            pair["cpu_ratio"] = round(1e6 / (loop_us + model_us) / ((cpu_before + cpu_after) / 2), 3)
        pairs.append(pair)
    ratios = sorted(p["ratio"] for p in pairs)
    return {"pairs": pairs, "median_ratio": ratios[len(ratios) // 2]}


def at_share_of_one_core(port: int, model: Path, seconds: float, host: str = "127.0.0.1") -> dict[str, object]:
    """The p99 target on the server's core: ONNX Runtime's batch-1 rate there (in a process of its
    own, before and after) and a constant load of LOAD_SHARE of it, JSON and binary. The single
    inference time is the mean of before and after."""
    before = ort_one_core(model, seconds / 4, batch=1)
    rate = round(LOAD_SHARE * before, 1)
    out: dict[str, object] = {"rate": rate}
    for kind in ("json", "binary"):
        out[kind] = served(port, kind, rate, host)
    after = ort_one_core(model, seconds / 4, batch=1)
    batch1 = (before + after) / 2
    out.update(batch1_before_after=[round(before, 1), round(after, 1)], batch1=round(batch1, 1))
    out["inference_ms"] = round(1000 / batch1, 3)
    return out


def lone(
    url: str,
    bodies: dict[str, tuple[Path, str]],
    seconds: int,
    model: Path | None = None,
    rounds: int = 3,
    kinds: tuple[str, ...] = ("binary", "json"),
) -> dict[str, dict[str, object]]:
    """A lone request's round trip: wrk with one connection, on the other core.

    With ``model``, each kind is measured ``rounds`` times, each time between two measurements of
    ONNX Runtime's batch-1 inference on the server's core, as the throughput pairs are: the target
    is a margin of 0.3 ms over a 1 ms inference, and this VM's speed drifts by more than that
    margin's share between minutes. The figure of a kind is its pair with the median margin (its
    ``inference_ms`` the mean of that pair's two), with every pair's margin beside it."""
    short = max(seconds // 2, 3)
    cpu = LOAD_CPU if pinned() else None
    out: dict[str, dict[str, object]] = {}
    for kind in kinds:
        if model is None:
            out[kind] = wrk(url + ROUTES[kind], *bodies[kind], 1, short, cpu=cpu)
            continue
        pairs = []
        for _ in range(rounds):
            before = ort_one_core(model, seconds / 4, batch=1)
            d = wrk(url + ROUTES[kind], *bodies[kind], 1, short, cpu=cpu)
            after = ort_one_core(model, seconds / 4, batch=1)
            d["inference_ms"] = round(2000 / (before + after), 3)
            d["margin_ms"] = round(d["p50_ms"] - d["inference_ms"], 3)
            pairs.append(d)
        pairs.sort(key=lambda d: d["margin_ms"])
        out[kind] = {**pairs[len(pairs) // 2], "margins_ms": [d["margin_ms"] for d in pairs]}
    return out


def on_one_core(
    results: dict,
    where: str,
    port: int,
    pid: int,
    model: Path,
    bodies: dict[str, tuple[Path, str]],
    seconds: int,
    host: str = "127.0.0.1",
) -> None:
    """The targets judged on the server's core (the server pinned to SERVER_CPU with one inference thread,
    the load on LOAD_CPU), reached at ``host``: the constant load and the lone request against ONNX
    Runtime's batch 1, then the throughput pairs against its batch 32."""
    url = f"http://{host}:{port}"
    results["share"][where] = at_share_of_one_core(port, model, seconds, host)
    results["lone"][where] = lone(url, bodies, seconds, model)
    if pinned():
        results["one_core"][where] = {
            kind: paired(model, url + ROUTES[kind], bodies[kind], seconds, pid=pid)
            for kind in ("binary", "json", "infer")
        }
