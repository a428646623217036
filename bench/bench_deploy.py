"""Deploy timings on loopback edges over real SSH (`make bench`; not a test).

No-op redeploy, model upgrade (artifacts already built) under 250 req/s of background
traffic with its failed requests and p99, and rollback, on one edge, each with its task
executions and controller CPU, judged against the lean path's targets; then the upgrade
of a fleet of N edges, with the controller's and the edges' CPU per edge, and a projection
of larger rollouts from those figures. Prints a markdown section; --json writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import build_sidecar_image  # noqa: E402
from bench.speed import ORIGIN_ONNX, ort_rate  # noqa: E402
from bench.speed import row as speed_row  # noqa: E402
from testbed.deploy import IMAGE, make_bench  # noqa: E402
from testbed.fleet import Fleet  # noqa: E402
from testbed.load import BackgroundLoad  # noqa: E402


class StepFailed(RuntimeError):
    pass


# The lean path's targets on one loopback edge (docs/deploy.md, The lean path).
TARGETS = {"noop_s": 5.0, "rollback_s": 8.0, "upgrade_s_plus_gate": 20.0, "controller_cpu_per_edge": 3.0}
TASK_TARGETS = {"upgrade": 30, "noop": 10}


def edge_tasks(run, host: str = "edge-1") -> int:
    """Task executions of one edge in the run's per-edge play (testbed/ansible_run.py says which)."""
    return len(run.edge_tasks(host))


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


BUSY: dict[int, float] = {}  # id(run) -> share of the machine's CPU busy during it
CPU: dict[int, dict[str, float]] = {}  # id(run) -> CPU-seconds by where they were spent


def controller_cpu() -> float:
    """CPU-seconds of every child process this benchmark has waited for: ansible-playbook, its
    workers and their ssh clients (the controller's side; ssh's persistent masters excepted)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU-seconds of the process and of the children it has reaped)."""
    tick, table = os.sysconf("SC_CLK_TCK"), {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(d.name)] = (int(f[1]), sum(int(v) for v in f[11:15]) / tick)
    return table


def edge_cpu(fleet: Fleet | None) -> float:
    """CPU-seconds of the process trees of the edges' sshd: the module runs on the edges, the
    gates' load generators included (the edge's side; the containers excepted). A tree's total
    is each living process's own time plus what it has reaped; the ssh connections persist
    across tasks, so the living sessions are counted, not only the listener's reaped ones."""
    if fleet is None:
        return 0.0
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [e.pid for e in fleet.edges if e.pid in table]
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def timed(fn, fleet: Fleet | None = None):
    t0, (b0, a0), c0, e0 = time.monotonic(), cpu_jiffies(), controller_cpu(), edge_cpu(fleet)
    run = fn()
    elapsed = time.monotonic() - t0
    b1, a1 = cpu_jiffies()
    BUSY[id(run)] = (b1 - b0) / max(a1 - a0, 1)
    machine = (b1 - b0) / os.sysconf("SC_CLK_TCK")
    controller, edges = controller_cpu() - c0, edge_cpu(fleet) - e0
    CPU[id(run)] = {
        "machine": round(machine, 1),
        "controller": round(controller, 1),
        "edges": round(edges, 1),
        "rest": round(machine - controller - edges, 1),
    }
    if run.rc != 0:
        tail = [line for line in run.stdout.splitlines() if '"msg"' in line][-3:]
        raise StepFailed("; ".join(t.strip() for t in tail) or run.stderr[-500:])
    return round(elapsed, 1), run


def one_edge(tmp: Path, artifacts: Path) -> dict[str, object]:
    fleet = Fleet.up(1, tmp / "fleet1")
    try:
        (tmp / "one").mkdir(exist_ok=True)
        bench = make_bench(fleet, artifacts, IMAGE, tmp / "one")
        fresh, fresh_run = timed(lambda: bench.deploy("v1", seed=1))
        noop, noop_run = timed(lambda: bench.deploy("v1", seed=1))
        # Build v2 on GPUSRV first, so that the upgrade is timed with its artifacts built.
        timed(lambda: bench.playbook("build.yml", bench.vars("v2", 2)))
        window = [[0.1 * (i % 7), 0.0, 9.8, 0.0, 0.0, 0.0, 20.0, -8.0, 40.0] for i in range(100)]
        body = json.dumps({"imu_window": window}).encode()
        with BackgroundLoad(fleet.edges[0].sidecar_port, rate=250, body=body) as load:
            upgrade, upgrade_run = timed(lambda: bench.deploy("v2", seed=2), fleet)
        rollback, rollback_run = timed(lambda: bench.playbook("rollback.yml", bench.base_vars))
        gate = float(bench.base_vars["edgeinfer_benchmark_duration"]) + float(
            bench.base_vars["edgeinfer_benchmark_warmup"]
        )
        return {
            "fresh_deploy_s": fresh,
            "noop_redeploy_s": noop,
            "upgrade_s": upgrade,
            "rollback_s": rollback,
            "benchmark_gate_s": gate,
            "tasks": {
                "fresh": edge_tasks(fresh_run),
                "noop": edge_tasks(noop_run),
                "upgrade": edge_tasks(upgrade_run),
                "rollback": edge_tasks(rollback_run),
            },
            "upgrade_cpu_s": CPU[id(upgrade_run)],
            "switch_requests": load.sent,
            "switch_failed": load.failed,
            "switch_p99_ms": round(load.p99_ms(), 2),
        }
    finally:
        fleet.down()


def fleet_upgrade(tmp: Path, artifacts: Path, n: int) -> dict[str, object]:
    """Fresh deploy of n edges in one batch; an upgrade through the default rollout (a canary,
    then 25 %, then the rest); then an upgrade of all n edges in one batch to a release built
    beforehand (transfer, stage, switch, reload, gates: the figure compared across sizes)."""
    fleet = Fleet.up(n, tmp / f"fleet{n}")
    try:
        (tmp / f"n{n}").mkdir(exist_ok=True)
        bench = make_bench(fleet, artifacts, IMAGE, tmp / f"n{n}")
        # n sidecars and their n load benchmarks share these 2 cores at once: the benchmark
        # gate still runs, with thresholds loosened so that the figures time the deploy, not
        # this machine's contention (the gates themselves are tested in tests/).
        bench.base_vars.update(edgeinfer_benchmark_p95_ms=1000, edgeinfer_benchmark_min_rps=5)
        fresh, _ = timed(lambda: bench.deploy("v1", seed=1, edgeinfer_serial="100%"))
        rollout, _ = timed(lambda: bench.deploy("v2", seed=2))
        timed(lambda: bench.playbook("build.yml", bench.vars("v3", 3)))
        one_batch, run = timed(lambda: bench.deploy("v3", seed=3, edgeinfer_serial="100%"), fleet)
        return {
            "edges": n,
            "fresh_deploy_s": fresh,
            "upgrade_rollout_s": rollout,
            "upgrade_one_batch_s": one_batch,
            "upgrade_one_batch_cpu_busy": round(BUSY[id(run)], 3),
            "upgrade_one_batch_cpu_s": CPU[id(run)],
        }
    finally:
        fleet.down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--fleet", type=int, nargs="*", default=[1, 3, 10], help="fleet sizes to time (default 1 3 10)")
    ap.add_argument("--base-image", default="edgeinfer/base:bookworm", help=f"BASE_IMAGE of the {IMAGE} build")
    args = ap.parse_args(argv)
    speed = ort_rate(ORIGIN_ONNX, 1, 1, 3.0) if ORIGIN_ONNX.is_file() else None
    build_sidecar_image(IMAGE, args.base_image)  # the edges run the image of this tree, built before timing
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as d:
        tmp = Path(d)
        artifacts = tmp / "artifacts"
        artifacts.mkdir()
        figures: dict[str, object] = {"one_edge": one_edge(tmp, artifacts)}
        figures["fleet"] = []
        for n in args.fleet:
            try:
                figures["fleet"].append(fleet_upgrade(tmp, artifacts, n))
            except StepFailed as exc:
                print(f"fleet of {n}: a step failed: {exc}", file=sys.stderr)
                figures["fleet"].append({"edges": n, "failed": str(exc)[:300]})
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return report(figures, speed)


def report(figures: dict, speed: float | None) -> int:
    """The markdown section of the run; 1 when a fleet size failed."""
    one = figures["one_edge"]
    print("## Deploy timings\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
        "edges are loopback sshd hosts, the sidecar runs in the local Docker engine.\n"
    )
    print("Command: `.venv/bin/python bench/bench_deploy.py`\n")
    if speed:
        print(f"This run's {speed_row(speed)}.\n")
    print_targets(one)
    print(
        f"\nDuring the upgrade, background traffic at 250 req/s on one persistent connection: "
        f"{one['switch_requests']} requests, {one['switch_failed']} failed, p99 {one['switch_p99_ms']} ms.\n"
    )
    print(
        "| edges | fresh deploy, one batch (s) | upgrade, canary 1 then 25 % then the rest (s) "
        "| upgrade, one batch (s) | CPU busy during it |\n|---|---|---|---|---|"
    )
    for row in figures["fleet"]:
        if "failed" in row:
            print(f"| {row['edges']} | failed: {row['failed']} | | | |")
            continue
        print(
            f"| {row['edges']} | {row['fresh_deploy_s']} | {row['upgrade_rollout_s']} | {row['upgrade_one_batch_s']} "
            f"| {row['upgrade_one_batch_cpu_busy']:.0%} of {os.cpu_count()} cores |"
        )
    ok_rows = [r for r in figures["fleet"] if "failed" not in r]
    print_cpu_table(ok_rows)
    print_flatness_and_projection(ok_rows, one)
    print_fleet_walls(ok_rows)
    print(
        "The benchmark gate of the fleet runs is loosened (p95 <= 1000 ms, >= 5 req/s): n sidecars and n load "
        "benchmarks share 2 cores at once, and these figures time the deploy.\n"
    )
    return 1 if len(ok_rows) < len(figures["fleet"]) else 0


def print_cpu_table(ok_rows: list[dict]) -> None:
    """Where the CPU of each one-batch upgrade went."""
    if any("upgrade_one_batch_cpu_s" in r for r in ok_rows):
        print(
            "\nWhere the CPU of the one-batch upgrade went, in CPU-seconds (machine = all cores busy; controller = "
            "ansible-playbook, its workers and ssh clients; edges = the module runs and gate load generators "
            "reaped by each edge's sshd; rest = sidecar containers, Docker, ssh masters, kernel):\n"
        )
        print("| edges | wall s | machine | controller | controller per edge | edges | edges per edge | rest |")
        print("|---|---|---|---|---|---|---|---|")
        for row in ok_rows:
            c = row.get("upgrade_one_batch_cpu_s")
            if c:
                n = row["edges"]
                print(
                    f"| {n} | {row['upgrade_one_batch_s']} | {c['machine']} | {c['controller']} "
                    f"| {c['controller'] / n:.1f} | {c['edges']} | {c['edges'] / n:.1f} | {c['rest']} |"
                )


def print_fleet_walls(ok_rows: list[dict]) -> None:
    """Each one-batch upgrade's wall time against the 1-edge one (information: these cores are shared)."""
    base = next((r for r in ok_rows if r["edges"] == 1), None)
    if base:
        print()
        for row in ok_rows:
            ratio = row["upgrade_one_batch_s"] / base["upgrade_one_batch_s"]
            line = f"{row['edges']} edges in one batch take {ratio:.2f} x the 1-edge upgrade"
            c = row.get("upgrade_one_batch_cpu_s")
            if row["edges"] > 1 and c:
                # Information, not a target: on 2 shared cores every simulated edge's module runs,
                # reload and benchmark compete with the controller, where real edges bring their own CPUs.
                cores = os.cpu_count() or 1
                bound = max(base["upgrade_one_batch_s"], c["controller"] / cores)
                line += (
                    f" with the machine's CPU {row['upgrade_one_batch_cpu_busy']:.0%} busy; with edges that bring "
                    f"their own CPUs, the controller's {c['controller']} CPU-s on these {cores} cores bound it below "
                    f"by max(1-edge upgrade, {c['controller']} / {cores}) = {bound:.0f} s "
                    f"({bound / base['upgrade_one_batch_s']:.2f} x), a bound, not a measurement"
                )
            print(line + ".\n")


def project(n: int, t_edge: float, cpu_edge: float, forks: int, cores: int, slices: int = 1) -> float:
    """Projected wall seconds of an upgrade of n edges through the default rollout (a canary, then
    25 %, then the rest), each slice of the fleet run by its own controller: every batch takes the
    longer of its edges' own time (ceil(batch / forks) rounds of t_edge) and the controller's CPU
    for it (batch x cpu_edge / cores)."""
    per_slice = -(-n // slices)
    canary = 1
    quarter = max(1, per_slice // 4)
    rest = max(0, per_slice - canary - quarter)
    total = 0.0
    for batch in (canary, quarter, rest):
        if batch:
            total += max(-(-batch // forks) * t_edge, batch * cpu_edge / cores)
    return total


def marginal_cpu(rows: list[dict]) -> dict[int, float]:
    """Controller CPU-seconds that each further edge adds to the one-batch upgrade, between one
    measured fleet size and the next: (C(n2) - C(n1)) / (n2 - n1), keyed by n2. What a run costs
    once whatever its size (ansible-playbook's start and parse, building each module's payload
    once, GPUSRV's and the summary's plays) cancels out, so this is the cost per edge of a fleet."""
    cpu = sorted(
        (r["edges"], r["upgrade_one_batch_cpu_s"]["controller"]) for r in rows if "upgrade_one_batch_cpu_s" in r
    )
    return {n2: (c2 - c1) / (n2 - n1) for (n1, c1), (n2, c2) in zip(cpu, cpu[1:], strict=False) if n2 > n1}


def print_flatness_and_projection(rows: list[dict], one: dict) -> None:
    per_edge = {
        r["edges"]: r["upgrade_one_batch_cpu_s"]["controller"] / r["edges"]
        for r in rows
        if "upgrade_one_batch_cpu_s" in r
    }
    marginal = marginal_cpu(rows)
    if len(per_edge) < 2 or not marginal:
        return
    sizes = ", ".join(f"{n}: {v:.2f}" for n, v in sorted(per_edge.items()))
    steps = ", ".join(f"{n}: {v:.2f}" for n, v in sorted(marginal.items()))
    lo, hi = min(marginal.values()), max(marginal.values())
    ratio = hi / lo if lo > 0 else float("inf")
    n0 = min(per_edge)
    fixed = per_edge[n0] * n0 - marginal[min(marginal)] * n0
    print(
        f"\nController CPU per edge of the one-batch upgrade, as each further edge adds it (by the larger "
        f"size of each step: {steps} CPU-s): largest {hi:.2f} (target <= {TARGETS['controller_cpu_per_edge']:g}: "
        f"{verdict(hi <= TARGETS['controller_cpu_per_edge'])}), largest / smallest = {ratio:.2f} (target <= 1.25, "
        f"flat: {verdict(ratio <= 1.25)}). The run's total divided by its edges ({sizes} CPU-s) also carries the "
        f"cost a run pays once whatever its size, about {fixed:.1f} CPU-s here (ansible-playbook's start and "
        "parse, each module's payload built once, GPUSRV's and the summary's plays); it falls as the fleet "
        "grows and is information, not the per-edge figure.\n"
    )
    t_edge = one["upgrade_s"]
    cpu_edge = hi
    print(
        "Projection, not a measurement: an upgrade of 100 and 1,000 edges through the default rollout "
        "(a canary, 25 %, the rest), from this run's one-edge upgrade "
        f"(t_edge = {t_edge} s, real edges each bring their own CPU) and the controller's CPU per edge at the "
        f"largest step measured (c = {cpu_edge:.2f} CPU-s). Per batch of b edges: max(ceil(b / forks) x t_edge, "
        "b x c / controller cores); AWX job slices split the fleet over execution nodes, each its own controller.\n"
    )
    print("| edges | forks | controller cores | job slices | projected minutes |\n|---|---|---|---|---|")
    for n in (100, 1000):
        for forks, cores, slices in ((10, 2, 1), (50, 8, 1), (50, 8, 10)):
            mins = project(n, t_edge, cpu_edge, forks, cores, slices) / 60
            print(f"| {n} | {forks} | {cores} | {slices} | {mins:.1f} |")
    print()


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def print_targets(one: dict) -> None:
    """The one-edge steps beside the lean path's targets (wall time, task executions, controller CPU)."""
    tasks, gate = one["tasks"], one["benchmark_gate_s"]
    upgrade_target = TARGETS["upgrade_s_plus_gate"] + gate
    cpu = one["upgrade_cpu_s"]["controller"]
    rows = [
        ("fresh deploy", one["fresh_deploy_s"], "", tasks["fresh"], ""),
        ("no-op redeploy", one["noop_redeploy_s"], TARGETS["noop_s"], tasks["noop"], TASK_TARGETS["noop"]),
        ("upgrade (benchmark gate on)", one["upgrade_s"], upgrade_target, tasks["upgrade"], TASK_TARGETS["upgrade"]),
        ("rollback", one["rollback_s"], TARGETS["rollback_s"], tasks["rollback"], ""),
    ]
    print("| step (one edge) | seconds | target | task executions of the edge | target |")
    print("|---|---|---|---|---|")
    for name, secs, target, n, n_target in rows:
        t = f"<= {target:g} s: {verdict(secs <= target)}" if target else ""
        nt = f"<= {n_target}: {verdict(n <= n_target)}" if n_target else ""
        print(f"| {name} | {secs} | {t} | {n} | {nt} |")
    print(
        f"\nThe upgrade's target is 20 s plus the benchmark gate's configured {gate:g} s (duration and warm-up). "
        f"Controller CPU of this one-edge upgrade: {cpu} CPU-s, the run's once-per-run cost included (the per-edge "
        "target is judged below, on what each further edge adds); "
        f"the edge's side: {one['upgrade_cpu_s']['edges']} CPU-s. "
        "Task executions count the edge's play (ok, changed and skipped, as the recap does), not the run's "
        "once-per-run first and last plays.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
