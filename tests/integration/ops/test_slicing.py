"""AWX job slicing, as AWX runs it, against two loopback edges through ansible-runner.

The workflow's build node runs playbooks/build.yml; its set_stats artifact becomes extra
variables of the next node, and the deploy node is sliced: AWX runs one job per slice, each
with an inventory of every N-th host (by name) and only those hosts in its groups, and the
jobs share nothing but what the artifact says. Here: 2 slices of [edge-1, edge-2, gpusrv-local],
so one slice holds GPUSRV and edge-1 and the other edge-2 alone, run at the same time. No AWX
runs here; what is emulated is the slice inventory and the artifact hand-over, the rest is the
real playbooks over real SSH to real sidecars.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

from testbed.deploy import make_bench
from tests.integration.deploy.conftest import artifacts_dir, sidecar_image  # noqa: F401 - fixtures

from .conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.fleet, pytest.mark.slow]


def slice_inventory(full: dict[str, Any], number: int, count: int) -> dict[str, Any]:
    """AWX's slice ``number`` (1-based) of ``count``: every count-th host by name, groups cut to them."""
    hostvars: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    for group, body in full["all"]["children"].items():
        for name, hv in (body.get("hosts") or {}).items():
            hostvars[name] = hv
            groups.setdefault(group, []).append(name)
    kept = set(sorted(hostvars)[number - 1 :: count])
    children = {
        g: {"hosts": {h: hostvars[h] for h in names if h in kept}} for g, names in groups.items() if kept & set(names)
    }
    return {"all": {"vars": full["all"].get("vars", {}), "children": children}}


def _inventory(fleet, path: Path) -> Path:
    """The fleet's edges plus GPUSRV on this machine, in one file."""
    inv = yaml.safe_load(fleet.inventory_path.read_text())
    inv["all"]["children"]["gpusrv"] = {
        "hosts": {"gpusrv-local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    }
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def _stats_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1, [e.get("event") for e in events][-10:]
    return stats[0]["event_data"]


def _healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def runner_env(monkeypatch) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    monkeypatch.setenv("PATH", env["PATH"])  # ansible-runner looks ansible-playbook up on its own PATH
    return env


def run(
    pdd: Path, ident: str, playbook: str, inventory: Path, extravars: dict[str, Any], env: dict[str, str], **kw: Any
):
    r = ansible_runner.run(
        **kw,
        private_data_dir=str(pdd),
        project_dir=str(REPO),
        playbook=playbook,
        inventory=str(inventory),
        extravars=extravars,
        envvars=env,
        ident=ident,
        quiet=True,
    )
    events = list(r.events)
    return r, events, "".join(e.get("stdout", "") + "\n" for e in events[-60:])


def test_a_sliced_deploy_takes_the_build_artifact_and_each_slice_lands_its_edges(
    fleet_factory,
    sidecar_image: str,  # noqa: F811 (the fixture imported above)
    artifacts_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    fleet = fleet_factory(2)
    full_path = _inventory(fleet, tmp_path / "inventory.yml")
    full = yaml.safe_load(full_path.read_text())
    env = runner_env(monkeypatch)
    # v1 as the other deploy tests build it (once per session, in the shared artifacts dir),
    # with the deploy tests' loose gate floors: two slices run their gates at once here.
    base = make_bench(fleet, artifacts_dir, sidecar_image, tmp_path).vars("v1", 1)

    # -- the build node: GPUSRV only (its template's limit)
    build_pdd = tmp_path / "job-build"
    build_pdd.mkdir()
    r, events, tail = run(build_pdd, "build", "playbooks/build.yml", full_path, base, env)
    assert (r.status, r.rc) == ("successful", 0), tail
    artifact = _stats_event(events)["artifact_data"]
    prebuilt = artifact["edgeinfer_prebuilt_release"]
    release = prebuilt["release"]
    assert prebuilt["gpusrv"]["name"] == "gpusrv-local"
    assert prebuilt["gpusrv"]["ansible_connection"] == "local"
    manifest = Path(release["dir"]) / "manifest.json"
    built_at = manifest.stat().st_mtime_ns
    assert not [e for e in fleet.edges if (Path(e.root) / "state.json").exists()], "the build touched an edge"

    # -- the deploy node, sliced in 2: the build's artifact is every slice's extra vars
    slices = {}
    for n in (1, 2):
        inv = tmp_path / f"slice{n}.yml"
        inv.write_text(yaml.safe_dump(slice_inventory(full, n, 2), sort_keys=False))
        pdd = tmp_path / f"job-deploy-{n}"
        pdd.mkdir()
        slices[n] = (pdd, inv)
    assert "gpusrv" not in yaml.safe_load(slices[2][1].read_text())["all"]["children"]
    with ThreadPoolExecutor(2) as pool:
        futures = {
            n: pool.submit(run, pdd, f"deploy-slice{n}", "playbooks/deploy.yml", inv, dict(base, **artifact), env)
            for n, (pdd, inv) in slices.items()
        }
        results = {n: f.result(timeout=1200) for n, f in futures.items()}

    want = {1: "edge-1", 2: "edge-2"}
    ids = set()
    for n, (r, events, tail) in results.items():
        assert (r.status, r.rc) == ("successful", 0), tail
        data = _stats_event(events)["artifact_data"]
        fleet_summary = data["edgeinfer_fleet"]
        assert set(fleet_summary) == {want[n]}, fleet_summary  # each slice reports its own edges
        assert fleet_summary[want[n]]["outcome"] == "deployed", fleet_summary
        assert fleet_summary[want[n]]["after"] == release["release"]
        record = data["edgeinfer_records"][want[n]]
        ids.add(record["deploy_id"])
        # No slice built anything: the build role never ran in a deploy job.
        ran = {e["event_data"].get("task") for e in events if e.get("event") in ("runner_on_ok", "runner_on_failed")}
        assert "Name this deploy run" in ran and "Build the release" not in ran, sorted(ran)
        assert not ran & {"Fingerprint the source", "Create the untrained demo checkpoint"}, sorted(ran)
    assert len(ids) == 2, "two slices are two deploy runs: one deploy id each (the lock is re-entrant per id)"
    assert manifest.stat().st_mtime_ns == built_at

    for edge in fleet.edges:
        health = _healthz(edge.sidecar_port)
        assert (health["model_version"], health["model_sha256"]) == ("v1", release["digest"]), health
        state = json.loads((Path(edge.root) / "state.json").read_text())
        assert state["current"] == release["release"]

    # -- the same artifact under a limit that leaves GPUSRV out of a full inventory (the
    # workflow's limit names edges): nothing to build, the summary covers the limit alone.
    pdd = tmp_path / "job-limited"
    pdd.mkdir()
    r, events, tail = run(
        pdd, "limited", "playbooks/deploy.yml", full_path, dict(base, **artifact), env, limit="edge-2"
    )
    assert (r.status, r.rc) == ("successful", 0), tail
    data = _stats_event(events)["artifact_data"]
    assert data["edgeinfer_fleet"] == {"edge-2": data["edgeinfer_fleet"]["edge-2"]}, data["edgeinfer_fleet"]
    assert data["edgeinfer_fleet"]["edge-2"]["outcome"] == "unchanged", data["edgeinfer_fleet"]
    assert manifest.stat().st_mtime_ns == built_at

    # -- and without the artifact, that limit is refused before anything runs: GPUSRV builds.
    pdd = tmp_path / "job-limited-nothing-built"
    pdd.mkdir()
    r, events, tail = run(pdd, "limited-no-build", "playbooks/deploy.yml", full_path, base, env, limit="edge-2")
    assert r.rc != 0, tail
    failed = [e["event_data"] for e in events if e.get("event") == "runner_on_failed"]
    assert [f["task"] for f in failed] == ["GPUSRV | In the limit, unless the release is built already"], tail
    assert "--limit gpusrv-local," in failed[0]["res"]["msg"], failed[0]["res"]["msg"]


def test_a_deploy_with_no_gpusrv_and_no_prebuilt_release_says_what_to_pass(
    fleet_factory, tmp_path: Path, monkeypatch
) -> None:
    fleet = fleet_factory(1)
    inv = tmp_path / "edges-only.yml"
    inv.write_text(fleet.inventory_path.read_text())
    pdd = tmp_path / "job"
    pdd.mkdir()
    env = runner_env(monkeypatch)
    r, events, tail = run(pdd, "no-gpusrv", "playbooks/deploy.yml", inv, {"edgeinfer_records_dir": str(tmp_path)}, env)
    assert r.rc != 0, tail
    failed = [e["event_data"] for e in events if e.get("event") == "runner_on_failed"]
    assert [f["task"] for f in failed] == ["GPUSRV | There must be one"], tail
    msg = failed[0]["res"]["msg"]
    assert "gpusrv" in msg and "edgeinfer_prebuilt_release" in msg and "playbooks/build.yml" in msg, msg
    assert not (Path(fleet.edges[0].root) / "state.json").exists()


def test_a_prebuilt_release_of_the_wrong_shape_is_refused_naming_the_fields(
    fleet_factory, tmp_path: Path, monkeypatch
) -> None:
    fleet = fleet_factory(1)
    pdd = tmp_path / "job"
    pdd.mkdir()
    env = runner_env(monkeypatch)
    bad = {"edgeinfer_prebuilt_release": {"release": {"dir": "/nowhere"}, "gpusrv": {"name": "gpusrv-x"}}}
    r, events, tail = run(pdd, "bad", "playbooks/deploy.yml", fleet.inventory_path, bad, env)
    assert r.rc != 0, tail
    failed = [e["event_data"] for e in events if e.get("event") == "runner_on_failed"]
    assert [f["task"] for f in failed] == ["Prebuilt | The release description names what the edges need"], tail
    msg = failed[0]["res"]["msg"]
    assert "edgeinfer_prebuilt_release" in msg and "digest" in msg and "signed" in msg, msg
