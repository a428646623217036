"""GPUSRV as a managed host (as when AWX runs elsewhere): artifacts reach one edge through
the controller and another directly from GPUSRV, over real SSH both ways."""

from __future__ import annotations

import sys

import pytest
import yaml

from testbed.deploy import DeployBench, make_bench

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]


def test_managed_gpusrv_with_controller_and_direct_transfers(
    fleet_factory, sidecar_image, artifacts_dir, tmp_path
) -> None:
    fleet = fleet_factory(3)
    gpusrv, via_controller, direct = fleet.edges
    edge_vars = {e.name: fleet.host_vars(e) for e in (via_controller, direct)}
    edge_vars[direct.name] |= {
        "edgeinfer_transfer_mode": "direct",
        # GPUSRV's own SSH identity and known_hosts for the edge (here: the fleet's).
        "edgeinfer_transfer_direct_ssh_args": [
            "-i",
            str(fleet.client_key),
            "-o",
            f"UserKnownHostsFile={fleet.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
        ],
    }
    gpusrv_vars = fleet.host_vars(gpusrv) | {"ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "gpusrv": {"hosts": {"gpusrv-remote": gpusrv_vars}},
                        "edges": {"hosts": edge_vars},
                    }
                }
            }
        )
    )
    base = make_bench(fleet, artifacts_dir, sidecar_image, tmp_path)
    bench = DeployBench(fleet, [inventory], artifacts_dir, base.records, tmp_path, base.base_vars)
    run = bench.deploy("v1", seed=1)
    assert run.rc == 0, run.explain()
    # The build ran on the managed GPUSRV, over SSH.
    assert run.stats["gpusrv-remote"]["failures"] == 0
    fetch = run.results(via_controller.name)[
        "edgeinfer : Transfer | Fetch it from GPUSRV when GPUSRV is a managed host"
    ]
    assert fetch.get("changed") or fetch.get("checksum"), fetch
    scp = run.results(direct.name)["edgeinfer : Transfer | scp from GPUSRV (GPUSRV's own key and known_hosts)"]
    assert scp["changed"] and scp["rc"] == 0, scp
    v1 = bench.release_of("v1")
    for e in (via_controller, direct):
        status, health = bench.health(e.name)
        assert (status, health["model_sha256"]) == (200, v1["digest"]), (e.name, health)
        assert bench.last_record(e.name)["outcome"] == "deployed"
