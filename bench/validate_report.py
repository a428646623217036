"""The Markdown section of bench_validate.py: how accurate the instrument is, one function per subsection.

Each subsection after the header is a list of lines that starts with a blank line.
"""

from __future__ import annotations

from typing import Any

from bench.validate_clients import ENGINE_CPU, SERVER_CPU

# The instrument's targets against the server's own account of the same requests.
WITNESS_RPS, WITNESS_P50 = 0.05, 0.10


def within(a: float, b: float, rel: float = 0.10) -> bool:
    return abs(a - b) <= rel * abs(b)


def _n(v: Any, nd: int = 2) -> str:
    return "–" if v is None else (f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}")


def markdown(r: dict[str, Any]) -> str:
    """The whole section, from the figures that bench() returns."""
    L = header(r) + headroom(r)
    for key, title in (("agree_delay2", "server with a 2 ms service time"), ("agree_plain", "server with no delay")):
        if key in r:
            L += agreement_with_wrk(r[key], key, title)
    for w in r.get("witness", []):
        L += witness_markdown(w)
    L += injected_delay(r) + coordinated_omission(r)
    return "\n".join(L) + "\n"


def header(r: dict[str, Any]) -> list[str]:
    """The title, the machine and how busy it was, and the commands that reproduce the figures."""
    m = r["machine"]
    s = r["seconds"]
    return [
        "## The instrument: accuracy of edgeinfer-validate's load engine",
        "",
        f"Machine: {m['cpu'] or 'unknown CPU'}, {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
        f"{m['wrk']}. Engine and wrk pinned to CPU {ENGINE_CPU}, the calibration server to CPU {SERVER_CPU}; "
        f"{s:g} s per measurement, all on 127.0.0.1. Load average (1 min) {m['loadavg_before']:.2f} before, "
        f"{m['loadavg_after']:.2f} after: other work shared the machine.",
        "",
        f"Command: `python bench/bench_validate.py --seconds {s:g}`; servers: "
        + ", ".join(f"`{v}`" for v in dict.fromkeys(r["servers"].values())),
    ]


def headroom(r: dict[str, Any]) -> list[str]:
    """The engine's most from one core, closed and open loop, against the design alternative; the 1,250 req/s target."""
    L = [
        "",
        "### Headroom (target: at least 5 x 250 = 1,250 req/s from one core)",
        "",
        "| load | req/s achieved | failed | p50 ms | p99 ms | engine CPU µs/request | one-core capacity req/s |",
        "|---|---|---|---|---|---|---|",
    ]
    c = r["closed_max"]
    L.append(
        f"| closed loop, 16 connections | {_n(c['rps'], 0)} | {c['failed']} | {_n(c['p50_ms'], 3)} | "
        f"{_n(c['p99_ms'], 3)} | {_n(c['cpu_us_per_req'], 1)} | {_n(c['one_core_capacity_rps'], 0)} |"
    )
    for rate in (1250, 2500):
        o = r[f"open_{rate}"]
        L.append(
            f"| open loop, {rate:,} req/s, 64 connections | {_n(o['rps'], 0)} ({o['requests']:,} of "
            f"{o['intended']:,}) | {o['failed']} | {_n(o['p50_ms'], 3)} | {_n(o['p99_ms'], 3)} | "
            f"{_n(o['cpu_us_per_req'], 1)} | {_n(o['one_core_capacity_rps'], 0)} |"
        )
    t = r["threads_httpclient"]
    L.append(
        f"| design alternative: 16 threads x http.client, closed | {_n(t['rps'], 0)} | 0 | {_n(t['p50_ms'], 3)} | "
        f"{_n(t['p99_ms'], 3)} | {_n(t['cpu_us_per_req'], 1)} | {_n(1e6 / t['cpu_us_per_req'], 0)} |"
    )
    o = r["open_1250"]
    ok = o["failed"] == 0 and within(o["rps"], 1250, 0.01)
    L += [
        "",
        f"**{'PASS' if ok else 'FAIL'}**: 1,250 req/s sustained open loop from one core, every request answered.",
        "One-core capacity is requests per CPU-second of the engine process; where the closed loop's req/s is "
        "below it, the single-core calibration server is the limit, not the engine.",
    ]
    return L


def agreement_with_wrk(a: dict[str, Any], key: str, title: str) -> list[str]:
    """wrk and the engine side by side on one calibration server, with wrk's own spread between its runs."""
    w, e = a["wrk"], a["engine"]
    L = [
        "",
        f"### Agreement with wrk, closed loop, 8 connections, {title}",
        "",
        f"Medians of {a['rounds']} alternating runs of each.",
        "",
        f"wrk: `{w['cmd']}` (socket errors: {w['errors']})",
        "",
        "| figure | wrk | engine | difference | wrk's own spread over its runs |",
        "|---|---|---|---|---|",
    ]
    verdicts = []
    for fig, label in (("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        diff = (e[fig] - w[fig]) / w[fig] * 100 if w[fig] else float("nan")
        own = [x[fig] for x in w["each"]]
        spread = (max(own) - min(own)) / w[fig] * 100 if w[fig] else float("nan")
        verdicts.append(within(e[fig], w[fig]))
        L.append(f"| {label} | {_n(w[fig], 3)} | {_n(e[fig], 3)} | {diff:+.1f} % | {spread:.1f} % |")
    if "rps_off_served" in w:
        L.append(
            f"| req/s against the server's own count (`/_stats`, the run's steady middle) | "
            f"{w['rps_off_served'] * 100:+.1f} % | {e['rps_off_served'] * 100:+.1f} % | | |"
        )
    if key == "agree_delay2":
        L += [
            "",
            f"Informative ({'within' if all(verdicts) else 'not all within'} 10 %): two clients can each be "
            "off; which one is right is settled against the server's own account below. Compare a difference "
            "with wrk's own spread between identical runs on this machine (the last column): a tail figure "
            "cannot agree better than wrk agrees with itself.",
        ]
    else:
        L += [
            "",
            f"Informative ({'within' if all(verdicts) else 'not all within'} 10 %): with no service time a "
            "request takes about 0.1 ms, so what each client reports is its own overhead and the scheduler's "
            "noise on a shared machine; the throughput is the single-core server's either way.",
        ]
    return L


def injected_delay(r: dict[str, Any]) -> list[str]:
    """A server slow on every 100th request: does each way of measuring see exactly 1 % slow?"""
    a = r["slow100_closed"]
    b = r["slow100_open"]
    L = [
        "",
        "### Injected delay: 20 ms on every 100th request",
        "",
        "| measurement | requests | share >= 20 ms | p50 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---|---|---|---|---|---|",
        f"| engine, closed loop, 8 connections | {a['requests']:,} | {a['share_ge_20ms'] * 100:.2f} % | "
        f"{_n(a['p50_ms'], 3)} | {_n(a['p99_ms'], 3)} | {_n(a['p999_ms'], 3)} | {_n(a['max_ms'], 3)} |",
    ]
    if "slow100_wrk" in r:
        w = r["slow100_wrk"]
        L.append(f"| wrk, same load | | | {_n(w['p50_ms'], 3)} | {_n(w['p99_ms'], 3)} | | |")
    L += [
        f"| engine, open loop 500 req/s, corrected | {b['requests']:,} | {b['share_ge_20ms'] * 100:.2f} % | "
        f"{_n(b['p50_ms'], 3)} | {_n(b['p99_ms'], 3)} | {_n(b['p999_ms'], 3)} | {_n(b['max_ms'], 3)} |",
        f"| engine, open loop 500 req/s, uncorrected | | {b['uncorrected_share_ge_20ms'] * 100:.2f} % | "
        f"{_n(b['uncorrected_p50_ms'], 3)} | {_n(b['uncorrected_p99_ms'], 3)} | | |",
        "",
        "Exactly 1 % of requests are slow, so the nearest-rank p99 falls on the boundary: the delay shows "
        "from p99.1 up, and the share of requests at or above 20 ms is the figure to read (1.00 % expected).",
    ]
    return L


def coordinated_omission(r: dict[str, Any]) -> list[str]:
    """A 200 ms freeze of the whole server, closed loop against open loop corrected and uncorrected."""
    sc, so = r["stall_closed"], r["stall_open"]
    return [
        "",
        "### Coordinated omission: the whole server freezes for 200 ms",
        "",
        "| measurement | requests | requests >= 100 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| closed loop, 8 connections | {sc['requests']:,} | {sc['ge_100ms']} | {_n(sc['p99_ms'], 2)} | "
        f"{_n(sc['max_ms'], 2)} |",
        f"| open loop 500 req/s, 8 connections, corrected | {so['requests']:,} | {so['ge_100ms']} | "
        f"{_n(so['p99_ms'], 2)} | {_n(so['max_ms'], 2)} |",
        f"| same, uncorrected (from the actual send) | | {so['uncorrected_ge_100ms']} | "
        f"{_n(so['uncorrected_p99_ms'], 2)} | |",
        "",
        "A closed loop (and an uncorrected open loop) charges the freeze to the few requests on the wire; "
        "measured from the intended send time, every request due during the freeze waited for it "
        "(about 0.1 s x 500 req/s = 50 requests of 100 ms or more).",
    ]


def witness_verdicts(engine_off: dict[str, float]) -> dict[str, bool]:
    """The engine's targets against the witness: req/s within 5 %, p50 within 10 %."""
    return {
        "rps": abs(engine_off["rps"]) <= WITNESS_RPS,
        "p50_ms": abs(engine_off["p50_ms"]) <= WITNESS_P50,
    }


def witness_markdown(w: dict[str, Any]) -> list[str]:
    """Each client's runs against the sidecar's own account, and the engine's targets against it."""
    c = w["connections"]
    L = [
        "",
        f"### Agreement with the server's own account (third witness), closed loop, {c} connections, the sidecar",
        "",
        f"The sidecar (the production model, ONNX Runtime, one inference thread) on CPU {SERVER_CPU}, "
        f"binary `/encode`; wrk (`wrk -t1 -c{c} --latency -s binary.lua`) and the engine (`edgeinfer_load.closed_loop`, in a process of "
        f"its own) in turn on CPU {ENGINE_CPU}, {w['rounds']} runs each. The witness is what the sidecar counted "
        'and timed for the same requests, from its /metrics: req/s is its `edgeinfer_requests_total{route="/encode"}` '
        "over the run's steady middle (1 s after the start to 1 s before the end) per second of that window; p50 "
        "and p99 are read from its `edgeinfer_request_duration_seconds` histogram over every request of the run "
        "(the difference of the scrapes before and after), interpolated linearly within the bucket that holds "
        "them, as Prometheus's `histogram_quantile` does; buckets are at most 11 % wide, and the p50 bucket is "
        "shown. The server's time excludes the kernel's loopback and its own HTTP parsing, so a client's "
        "latency should sit slightly above it.",
        "",
        "| client | run | client req/s | witness req/s | client p50 ms | witness p50 ms (bucket) | client p99 ms "
        "| witness p99 ms | requests (client / witness) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for client in ("engine", "wrk"):
        for i, x in enumerate(w[client], 1):
            v = x["witness"]
            lo, hi = v["p50_bucket_ms"]
            L.append(
                f"| {client} | {i} | {_n(x['rps'], 1)} | {_n(v['rps'], 1)} | {_n(x['p50_ms'], 3)} | "
                f"{_n(v['p50_ms'], 3)} ({lo:g}-{hi:g}) | {_n(x['p99_ms'], 3)} | {_n(v['p99_ms'], 3)} | "
                f"{x['requests']:,} / {v['requests']:,.0f} |"
            )
    L += [
        "",
        "Each client's error against the witness (median over its runs of (client - witness) / witness):",
        "",
        "| figure | engine | wrk | engine's target |",
        "|---|---|---|---|",
    ]
    ok = witness_verdicts(w["engine_off"])
    for fig, label, limit in (("rps", "req/s", WITNESS_RPS), ("p50_ms", "p50", WITNESS_P50), ("p99_ms", "p99", None)):
        e, k = w["engine_off"][fig], w["wrk_off"][fig]
        want = f"within {limit:.0%}: **{'PASS' if ok[fig] else 'FAIL'}**" if limit else "(informative)"
        L.append(f"| {label} | {e * 100:+.1f} % | {k * 100:+.1f} % | {want} |")
    return L
