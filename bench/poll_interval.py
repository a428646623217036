"""Controller CPU of one-batch upgrades polling every 1 ms and every 10 ms, side by side (not a test).

ansible-core reads ``internal_poll_interval`` from ansible.cfg only, so each upgrade of the
other setting runs with that line changed in the repository's ansible.cfg, which is put back
as it was when the run ends. The two settings alternate on one loopback fleet; each upgrade
goes to a release built beforehand.

    .venv/bin/python bench/poll_interval.py --edges 3 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_deploy import controller_cpu  # noqa: E402
from testbed.deploy import IMAGE, make_bench  # noqa: E402
from testbed.fleet import Fleet  # noqa: E402

CFG = REPO / "ansible.cfg"
SETTINGS = {"1 ms": "0.001", "10 ms": "0.01"}


def configure(original: str, interval: str) -> None:
    lines = [line for line in original.splitlines() if not line.startswith("internal_poll_interval")]
    at = lines.index("[defaults]") + 1
    CFG.write_text("\n".join([*lines[:at], f"internal_poll_interval = {interval}", *lines[at:]]) + "\n")


def upgrade(bench, original: str, interval: str, v: int) -> tuple[float, float]:
    """Build v<v> with the repository's settings, then time its upgrade with ``interval``."""
    CFG.write_text(original)
    assert bench.playbook("build.yml", bench.vars(f"v{v}", v)).rc == 0
    configure(original, interval)
    c0, t0 = controller_cpu(), time.monotonic()
    run = bench.deploy(f"v{v}", seed=v, edgeinfer_serial="100%")
    assert run.rc == 0, run.explain()
    return controller_cpu() - c0, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="upgrades per setting (default 3)")
    args = ap.parse_args(argv)
    original = CFG.read_text()
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as d:
        fleet = Fleet.up(args.edges, Path(d) / "fleet")
        try:
            (Path(d) / "artifacts").mkdir()
            bench = make_bench(fleet, Path(d) / "artifacts", IMAGE, Path(d))
            bench.base_vars.update(edgeinfer_benchmark_p95_ms=1000, edgeinfer_benchmark_min_rps=5)
            assert bench.deploy("v1", seed=1, edgeinfer_serial="100%").rc == 0
            v = 2
            for r in range(args.rounds):
                for name in list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]:
                    figures[name].append(upgrade(bench, original, SETTINGS[name], v))
                    v += 1
        finally:
            CFG.write_text(original)
            fleet.down()
    print(
        f"| polling every | controller CPU-s of each upgrade ({args.edges} edges) | median | wall s |\n|---|---|---|---|"
    )
    for name, runs in figures.items():
        cpu = [round(c, 2) for c, _ in runs]
        print(
            f"| {name} | {', '.join(map(str, cpu))} | {statistics.median(cpu):.2f} | {', '.join(f'{t:.1f}' for _, t in runs)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
