"""A soak of the sidecar (`make soak`; not a test): a constant mixed load with hot reloads.

For `--minutes` (10 by default) a real sidecar process on 127.0.0.1 serves the production
encoder under a constant 250 requests/s: good requests (JSON and binary /encode, /infer)
and bad ones (broken JSON, a window of the wrong shape, a NaN in the window, a wrong
content type), while every `--reload-every` seconds (60) the release it serves is switched
and hot-reloaded. It passes when no good request failed, no request of any kind got a 5xx,
every bad request got a 4xx with a JSON error body, every reload was accepted, the resident
memory after the last reload is within 10 % of the memory after the first one (both read just
after a reload, so alike), and the open file descriptors are back to their count before the
load once it stops.

    python bench/soak.py [--minutes M] [--rate R] [--reload-every S]

Results: a Markdown table on stdout and .bench/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import edgeinfer_load as lg  # noqa: E402
from testbed.sidecar import make_release, point_current, start_server, stop_server  # noqa: E402

SHARED = Path(os.environ.get("EDGEINFER_SHARED", REPO.parent / "shared"))
PRODUCTION = SHARED / "fixtures" / "origin-v72pct"  # the files of the model in production
RSS_GROWTH = 0.10


def client_error(status: int, content_type: str, body: bytes) -> str | None:
    """A bad request must get a 4xx with a JSON error body (``{"error": ..., "detail": ...}``): anything
    else is a failure, named by what was wrong."""
    if not 400 <= status < 500:
        return f"status_{status}"
    try:
        answer = json.loads(body)
    except ValueError:
        return "error_body_not_json"
    if not isinstance(answer, dict) or "error" not in answer:
        return "error_body_without_error"
    return None


def mix() -> dict[str, tuple[lg.Request, float]]:
    """Each kind of request with its share of the load."""
    window = lg.synthetic_window()
    good_json = json.dumps({"imu_window": window}).encode()
    nan = [row[:] for row in window]
    nan[50][3] = float("nan")

    def bad(body: bytes, content_type: str = "application/json", path: str = "/encode") -> lg.Request:
        return lg.Request("POST", path, body, content_type, (), client_error)

    return {
        "good: /encode JSON": (lg.encode_request(window), 0.40),
        "good: /encode binary": (lg.encode_request(window, binary=True), 0.20),
        "good: /infer": (
            lg.Request("POST", "/infer", json.dumps({"x": window}).encode(), "application/json", (), lg.status_ok),
            0.20,
        ),
        "bad: broken JSON": (bad(good_json[: len(good_json) // 2]), 0.05),
        "bad: 99 x 9 window": (bad(json.dumps({"imu_window": window[:99]}).encode()), 0.05),
        "bad: NaN in the window": (bad(json.dumps({"imu_window": nan}).encode()), 0.05),
        "bad: text/plain": (bad(good_json, "text/plain"), 0.05),
    }


def serving_two_releases(prefix: str, names: tuple[str, str]) -> tuple[Path, list[Path], Any]:
    """A sidecar process serving the first of two releases of the production encoder, in a new
    temporary directory: its models directory, the two releases and the server."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    models = tmp / "models"
    onnx, config = PRODUCTION / "tcn_encoder_for_edgeinfer.onnx", PRODUCTION / "model_config.json"
    releases = [make_release(models / "releases" / name, onnx, config, version=name) for name in names]
    point_current(models, releases[0])
    return models, releases, start_server(tmp, models / "current")


def process_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"rss_mib": rss_kb / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    p.add_argument("--rate", type=float, default=250.0, help="requests/s of all kinds together (default 250)")
    p.add_argument("--reload-every", type=float, default=60.0, help="seconds between hot reloads (default 60)")
    return p


def soak(server: Any, models: Path, releases: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    """The mixed load for ``args.minutes``, one open loop per kind of request, while a thread switches
    ``models``/current between ``releases`` and hot-reloads every ``args.reload_every`` seconds.

    Returns the server process's figures before and after the load ("before", "after"), after each
    reload ("samples"), each reload's answer ("reloads") and each kind's load result ("loads")."""
    seconds = args.minutes * 60
    pid = server.proc.pid
    before = process_figures(pid)
    samples: list[dict[str, float]] = []
    reloads: list[dict[str, Any]] = []
    loads: dict[str, lg.LoadResult] = {}
    stop = threading.Event()

    def run(name: str, req: lg.Request, rate: float) -> None:
        # A few connections per kind: the sidecar's own connection limit is not what is soaked.
        target = lg.Target("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        loads[name] = lg.open_loop(target, req, rate, seconds, concurrency=max(2, min(8, int(rate / 10))))

    def reloader() -> None:
        n = 0
        while not stop.wait(args.reload_every):
            n += 1
            point_current(models, releases[n % 2])
            t0 = time.monotonic()
            r = server.reload()
            reloads.append({"at_s": round(time.monotonic() - started, 1), "status": r.status_code,
                            "seconds": round(time.monotonic() - t0, 3)})  # fmt: skip
            samples.append({"at_s": round(time.monotonic() - started, 1), **process_figures(pid)})

    started = time.monotonic()
    threads = [
        threading.Thread(target=run, args=(name, req, args.rate * share), daemon=True)
        for name, (req, share) in mix().items()
    ]
    threads.append(threading.Thread(target=reloader, daemon=True))
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(seconds + 120)
    stop.set()
    threads[-1].join(30)
    time.sleep(2)  # the clients' connections close; the server's side follows
    after = process_figures(pid)
    return {"before": before, "after": after, "samples": samples, "reloads": reloads, "loads": loads}


def kind_figures(loads: dict[str, lg.LoadResult]) -> dict[str, dict[str, Any]]:
    """Each kind of request: how many were sent and failed, the failures by kind, and the p99."""
    kinds = {}
    for name, r in loads.items():
        kinds[name] = {
            "requests": r.requests,
            "failed": r.failed,
            "failures": dict(r.failures),
            "p99_ms": round(lg.percentile(r.latencies_ms, 99), 2) if r.requests else None,
        }
    return kinds


def rss_warm_and_end(samples: list[dict[str, float]]) -> tuple[float | None, float | None]:
    """The RSS after the first reload and after the last one (None without a reload)."""
    warm = samples[0]["rss_mib"] if samples else None
    end = samples[-1]["rss_mib"] if samples else None
    return warm, end


def checks(kinds: dict[str, dict[str, Any]], run: dict[str, Any], alive: bool) -> dict[str, bool]:
    """The soak's pass criteria (the module's docstring), each by name."""
    five_xx = sum(n for k in kinds.values() for kind, n in k["failures"].items() if kind.startswith("status_5"))
    good_failed = sum(k["failed"] for name, k in kinds.items() if name.startswith("good"))
    bad_wrong = sum(k["failed"] for name, k in kinds.items() if name.startswith("bad"))
    warm, end = rss_warm_and_end(run["samples"])
    reloads = run["reloads"]
    return {
        "no good request failed": good_failed == 0,
        "no 5xx": five_xx == 0,
        "every bad request got a 4xx with a JSON error body": bad_wrong == 0,
        f"every reload accepted ({len(reloads)})": bool(reloads) and all(r["status"] == 200 for r in reloads),
        f"RSS after the last reload within {RSS_GROWTH:.0%} of after the first": (
            warm is not None and end is not None and end <= warm * (1 + RSS_GROWTH)
        ),
        "file descriptors back to the count before the load": run["after"]["fds"] <= run["before"]["fds"],
        "the process alive throughout": alive,
    }


def print_report(
    args: argparse.Namespace, run: dict[str, Any], kinds: dict[str, dict[str, Any]], verdicts: dict[str, bool]
) -> None:
    """The Markdown on stdout: the memory and descriptors, each kind's figures, each check's verdict."""
    before, after = run["before"], run["after"]
    warm, end = rss_warm_and_end(run["samples"])
    print(f"{args.minutes:g} minutes at {args.rate:g} requests/s, a hot reload every {args.reload_every:g} s; "
          f"RSS {before['rss_mib']:.1f} MiB before the load, {warm or 0:.1f} after the first reload, "
          f"{end or 0:.1f} after the last, {after['rss_mib']:.1f} once the load stopped; "
          f"open fds {before['fds']:.0f} before, {after['fds']:.0f} after.\n")  # fmt: skip
    print("| requests | sent | failed | failures | p99 ms |\n|---|---:|---:|---|---:|")
    for name, k in kinds.items():
        print(f"| {name} | {k['requests']} | {k['failed']} | {k['failures'] or '-'} | {k['p99_ms']} |")
    print("\n| check | verdict |\n|---|---|")
    for name, ok in verdicts.items():
        print(f"| {name} | **{'PASS' if ok else 'FAIL'}** |")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not (PRODUCTION / "tcn_encoder_for_edgeinfer.onnx").is_file():
        p.error(f"the production model's files are not at {PRODUCTION}; set EDGEINFER_SHARED to the shared/ folder")
    models, releases, server = serving_two_releases("edgeinfer-soak-", ("soak-a", "soak-b"))
    results: dict[str, Any] = {"minutes": args.minutes, "rate": args.rate, "reload_every_s": args.reload_every}
    try:
        run = soak(server, models, releases, args)
    finally:
        alive = server.alive()
        stop_server(server)

    kinds = kind_figures(run["loads"])
    verdicts = checks(kinds, run, alive)
    results.update(
        kinds=kinds,
        reloads=run["reloads"],
        samples=run["samples"],
        before=run["before"],
        after=run["after"],
        checks=verdicts,
    )
    out = REPO / ".bench" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_report(args, run, kinds, verdicts)
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
