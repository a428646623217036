"""The sidecar's resident memory over hot reloads with no traffic (not a test).

A real sidecar process on 127.0.0.1 serves one of two releases of the production encoder;
``--reloads`` times (40) the release ``current`` points to is switched and ``/admin/reload``
called, back to back, and the process's RSS is printed every ``--every`` reloads (10). It
separates what reloads cost in memory from what traffic costs, which the soak (bench/soak.py)
sees together.

    .venv/bin/python bench/reload_memory.py --reloads 40 --every 10
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.soak import process_figures, serving_two_releases  # noqa: E402
from testbed.sidecar import point_current, stop_server  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reloads", type=int, default=40)
    ap.add_argument("--every", type=int, default=10, help="print the RSS every this many reloads")
    args = ap.parse_args()
    models, releases, server = serving_two_releases("edgeinfer-reload-memory-", ("a", "b"))
    try:
        print("| reloads | RSS MiB | open fds |\n|---|---|---|")
        figures = process_figures(server.proc.pid)
        print(f"| 0 | {figures['rss_mib']:.1f} | {figures['fds']} |", flush=True)
        for n in range(1, args.reloads + 1):
            point_current(models, releases[n % 2])
            r = server.reload()
            if r.status_code != 200:
                print(f"reload {n} answered {r.status_code}: {r.text[:300]}", file=sys.stderr)
                return 1
            if n % args.every == 0:
                figures = process_figures(server.proc.pid)
                print(f"| {n} | {figures['rss_mib']:.1f} | {figures['fds']} |", flush=True)
    finally:
        stop_server(server)
        shutil.rmtree(models.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
