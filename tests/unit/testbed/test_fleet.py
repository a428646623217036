"""The loopback fleet is real SSH: Ansible reaches every edge, strict host key checking holds,
and teardown leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.fleet import Fleet, _alive

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[3]


def ansible(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    exe = Path(sys.executable).with_name("ansible")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=180)


def ping_results(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    data = json.loads(proc.stdout)
    return data["plays"][0]["tasks"][0]["hosts"]


def test_ansible_ping_reaches_three_edges_over_ssh(fleet_factory) -> None:
    fleet = fleet_factory(3)
    proc = ansible("-i", str(fleet.inventory_path), "edges", "-m", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hosts = ping_results(proc)
    assert sorted(hosts) == ["edge-1", "edge-2", "edge-3"]
    assert all(h.get("ping") == "pong" for h in hosts.values()), hosts
    # Each edge really is a separate sshd: every one logged our key's login.
    for e in fleet.edges:
        log = (fleet.dir / "ssh" / e.name / "sshd.log").read_text()
        assert "Accepted publickey" in log, (e.name, log[-500:])


def test_each_edge_has_its_own_address_root_and_ports(fleet_factory) -> None:
    fleet = fleet_factory(3)
    assert len({e.address for e in fleet.edges}) == 3
    assert len({e.sidecar_port for e in fleet.edges}) == 3
    assert len({e.compose_project for e in fleet.edges}) == 3
    for e in fleet.edges:
        out = fleet.ssh(e.name, f"test -d {e.root} && echo present")
        assert out.stdout.strip() == "present", out.stderr


def test_strict_host_key_checking_refuses_a_changed_host_key(fleet_factory) -> None:
    fleet = fleet_factory(1)
    # Swap in another host's key for edge-1: the client must refuse to connect.
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fleet.dir / "other")], check=True)
    assert other.returncode == 0
    pub = (fleet.dir / "other.pub").read_text().split()
    e = fleet.edges[0]
    fleet.known_hosts.write_text(f"[{e.address}]:{e.ssh_port} {pub[0]} {pub[1]}\n")
    out = fleet.ssh(e.name, "true")
    assert out.returncode != 0
    assert "HOST IDENTIFICATION HAS CHANGED" in out.stderr or "verification failed" in out.stderr, out.stderr


def test_an_edge_can_be_stopped_and_started_again(fleet_factory) -> None:
    fleet = fleet_factory(2)
    fleet.stop("edge-2")
    proc = ansible("-i", str(fleet.inventory_path), "edges", "-m", "ansible.builtin.ping")
    hosts = ping_results(proc)
    assert hosts["edge-1"].get("ping") == "pong"
    assert hosts["edge-2"].get("unreachable") is True
    fleet.start("edge-2")
    proc = ansible("-i", str(fleet.inventory_path), "edges", "-m", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout


def test_teardown_stops_its_sshd_and_leaves_no_keys_behind(tmp_path: Path) -> None:
    authorized = Path.home() / ".ssh" / "authorized_keys"
    before = authorized.read_bytes() if authorized.exists() else None
    fleet = Fleet.up(2, tmp_path / "fleet")
    pids = [e.pid for e in fleet.edges]
    assert all(_alive(p) for p in pids)
    fleet.down()
    assert not any(_alive(p) for p in pids)
    assert not (tmp_path / "fleet").exists()
    after = authorized.read_bytes() if authorized.exists() else None
    assert after == before


def test_cli_up_status_down(tmp_path: Path) -> None:
    d = tmp_path / "cli-fleet"
    run = [sys.executable, "-m", "testbed.fleet"]
    up = subprocess.run([*run, "up", "2", "--dir", str(d)], cwd=REPO, capture_output=True, text=True, timeout=60)
    try:
        assert up.returncode == 0, up.stderr
        assert str(d / "inventory.yml") in up.stdout
        status = subprocess.run([*run, "status", "--dir", str(d)], cwd=REPO, capture_output=True, text=True)
        assert status.stdout.count(" up ") == 2, status.stdout
        pids = [e.pid for e in Fleet.load(d).edges]
    finally:
        down = subprocess.run([*run, "down", "--dir", str(d)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert not d.exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
