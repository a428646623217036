"""A fleet of simulated edge hosts on loopback, reached over real SSH.

Each edge is an address 127.0.0.<10+i> served by an sshd that this module
starts on its own port, with its own config, host key, ``AuthorizedKeysFile``
and log; the client uses a per-run key and known_hosts file, with strict host
key checking on. Each edge gets its own root directory and sidecar port, set as
host vars, so Ansible reaches it exactly as it would reach a Pi over Tailscale.
Nothing is written to the machine's own ``~/.ssh``.

    python -m testbed.fleet up 3 [--dir D]   start 3 edges, print the inventory path
    python -m testbed.fleet status [--dir D]
    python -m testbed.fleet down [--dir D]   stop what `up` started (by PID), remove D

Teardown stops only the processes this module started, by PID, and removes the
containers of the compose projects it named.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from testbed.ports import free_port

DEFAULT_DIR = Path(os.environ.get("EDGEINFER_FLEET_DIR", "/tmp/edgeinfer-fleet"))
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
EDGE_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


class FleetError(RuntimeError):
    pass


@dataclass
class Edge:
    name: str
    address: str
    ssh_port: int
    sidecar_port: int
    home: str  # the edge's own directory; its install root is home/opt/edgeinfer
    compose_project: str = ""
    pid: int = 0

    @property
    def root(self) -> str:
        return str(Path(self.home) / "opt" / "edgeinfer")


@dataclass
class Fleet:
    directory: str
    edges: list[Edge] = field(default_factory=list)

    # -- paths ---------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return Path(self.directory)

    @property
    def client_key(self) -> Path:
        return self.dir / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def state_path(self) -> Path:
        return self.dir / "fleet.json"

    def edge(self, name: str) -> Edge:
        for e in self.edges:
            if e.name == name:
                return e
        raise FleetError(f"no edge named {name!r}; the fleet has {[e.name for e in self.edges]}")

    def _edge_dir(self, edge: Edge) -> Path:
        return self.dir / "ssh" / edge.name

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def up(cls, n: int, directory: Path = DEFAULT_DIR) -> Fleet:
        if n < 1 or n > 200:
            raise FleetError(f"n: expected 1..200 edges, got {n}")
        if not Path(SSHD).exists():
            raise FleetError("sshd not found: install openssh-server (scripts/bootstrap.sh does)")
        directory = Path(directory).resolve()
        if (directory / "fleet.json").exists():
            raise FleetError(
                f"{directory} already holds a fleet; run `python -m testbed.fleet down --dir {directory}` first"
            )
        directory.mkdir(parents=True, exist_ok=True)
        fleet = cls(str(directory))
        run_id = secrets.token_hex(3)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        _keygen(fleet.client_key)
        known = []
        ports: set[int] = set()
        try:
            for i in range(1, n + 1):
                address = f"127.0.0.{10 + i}"
                edge = Edge(
                    name=f"edge-{i}",
                    address=address,
                    ssh_port=free_port(address, ports),
                    sidecar_port=free_port("127.0.0.1", ports),
                    home=str(directory / "edges" / f"edge-{i}"),
                    compose_project=f"edgeinfer-{run_id}-edge-{i}",
                )
                Path(edge.root).mkdir(parents=True, exist_ok=True)
                known.append(fleet._configure(edge))
                fleet.edges.append(edge)
            fleet.known_hosts.write_text("".join(known))
            for edge in fleet.edges:
                fleet.start(edge.name, save=False)
            fleet.write_inventory()
            fleet.save()
            fleet.wait_ready()
        except BaseException:
            fleet.down()
            raise
        return fleet

    def _configure(self, edge: Edge) -> str:
        d = self._edge_dir(edge)
        d.mkdir(parents=True, exist_ok=True)
        host_key = d / "host_ed25519"
        _keygen(host_key)
        auth = d / "authorized_keys"
        auth.write_text(Path(f"{self.client_key}.pub").read_text())
        auth.chmod(0o600)
        (d / "sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress {edge.address}:{edge.ssh_port}",
                    f"HostKey {host_key}",
                    f"PidFile {d / 'sshd.pid'}",
                    f"AuthorizedKeysFile {auth}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    "MaxStartups 100:30:200",
                    "MaxSessions 50",
                    f"Subsystem sftp {SFTP_SERVER}",
                    "",
                ]
            )
        )
        pub = Path(f"{host_key}.pub").read_text().split()
        return f"[{edge.address}]:{edge.ssh_port} {pub[0]} {pub[1]}\n"

    def start(self, name: str, save: bool = True) -> None:
        """Start (or restart) one edge's sshd; its PID is recorded."""
        edge = self.edge(name)
        if edge.pid and _alive(edge.pid):
            return
        d = self._edge_dir(edge)
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=open(d / "sshd.log", "ab"),  # noqa: SIM115 - handed to the child
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `python -m testbed.fleet up`
        )
        edge.pid = proc.pid
        if save:
            self.save()
            self.wait_ready([edge])

    def stop(self, name: str, save: bool = True) -> None:
        """Stop one edge's sshd (the edge becomes unreachable); its files stay."""
        edge = self.edge(name)
        if edge.pid:
            _terminate(edge.pid)
        edge.pid = 0
        if save:
            self.save()

    def wait_ready(self, edges: list[Edge] | None = None, timeout: float = 15.0) -> None:
        for edge in edges or self.edges:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with socket.create_connection((edge.address, edge.ssh_port), timeout=1) as s:
                        if s.recv(4).startswith(b"SSH-"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    log = (self._edge_dir(edge) / "sshd.log").read_text(errors="replace")[-2000:]
                    raise FleetError(f"{edge.name}: sshd on {edge.address}:{edge.ssh_port} not ready: {log}")
                time.sleep(0.05)

    def down(self) -> None:
        """Stop every process this fleet started (by PID), remove its containers and its directory."""
        for edge in self.edges:
            if edge.pid:
                _terminate(edge.pid)
                edge.pid = 0
            remove_compose_project(edge.compose_project)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- state and inventory ---------------------------------------------------
    def save(self) -> None:
        self.state_path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> Fleet:
        path = Path(directory).resolve() / "fleet.json"
        if not path.exists():
            raise FleetError(f"no fleet at {directory} (no fleet.json)")
        data = json.loads(path.read_text())
        return cls(data["directory"], [Edge(**e) for e in data["edges"]])

    def ssh_args(self) -> str:
        return (
            f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=2"
        )

    def host_vars(self, edge: Edge) -> dict[str, object]:
        return {
            "ansible_host": edge.address,
            "ansible_port": edge.ssh_port,
            "ansible_user": _user(),
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": self.ssh_args(),
            "ansible_python_interpreter": EDGE_PYTHON,
            "edgeinfer_root": edge.root,
            "edgeinfer_sidecar_port": edge.sidecar_port,
            "edgeinfer_sidecar_bind": "127.0.0.1",
            "edgeinfer_compose_project": edge.compose_project,
        }

    def write_inventory(self) -> Path:
        inv = {"all": {"children": {"edges": {"hosts": {e.name: self.host_vars(e) for e in self.edges}}}}}
        self.inventory_path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return self.inventory_path

    def ssh(self, name: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        edge = self.edge(name)
        cmd = ["ssh", "-p", str(edge.ssh_port), "-i", str(self.client_key), *self.ssh_args().split()]
        cmd += ["-o", "BatchMode=yes", f"{_user()}@{edge.address}", command]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def remove_compose_project(project: str) -> None:
    """Remove the containers and networks of one compose project, if a Docker engine is there."""
    if not shutil.which("docker"):
        return
    label = f"label=com.docker.compose.project={project}"
    for kind in ("container", "network"):
        listed = subprocess.run(
            ["docker", kind, "ls", "-aq" if kind == "container" else "-q", "--filter", label],
            capture_output=True,
            text=True,
        )
        ids = listed.stdout.split()
        if listed.returncode == 0 and ids:
            rm = ["docker", "rm", "-f", *ids] if kind == "container" else ["docker", "network", "rm", *ids]
            subprocess.run(rm, capture_output=True)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeinfer-fleet", "-f", str(path)], check=True
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of this process still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM the process group this fleet started for ``pid`` (sshd and its sessions), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def iter_pids_of(fleet: Fleet) -> Iterator[int]:
    for e in fleet.edges:
        if e.pid:
            yield e.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.fleet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start N simulated edges")
    p_up.add_argument("n", type=int)
    for p in (p_up, sub.add_parser("down", help="stop the fleet and remove its directory"), sub.add_parser("status")):
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"fleet directory (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            fleet = Fleet.up(args.n, args.dir)
            print(f"{len(fleet.edges)} edges up; inventory: {fleet.inventory_path}")
            print(f"try: ansible -i {fleet.inventory_path} edges -m ansible.builtin.ping")
        elif args.cmd == "down":
            Fleet.load(args.dir).down()
            print(f"fleet at {args.dir} is down")
        else:
            fleet = Fleet.load(args.dir)
            for e in fleet.edges:
                state = "up" if e.pid and _alive(e.pid) else "down"
                print(f"{e.name}  {e.address}:{e.ssh_port}  sidecar :{e.sidecar_port}  {state}  {e.root}")
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
