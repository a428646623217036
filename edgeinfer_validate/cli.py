"""The command line: ``edgeinfer-validate [--quick] [--host H --port P] ...``.

Phases, in order: health (GET /healthz, waiting up to --wait), output quality
(one /encode answer, then the golden set when --golden is given), warm-up,
closed-loop throughput at --concurrency, open-loop constant rate at --rate
(latency from each request's intended send time). Memory and CPU of the
sidecar container are sampled during both load phases.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import ipaddress
import json
import os
import platform
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

import edgeinfer_load as lg

from .resources import resource_sampler
from .usage import usage_problems

# Exit status: 0 when every check passed; otherwise the sum of the bits of the
# checks that failed (a check that did not run sets no bit). 1 and 2 are never
# sums of bits: 1 is an unexpected error, 2 a usage error (argparse's).
EXIT_BITS = {"health": 4, "latency": 8, "throughput": 16, "success": 32, "quality": 64, "memory": 128}
EXIT_ERROR = 1
EXIT_USAGE = 2
# The load engine a report was measured with (the edgeinfer_load package of this checkout or install).
ENGINE = str(Path(lg.__file__).resolve().parent)

EPILOG = """\
exit status:
  0    every check passed
  1    unexpected error (nothing was judged)
  2    usage error (an option out of its range, an unwritable --json or --report)
  otherwise the sum of the bits of the checks that failed:
    4 health   /healthz not 200, or not the expected model (the load phases then do not run)
    8 latency  open-loop p95 (all requests, failures included) >= --p95-ms, or more than 1 %
               of the open loop's schedule unsent (the rate asked was not delivered)
   16 throughput  closed-loop successful req/s <= --min-rps
   32 success  success rate over the load requests sent <= --min-success
   64 quality  an /encode answer is not 64 finite values, or a golden cosine < --min-cosine
  128 memory   peak container memory >= --max-memory-mb, or memory could not be measured:
               only the container publishing --port is (use --skip-memory to gate without it)
  e.g. 24 = latency + throughput.

examples:
  edgeinfer-validate --quick
  edgeinfer-validate --host edge.tailfdc654.ts.net --port 9000 --golden release/golden.json --report out/
"""


def _version() -> str:
    """The installed edgeinfer-deploy's version (pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgeinfer-deploy")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _add_target_args(ap: argparse.ArgumentParser) -> None:
    """Which sidecar, which endpoint, and what it must say it serves."""
    t = ap.add_argument_group("target")
    t.add_argument("--host", default="127.0.0.1", help="sidecar host (default 127.0.0.1)")
    t.add_argument("--port", type=int, default=9000, help="sidecar port (default 9000)")
    t.add_argument("--path", default="/encode", help="endpoint under load (default /encode)")
    t.add_argument("--binary", action="store_true", help="send windows as 3600 bytes of float32, not JSON")
    t.add_argument(
        "--replay",
        metavar="PATH",
        help="send these windows in turn instead of one synthetic window: a capture of real traffic "
        "(model_tools capture --replay; raw float32, 3600 bytes a window)",
    )
    t.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait up to S s for /healthz to be healthy (default 0)"
    )
    t.add_argument("--expect-model-version", metavar="V", help="/healthz must report this model_version")
    t.add_argument("--expect-sha256", metavar="HEX", help="/healthz model_sha256 must start with this")


def _add_load_args(ap: argparse.ArgumentParser) -> None:
    """How long and how hard: the closed loop's connections, the open loop's rate."""
    load = ap.add_argument_group("load")
    load.add_argument("--quick", action="store_true", help="about 10 s in all: 1 s warm-up, 4 s per load phase")
    load.add_argument("--duration", type=float, metavar="S", help="seconds per load phase (default 15, quick 4)")
    load.add_argument("--warmup", type=float, metavar="S", help="seconds of unrecorded load first (default 3, quick 1)")
    load.add_argument("--concurrency", type=int, default=16, help="connections of the closed loop (default 16)")
    load.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="open-loop requests/s (default: the --min-rps target; 0 skips the phase)",
    )
    load.add_argument(
        "--open-concurrency", type=int, default=64, help="most requests in flight in the open loop (default 64)"
    )
    load.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="a request slower than this fails (default 5)"
    )


def _add_quality_args(ap: argparse.ArgumentParser) -> None:
    q = ap.add_argument_group("output quality")
    q.add_argument("--golden", metavar="PATH", help="golden.json of the release: replay it and compare cosines")
    q.add_argument("--golden-limit", type=int, metavar="N", help="replay only the first N windows (quick: 8)")
    q.add_argument("--min-cosine", type=float, default=0.99, help="lowest golden cosine that passes (default 0.99)")


def _add_threshold_args(ap: argparse.ArgumentParser) -> None:
    """The deploy targets each check is judged against."""
    g = ap.add_argument_group("targets")
    g.add_argument(
        "--p95-ms", type=float, default=50.0, help="highest 95th percentile latency that passes, ms (default 50)"
    )
    g.add_argument(
        "--min-rps", type=float, default=250.0, help="lowest throughput that passes, successful req/s (default 250)"
    )
    g.add_argument("--min-success", type=float, default=0.99, help="fraction, default 0.99")
    g.add_argument("--max-memory-mb", type=float, default=512.0, help="MiB, default 512")
    g.add_argument("--skip-memory", action="store_true", help="do not gate on memory (it is still reported if seen)")


def _add_resource_args(ap: argparse.ArgumentParser) -> None:
    """Where to read the sidecar container's memory and CPU: the local Docker socket, or over ssh."""
    r = ap.add_argument_group("memory and CPU of the sidecar container")
    r.add_argument(
        "--docker",
        choices=("auto", "socket", "ssh", "none"),
        default="auto",
        help="auto: the local socket for a loopback host, else ssh to --ssh-host",
    )
    r.add_argument("--container", metavar="NAME", help="container name (default: compose service label)")
    r.add_argument(
        "--compose-service",
        default="edgeinfer-sidecar",
        help="compose service label of the container (default %(default)s)",
    )
    r.add_argument(
        "--compose-project", metavar="P", help="compose project label, when several projects run the service"
    )
    r.add_argument("--docker-socket", default="/var/run/docker.sock", help="Docker engine socket (default %(default)s)")
    r.add_argument("--ssh-host", metavar="[USER@]HOST", help="default: --host")


def _add_report_args(ap: argparse.ArgumentParser) -> None:
    o = ap.add_argument_group("report")
    o.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    o.add_argument("--report", metavar="DIR", help="write report.json, report.md and PNG plots into DIR")
    o.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="edgeinfer-validate",
        description="Validate an EdgeInfer sidecar against the deploy targets (P95 < 50 ms, > 250 req/s, "
        "success > 99 %, memory < 512 MB) with persistent connections, every request counted.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # One argument group each, in the order --help lists them.
    _add_target_args(ap)
    _add_load_args(ap)
    _add_quality_args(ap)
    _add_threshold_args(ap)
    _add_resource_args(ap)
    _add_report_args(ap)
    return ap


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last: dict[str, Any] | None = None

    def __call__(self, p: dict[str, Any]) -> None:
        self.last = p
        if self.enabled and self.tty:
            sys.stderr.write("\r" + self.line(p) + "   ")
            sys.stderr.flush()

    @staticmethod
    def line(p: dict[str, Any]) -> str:
        return (
            f"[{p['mode']}] {p['elapsed_s']:5.1f}/{p['duration_s']:.0f} s  {p['requests']:>8} req  "
            f"{p['rps']:8.1f} req/s  {p['failed']} failed  {p['inflight']} in flight"
        )

    def say(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(("\r" if self.tty else "") + text + "\n")
            sys.stderr.flush()

    def end(self) -> None:
        if self.enabled and self.last is not None:
            sys.stderr.write(("\r" if self.tty else "") + self.line(self.last) + "\n")
            sys.stderr.flush()
        self.last = None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _settings(a: argparse.Namespace) -> dict[str, Any]:
    duration = a.duration if a.duration is not None else (4.0 if a.quick else 15.0)
    warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 3.0)
    rate = a.rate if a.rate is not None else a.min_rps
    limit = a.golden_limit if a.golden_limit is not None else (8 if a.quick else None)
    return {
        "duration_s": duration,
        "warmup_s": warmup,
        "rate": rate,
        "golden_limit": limit,
        "concurrency": a.concurrency,
        "open_concurrency": a.open_concurrency,
        "timeout_s": a.timeout,
        "path": a.path,
        "binary": a.binary,
        "replay": a.replay,
        "quick": a.quick,
    }


def run(a: argparse.Namespace, progress: Progress) -> tuple[dict[str, Any], dict[str, lg.LoadResult]]:
    s = _settings(a)
    thresholds = lg.Thresholds(
        p95_ms=a.p95_ms,
        min_rps=a.min_rps,
        min_success_rate=a.min_success,
        max_memory_mb=None if a.skip_memory else a.max_memory_mb,
        min_cosine=a.min_cosine,
    )
    plan = lg.Plan(
        target=lg.Target(a.host, a.port),
        path=a.path,
        binary=a.binary,
        concurrency=a.concurrency,
        duration_s=s["duration_s"],
        warmup_s=s["warmup_s"],
        rate=s["rate"],
        open_concurrency=a.open_concurrency,
        timeout_s=a.timeout,
        wait_s=a.wait,
        expect={"model_version": a.expect_model_version, "model_sha256": a.expect_sha256},
        golden=lg.GoldenSet.load(a.golden) if a.golden else None,  # ValueError: reported by main as a usage error
        golden_limit=s["golden_limit"],
        replay=lg.load_replay(a.replay) if a.replay else None,  # ValueError: reported by main as a usage error
    )
    started = time.time()
    head: dict[str, Any] = {
        "tool": "edgeinfer-validate",
        "started_at": _dt.datetime.fromtimestamp(started, _dt.UTC).isoformat(timespec="seconds"),
        "command": "edgeinfer-validate " + shlex.join(sys.argv[1:] if a._argv is None else a._argv),
        "settings": s,
        "machine": {
            "hostname": platform.node(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "engine": ENGINE,
    }
    sampler = resource_sampler(a, _is_loopback(a.host))
    body, phases = lg.run_benchmark(plan, thresholds, sampler, progress.say, progress, progress.end)
    report = {**head, **body}
    report["exit_code"] = sum(EXIT_BITS[c["name"]] for c in report["checks"] if c["status"] == "failed")
    report["elapsed_s"] = round(time.time() - started, 2)
    return report, phases


def _print_summary(report: dict[str, Any]) -> None:
    for c in report["checks"]:
        print(f"{c['status'].upper():8} {c['name']:<11} {c['detail']}")
    print(f"{'PASSED' if report['passed'] else 'FAILED'} (exit {report['exit_code']}) in {report['elapsed_s']} s")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    a._argv = argv
    problems = usage_problems(a, _settings(a))
    if problems:
        ap.error("; ".join(problems))
    progress = Progress(not a.no_progress)
    try:
        report, phases = run(a, progress)
    except ValueError as exc:  # a bad --golden file and the like: the user's input
        ap.error(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    _print_summary(report)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    if a.report:
        from .report import write_report

        for path in write_report(report, phases, Path(a.report)):
            print(f"wrote {path}")
    return report["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
