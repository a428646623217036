"""What every case of the fault matrix checks, on a fleet of loopback edges.

Each case ends with every edge serving a model that passed its gates, the previous
release intact, the lock released, and a record that names what happened. The edges
not reached by a deploy keep their state.json byte for byte and have no record of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeinfer_contract import Manifest, key_id, sign
from testbed.ansible_run import PlaybookRun
from testbed.deploy import DeployBench

__all__ = ["Matrix", "assert_back_on_v1", "base", "craft", "deploy_id", "fleet_summary", "in_background", "wait_for"]


def base(m: Matrix, version: str = "v1", seed: int = 1, **extra: Any) -> dict[str, Any]:
    """The bench's extra vars for a deploy of ``version``, with ``extra`` on top."""
    return m.bench.vars(version, seed, **extra)


def in_background(fn, *args, **kwargs) -> Future:
    """Run ``fn`` in a thread of its own; its future."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


def deploy_id(run: PlaybookRun) -> str:
    """The id the first play gave this run (records are named after it)."""
    fact = run.task("Name this deploy run")
    did = fact.get("ansible_facts", {}).get("edgeinfer_deploy_id")
    assert did, f"no deploy id in this run\n{run.explain()}"
    return did


def fleet_summary(run: PlaybookRun) -> dict[str, dict[str, Any]]:
    """The summary play's set_stats (edgeinfer_fleet), as AWX gets it."""
    task = run.task("Summary for AWX")
    summary = task.get("ansible_stats", {}).get("data", {}).get("edgeinfer_fleet")
    assert summary is not None, f"the run has no fleet summary\n{run.explain()}"
    return summary


def craft(
    bench, version: str, mutate=None, corrupt_after_signing: str | None = None, add_roles: dict[str, str] | None = None
) -> dict[str, Any]:
    """A release made from v1's artifacts under another version, changed by ``mutate``
    before its manifest is written and signed (or corrupted after, as in transit);
    ``add_roles`` lists the files ``mutate`` adds, with their manifest roles."""
    src = bench.artifacts / "v1"
    dst = bench.tmp / "crafted" / version
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("manifest.json*"))
    roles = {f.name: f.role for f in Manifest.load(src / "manifest.json").files} | dict(add_roles or {})
    if mutate:
        mutate(dst)
    # Signed with the bench's key (the one the edges trust), naming it as model_tools does.
    key = Path(bench.base_vars["edgeinfer_build_signing_key"])
    kid = key_id(Path(f"{key}.pub").read_bytes())
    manifest = Manifest.build(dst, roles, version, signing_key_id=kid)
    blob = manifest.to_bytes()
    (dst / "manifest.json").write_bytes(blob)
    (dst / "manifest.json.sig").write_bytes(sign(blob, key.read_bytes()))
    if corrupt_after_signing:
        p = dst / corrupt_after_signing
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x01
        p.write_bytes(bytes(data))
    return {
        "dir": str(dst),
        "model_version": version,
        "digest": manifest.digest,
        "release": f"{version}-{manifest.digest[:8]}",
        "untrained": True,
        "source": str(dst),
        "files": [f.to_dict() for f in manifest.files],
        "size": sum(f.size for f in manifest.files),
        "signed": True,
        "key_id": kid,
    }


def assert_back_on_v1(bench, run, phrase: str) -> dict[str, Any]:
    assert run.rc != 0, "the bad deploy must fail the host"
    v1 = bench.release_of("v1")
    status, health = bench.health()
    assert status == 200, health
    assert (health["model_version"], health["model_sha256"]) == ("v1", v1["digest"])
    root = Path(bench.fleet.edges[0].root)
    assert (root / "models" / "current").resolve().name == v1["release"]
    intact = Manifest.load(root / "models" / "releases" / v1["release"] / "manifest.json")
    files = [f.name for f in intact.files if f.role != "calibration"]
    assert intact.verify_files(root / "models" / "releases" / v1["release"], files) == []
    assert not (root / "deploy.lock").exists()
    record = bench.last_record()
    assert record["outcome"] == "rolled_back", record
    assert record["rolled_back_to"] == v1["release"]
    reason = json.dumps(record["failure"])
    assert phrase in reason, reason
    # A failed release never becomes the rollback target.
    assert bench.state()["previous"] != record["release"]
    # The record's gates are the failed release's; those of the release restored are kept apart.
    restored = record["restored"]
    assert restored["release"] == v1["release"] and restored["passed"] is True, restored
    return record


def release_files(release_dir: Path) -> list[str]:
    man = Manifest.load(release_dir / "manifest.json")
    return [f.name for f in man.files if f.role != "calibration"]  # calibration stays on GPUSRV


@dataclass
class Snapshot:
    current: str | None
    state: bytes


@dataclass
class Matrix:
    """A DeployBench over a shared fleet, and what each edge must be serving now."""

    bench: DeployBench
    serving: dict[str, dict[str, Any]] = field(default_factory=dict)  # edge -> release description
    notes: dict[str, Any] = field(default_factory=dict)  # what one case leaves for the next

    @property
    def edges(self) -> list[str]:
        return [e.name for e in self.bench.fleet.edges]

    def root(self, edge: str) -> Path:
        return Path(self.bench.fleet.edge(edge).root)

    # -- host-specific faults ----------------------------------------------------------
    @contextlib.contextmanager
    def host_vars(self, per_host: dict[str, dict[str, Any]], group: dict[str, Any] | None = None) -> Iterator[Path]:
        """An inventory of host vars for some edges, added to the bench's -i list for the block."""
        path = self.bench.tmp / f"faults-{os.urandom(3).hex()}.yml"
        edges: dict[str, Any] = {"hosts": {h: v for h, v in per_host.items()}}
        if group:
            edges["vars"] = group
        path.write_text(yaml.safe_dump({"all": {"children": {"edges": edges}}}, sort_keys=False))
        self.bench.inventory.append(path)
        try:
            yield path
        finally:
            self.bench.inventory.remove(path)

    # -- reading an edge -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Snapshot]:
        return {e: Snapshot(self.current(e), (self.root(e) / "state.json").read_bytes()) for e in self.edges}

    def current(self, edge: str) -> str | None:
        link = self.root(edge) / "models" / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def last_good(self, edge: str) -> str | None:
        link = self.root(edge) / "models" / "last_good"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def record(self, edge: str, did: str) -> dict[str, Any]:
        """The controller's record of deploy ``did`` on ``edge``."""
        path = self.bench.records / edge / f"{did}.json"
        assert path.is_file(), f"no controller record of deploy {did} for {edge}: {sorted(path.parent.glob('*'))}"
        return json.loads(path.read_text())

    def deployment_log(self, edge: str, did: str) -> str:
        """The deployment log (Markdown) the controller wrote for deploy ``did`` on ``edge``."""
        path = self.bench.records / edge / f"{did}.md"
        assert path.is_file(), f"no deployment log of deploy {did} for {edge}"
        return path.read_text()

    def deadman_record(self, edge: str, did: str) -> dict[str, Any]:
        return json.loads((self.root(edge) / "records" / f"{did}.deadman.json").read_text())

    def sidecar_metric(self, edge: str, name: str) -> float:
        port = self.bench.fleet.edge(edge).sidecar_port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return float("nan")
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return float("nan")

    # -- the end state of every case --------------------------------------------------------
    def landed(self, edge: str, record: dict[str, Any], release: dict[str, Any]) -> None:
        """``edge`` deployed ``release`` and its gates passed: it is what the edge serves from now on."""
        assert record["outcome"] == "deployed", record
        assert record["release"] == release["release"]
        assert record["gates"]["golden"]["min_cosine"] >= 0.999, record["gates"]
        assert record["gates"]["benchmark"]["passed"] is True, record["gates"]
        self.serving[edge] = release

    def assert_fleet(self, before: dict[str, Snapshot] | None = None) -> None:
        """Every edge serves the gate-passed model it should, which is its last good release, its
        previous release is intact, no deploy lock is left."""
        for edge in self.edges:
            want = self.serving[edge]
            status, health = self.bench.health(edge)
            assert status == 200, (edge, health)
            assert (health["model_version"], health["model_sha256"]) == (want["model_version"], want["digest"]), (
                edge,
                health,
            )
            assert self.current(edge) == want["release"], edge
            # What it serves passed its gates there last: a restarted sidecar falls back to it.
            assert self.last_good(edge) == want["release"], edge
            keep = {want["release"]}
            if before and before[edge].current:
                keep.add(before[edge].current)
            for rid in keep:
                d = self.root(edge) / "models" / "releases" / rid
                assert Manifest.load(d / "manifest.json").verify_files(d, release_files(d)) == [], (edge, rid)
            assert not (self.root(edge) / "deploy.lock").exists(), f"{edge}: deploy.lock left behind"

    def assert_untouched(self, edge: str, before: dict[str, Snapshot], did: str) -> None:
        """``edge`` was never reached by deploy ``did``: no record of it, state.json byte for byte."""
        assert not (self.bench.records / edge / f"{did}.json").exists(), f"{edge} has a controller record of {did}"
        assert list((self.root(edge) / "records").glob(f"{did}*")) == [], f"{edge} has an edge record of {did}"
        assert not (self.root(edge) / "deadman" / f"{did}.json").exists(), f"{edge}: dead-man armed by {did}"
        assert (self.root(edge) / "state.json").read_bytes() == before[edge].state, f"{edge}: state.json changed"
        assert self.current(edge) == before[edge].current


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` every 0.2 s until it returns something true (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def connection_pids(sshd_pid: int) -> list[int]:
    """The per-connection sshd processes of one edge's sshd (children it forked; each in a
    session of its own, so stopping the listener leaves them, and Ansible's ControlPersist
    master, connected)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == sshd_pid:
            out.append(int(stat.parent.name))
    return out


def cut(fleet: Any, name: str) -> list[int]:
    """Make an edge unreachable now: stop its sshd and drop its live SSH connections, by PID."""
    edge = fleet.edge(name)
    pids = connection_pids(edge.pid) if edge.pid else []
    fleet.stop(name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.05)
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
