"""The sidecar of two or more git revisions, side by side on one core (not a test).

Each revision's ``sidecar/`` and ``edgeinfer_contract/`` are exported to a directory of their own;
the servers take turns on SERVER_CPU (the order alternating by round), each measured with
bench_sidecar's pairs (ONNX Runtime batch 32 on that core before and after it, the server under
wrk with 16 connections from the other core), on the host rows' interpreter, whose venv holds the
pins of the working tree (revisions whose sidecar needs other packages are not comparable here).
The table is each revision's ratio to ONNX Runtime, its event-loop and model-thread CPU per
request, and per request how often the event loop blocked and woke again and how often the
inference thread was preempted (context switches from /proc). With ``--lone``, each turn is
instead a lone request's round trip (wrk with one connection, its p50) between two measurements
of ONNX Runtime's batch-1 inference on that core, and the table its margin over one inference
(bench_sidecar's lone target), with the sidecar's own mean time per request beyond its
backend's (from its /metrics: the request histogram's mean less the inference histogram's),
which the client and the kernel's loopback do not move.

    .venv/bin/python bench/sidecar_revisions.py 2cb7e6f HEAD --rounds 3
    .venv/bin/python bench/sidecar_revisions.py 2cb7e6f HEAD --rounds 6 --lone
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import witness  # noqa: E402
from bench.bench_sidecar import PRODUCTION, request_bodies, sidecar_env  # noqa: E402
from bench.edge_python import edge_python  # noqa: E402
from bench.sidecar_load import ROUTES, SERVER_CPU, pinned, stop, wait_http  # noqa: E402
from bench.sidecar_one_core import lone, paired  # noqa: E402
from testbed.sidecar import free_port, make_release, point_current  # noqa: E402


def export(rev: str, dest: Path) -> Path:
    """The sidecar and the contract package of ``rev``, as files under ``dest``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "sidecar", "edgeinfer_contract"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def one_pair(
    python: str, tree: Path, models: Path, rel: Path, body: tuple[Path, str], kind: str, seconds: int, one: bool
) -> dict:
    """One turn of the revision in ``tree``: a throughput pair, or with ``one`` a lone request's."""
    env = dict(sidecar_env(models, "1"), PYTHONPATH=str(tree), EDGEINFER_LOG_LEVEL="warning")
    port = free_port()
    pin = ["taskset", "-c", str(SERVER_CPU)] if pinned() else []
    p = subprocess.Popen([*pin, python, "-m", "sidecar"], cwd=tree, env=dict(env, EDGEINFER_PORT=str(port)))
    try:
        wait_http(port, "/healthz")
        if one:
            before = witness.sums(port, ROUTES[kind])
            url = f"http://127.0.0.1:{port}"
            r = lone(url, {kind: body}, seconds, model=rel / "model.onnx", rounds=1, kinds=(kind,))[kind]
            d = [a - b for a, b in zip(witness.sums(port, ROUTES[kind]), before, strict=True)]
            beyond = round((d[0] / d[1] - d[2] / d[3]) * 1e6, 1) if d[1] and d[3] else "-"
            return {**r, "beyond_backend_us": beyond}
        url = f"http://127.0.0.1:{port}{ROUTES[kind]}"
        return paired(rel / "model_batch.onnx", url, body, seconds, rounds=1, pid=p.pid)["pairs"][0]
    finally:
        stop(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revisions", nargs="+", help="git revisions (two or more)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", choices=sorted(ROUTES), default="binary")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--lone", action="store_true", help="a lone request's round trip instead of 16 connections")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sidecar-revisions-"))
    models = work / "models"
    rel = make_release(
        models / "releases" / "v72pct", PRODUCTION / "tcn_encoder_for_edgeinfer.onnx", PRODUCTION / "model_config.json"
    )
    point_current(models, rel)
    try:
        return compare(args, work, models, rel)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(args: argparse.Namespace, work: Path, models: Path, rel: Path) -> int:
    body = request_bodies(work, rel)[args.kind]
    trees = {rev: export(rev, work / f"rev{i}") for i, rev in enumerate(args.revisions)}
    python, interpreter = edge_python()
    if args.lone:
        print(f"{args.kind} {ROUTES[args.kind]}, a lone request (1 connection), on {interpreter}", flush=True)
        print("| round | revision | p50 ms | one inference ms | p50 over it, ms | sidecar beyond its backend, us |")
    else:
        print(f"{args.kind} {ROUTES[args.kind]}, 16 connections, on {interpreter}", flush=True)
        print(
            "| round | revision | ratio | by CPU time | event loop us/req | model threads us/req "
            "| event-loop wakes/req | inference preempted/req |"
        )
    print("|---|---|---|---|---|---|" + ("" if args.lone else "---|---|"))
    for rnd in range(args.rounds):
        order = args.revisions if rnd % 2 == 0 else args.revisions[::-1]
        for rev in order:
            r = one_pair(python, trees[rev], models, rel, body, args.kind, args.seconds, args.lone)
            if args.lone:
                print(
                    f"| {rnd + 1} | {rev} | {r['p50_ms']:.2f} | {r['inference_ms']:.3f} | {r['margin_ms']:.3f} "
                    f"| {r['beyond_backend_us']} |",
                    flush=True,
                )
                continue
            print(
                f"| {rnd + 1} | {rev} | {r['ratio']:.3f} | {r.get('cpu_ratio', float('nan')):.3f} "
                f"| {r.get('loop_us_per_request', '-')} | {r.get('model_us_per_request', '-')} "
                f"| {r.get('loop_wakes_per_request', '-')} | {r.get('inference_preempted_per_request', '-')} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
