"""playbooks/ab.yml end to end on one loopback edge over real SSH, the real sidecar container in the
local Docker engine, under live traffic of many distinct windows: the same model under another
version is promoted through the deploy, a differently seeded model is discarded and the edge keeps
serving what it served, a run with too few windows is inconclusive and promotes nothing; not one
request fails in any of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from testbed.deploy import DeployBench, make_bench
from testbed.load import BackgroundLoad

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]

# The sidecar's defaults decide how much traffic a conclusive report needs: EDGEINFER_SHADOW_SHARE 0.1
# of the windows mirrored, EDGEINFER_SHADOW_MIN_WINDOWS 500 pairs. 25 requests a second of 32
# windows mirror about 80 windows a second: 500 pairs in under 10 s.
RATE, WINDOWS_PER_REQUEST = 25, 32


@pytest.fixture(scope="module")
def ab_edge(sidecar_image: str, artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One loopback edge serving v1 (seed 1)."""
    from testbed.fleet import Fleet

    tmp = tmp_path_factory.mktemp("ab-edge")
    fleet = Fleet.up(1, tmp / "fleet")
    try:
        bench = make_bench(fleet, artifacts_dir, sidecar_image, tmp)
        run = bench.deploy("v1", seed=1)
        assert run.rc == 0, run.explain()
        yield bench
    finally:
        fleet.down()


def traffic(port: int) -> BackgroundLoad:
    """Distinct random-walk windows around rest (the bodies cycle): kNN overlap needs windows that differ."""
    rng = np.random.default_rng(7)
    rest = np.array([0.0, 0.0, 9.8, 0.0, 0.0, 0.0, 20.0, -8.0, 40.0], np.float32)
    bodies = []
    for _ in range(64):
        walk = rest + np.cumsum(0.3 * rng.standard_normal((WINDOWS_PER_REQUEST, 100, 9)), axis=1)
        bodies.append(json.dumps({"imu_windows": walk.round(4).tolist()}).encode())
    return BackgroundLoad(port, rate=RATE, body=bodies)


def ab(bench: DeployBench, version: str, seed: int, **extra: Any):
    # The tests judge the decision, not this shared 2-core machine: the p95 factor only catches a
    # candidate that does not answer; the figures that decide are CKA and kNN overlap.
    extra = {"edgeinfer_ab_timeout": 120, "edgeinfer_ab_max_p95_factor": 10, **extra}
    return bench.playbook("ab.yml", bench.vars(version, seed, **extra))


def ab_record(bench: DeployBench, edge: str = "edge-1") -> dict[str, Any]:
    files = sorted((bench.records / edge).glob("ab-*.json"), key=lambda p: p.stat().st_mtime)
    assert files, f"no A/B record for {edge} under {bench.records}"
    return json.loads(files[-1].read_text())


def fleet_summary(bench: DeployBench, ab_id: str) -> dict[str, Any]:
    return json.loads((bench.records / "ab" / f"{ab_id}.json").read_text())


def test_a_differently_seeded_candidate_is_discarded_and_the_edge_keeps_serving(ab_edge) -> None:
    bench = ab_edge
    v1 = bench.release_of("v1")
    port = bench.fleet.edges[0].sidecar_port
    with traffic(port) as load:
        run = ab(bench, "v2", seed=2)
    assert run.rc == 0, run.explain()
    record = ab_record(bench)
    assert record["verdict"] == "discard", record
    assert record["promote"] is False
    assert record["figures"]["windows"] >= 500 and record["figures"]["error_windows"] == 0, record["figures"]
    assert any(r.startswith(("linear CKA", "kNN Jaccard")) for r in record["reasons"]), record["reasons"]
    assert record["report"]["same_network"] is False and record["report"]["per_window"]["knn_jaccard"]
    base = bench.records / "edge-1" / f"ab-{record['ab_id']}"
    assert base.with_suffix(".md").is_file() and base.with_suffix(".png").is_file()
    summary = fleet_summary(bench, record["ab_id"])
    assert summary["edges"]["edge-1"]["verdict"] == "discard" and summary["deploys"]["edge-1"] is None
    # The edge as it was: v1 served, current untouched, the shadow gone; the candidate stays staged.
    status, health = bench.health()
    assert (status, health["model_sha256"]) == (200, v1["digest"])
    state = bench.state()
    assert state["current"] == v1["release"]
    assert bench.release_of("v2")["release"] in state["releases"]
    assert load.sent > RATE * 5 and load.failed == 0, load.errors[:5]
    assert load.versions == {"v1"}


def test_too_few_windows_is_inconclusive_and_promotes_nothing(ab_edge) -> None:
    bench = ab_edge
    v1 = bench.release_of("v1")
    run = ab(bench, "v1same", seed=1, edgeinfer_ab_timeout=3)  # no traffic: no pairs
    assert run.rc == 0, run.explain()
    record = ab_record(bench)
    assert record["verdict"] == "inconclusive" and record["promote"] is False, record
    assert "fewer than the 500 required" in record["reasons"][0], record["reasons"]
    assert bench.health()[1]["model_sha256"] == v1["digest"]
    assert bench.state()["current"] == v1["release"]


def test_the_same_model_is_promoted_through_the_deploy_without_a_failed_request(ab_edge) -> None:
    bench = ab_edge
    port = bench.fleet.edges[0].sidecar_port
    with traffic(port) as load:
        run = ab(bench, "v1same", seed=1)
    assert run.rc == 0, run.explain()
    record = ab_record(bench)
    assert record["verdict"] == "promote" and record["promote"] is True, record
    assert record["figures"]["linear_cka"] > 0.99 and record["figures"]["knn_jaccard"] > 0.9, record["figures"]
    candidate = bench.release_of("v1same")
    # The promotion is the deploy: its own record, its gates, and the release served and committed.
    deploy = json.loads((bench.records / "edge-1" / f"{record['ab_id']}.json").read_text())
    assert deploy["outcome"] in ("deployed", "unchanged"), deploy
    assert fleet_summary(bench, record["ab_id"])["deploys"]["edge-1"] == deploy["outcome"]
    status, health = bench.health()
    assert (status, health["model_version"]) == (200, "v1same")
    assert bench.state()["current"] == candidate["release"]
    assert load.sent > RATE * 5 and load.failed == 0, load.errors[:5]
    assert "v1same" in load.versions
