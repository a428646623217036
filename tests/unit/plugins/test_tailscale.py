"""Edges reached over Tailscale: the controller's `tailscale status --json` decides, before any SSH,
which edges the deploy leaves out as unreachable, and says why."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from ansible_collections.edgeinfer.deploy.plugins.filter.tailscale import tailscale_peer
from testbed.ansible_run import run_playbook

# The shape of `tailscale status --json` (tailscale 1.7x), trimmed to what the check reads.
STATUS = {
    "BackendState": "Running",
    "MagicDNSSuffix": "tailfdc654.ts.net",
    "Self": {"HostName": "controller", "DNSName": "controller.tailfdc654.ts.net.", "Online": True},
    "Peer": {
        "nodekey:aa": {
            "HostName": "edge-01",
            "DNSName": "edge-01.tailfdc654.ts.net.",
            "TailscaleIPs": ["100.101.1.1", "fd7a:115c:a1e0::1"],
            "Online": True,
            "LastSeen": "0001-01-01T00:00:00Z",
        },
        "nodekey:bb": {
            "HostName": "edge-02",
            "DNSName": "edge-02.tailfdc654.ts.net.",
            "TailscaleIPs": ["100.101.1.2"],
            "Online": False,
            "LastSeen": "2026-12-04T22:10:05Z",
        },
    },
}


@pytest.mark.parametrize("name", ["edge-01.tailfdc654.ts.net", "edge-01.tailfdc654.ts.net.", "edge-01", "100.101.1.1"])
def test_an_online_peer_is_found_by_any_of_its_names(name: str) -> None:
    peer = tailscale_peer(STATUS, [name])
    assert peer["found"] and peer["online"] and peer["problem"] is None
    assert peer["dns_name"] == "edge-01.tailfdc654.ts.net" and "100.101.1.1" in peer["ips"]


def test_an_offline_peer_is_named_with_when_it_was_last_seen() -> None:
    peer = tailscale_peer(STATUS, ["edge-02.tailfdc654.ts.net"])
    assert peer["found"] and not peer["online"]
    assert "edge-02.tailfdc654.ts.net is offline" in peer["problem"] and "2026-12-04T22:10:05Z" in peer["problem"]


def test_an_edge_outside_the_tailnet_and_a_stopped_controller_are_problems() -> None:
    missing = tailscale_peer(STATUS, ["edge-09", "100.64.0.9"])
    assert not missing["found"] and "not a peer of the controller's tailnet" in missing["problem"]
    assert "edge-09, 100.64.0.9" in missing["problem"]
    stopped = tailscale_peer(dict(STATUS, BackendState="Stopped"), ["edge-01"])
    assert "Tailscale on the controller is Stopped" in stopped["problem"] and "tailscale up" in stopped["problem"]


def stand_in_tailscale(tmp_path: Path, status: dict | None) -> Path:
    """An executable `tailscale` that prints recorded JSON for `status --json` (or fails, like a
    controller where tailscaled is not running), and logs each call."""
    exe = tmp_path / "tailscale"
    body = json.dumps(status) if status is not None else None
    log = tmp_path / "tailscale.calls"
    script = f'#!/bin/sh\necho "$@" >> {log}\n'
    script += (
        f"[ \"$1 $2\" = 'status --json' ] && cat <<'JSON'\n{body}\nJSON\n"
        if body is not None
        else "echo 'failed to connect to local tailscaled; it doesn'\"'\"'t appear to be running' >&2; exit 1\n"
    )
    exe.write_text(script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def deploy_over_tailscale(tmp_path: Path, status: dict | None):
    """playbooks/deploy.yml on two edges that are never reached by SSH: their addresses refuse
    connections, so an edge that got past the Tailscale check says so by an SSH error."""
    exe = stand_in_tailscale(tmp_path, status)
    inventory = {
        "all": {
            "children": {
                "edges": {
                    "vars": {
                        "ansible_port": 1,
                        "edgeinfer_tailscale": True,
                        "edgeinfer_tailscale_command": str(exe),
                        "edgeinfer_records_dir": str(tmp_path / "records"),
                        "ansible_ssh_common_args": "-o ConnectTimeout=2",
                    },
                    "hosts": {
                        "edge-01.tailfdc654.ts.net": {"ansible_host": "127.0.0.1"},
                        "edge-02.tailfdc654.ts.net": {"ansible_host": "127.0.0.1"},
                    },
                }
            }
        }
    }
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    prebuilt = {
        "release": {
            "dir": str(tmp_path),
            "model_version": "v1",
            "digest": "0" * 64,
            "release": "v1-00000000",
            "files": [],
            "size": 0,
            "signed": True,
        },
        "gpusrv": {"name": "gpusrv", "ansible_connection": "local"},
    }
    run = run_playbook(
        "playbooks/deploy.yml",
        inventory=inv,
        extra_vars={"edgeinfer_prebuilt_release": prebuilt},
        tmp_path=tmp_path,
        timeout=180,
    )
    fleet = json.loads(next((tmp_path / "records" / "fleet").glob("*.json")).read_text())["edges"]
    return run, fleet, (tmp_path / "tailscale.calls").read_text().splitlines()


def test_an_offline_peer_is_left_out_before_any_ssh_and_named(tmp_path: Path) -> None:
    run, fleet, calls = deploy_over_tailscale(tmp_path, STATUS)
    offline = fleet["edge-02.tailfdc654.ts.net"]
    assert offline["outcome"] == "unreachable", run.explain()
    assert offline["reason"].startswith(
        "edge-02.tailfdc654.ts.net: its Tailscale peer edge-02.tailfdc654.ts.net is offline"
    )
    assert "(last seen 2026-12-04T22:10:05Z)" in offline["reason"]
    # The online peer went on to SSH, which the closed port refuses: the check let it through.
    online = fleet["edge-01.tailfdc654.ts.net"]
    assert online["outcome"] == "unreachable" and "tailscale" not in online["reason"].lower(), online
    # One status call per batch, on the controller; never per edge.
    assert calls and all(c == "status --json" for c in calls) and len(calls) <= 2


def test_a_controller_without_tailscale_leaves_every_edge_out_with_the_fix(tmp_path: Path) -> None:
    run, fleet, _ = deploy_over_tailscale(tmp_path, None)
    for host, edge in fleet.items():
        assert edge["outcome"] == "unreachable", (host, run.explain())
        assert "status --json` failed on the controller" in edge["reason"]
        assert "doesn't appear to be running" in edge["reason"] and "edgeinfer_tailscale=false" in edge["reason"]
