# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Memory and CPU of the sidecar's container under load: Docker's stats, over the socket or ssh."""

from __future__ import annotations

import http.client
import json
import math
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote


def docker_memory_bytes(stats: Mapping[str, Any]) -> int | None:
    """Memory in use as ``docker stats`` shows it: usage less the inactive page cache."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if not isinstance(usage, int):
        return None
    inner = mem.get("stats") or {}
    for key in ("inactive_file", "total_inactive_file"):  # cgroup v2, then v1
        v = inner.get(key)
        if isinstance(v, int) and v < usage:
            return usage - v
    cache = inner.get("cache")
    if isinstance(cache, int) and cache < usage:
        return usage - cache
    return usage


def docker_cpu_percent(prev: Mapping[str, Any] | None, cur: Mapping[str, Any]) -> float | None:
    """CPU use between two stats samples, in percent of one core (so 4 busy cores = 400)."""
    if not prev:
        return None
    try:
        cpu = cur["cpu_stats"]["cpu_usage"]["total_usage"] - prev["cpu_stats"]["cpu_usage"]["total_usage"]
        sys_d = cur["cpu_stats"]["system_cpu_usage"] - prev["cpu_stats"]["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    ncpu = cur["cpu_stats"].get("online_cpus") or len(cur["cpu_stats"]["cpu_usage"].get("percpu_usage") or []) or 1
    if sys_d <= 0 or cpu < 0:
        return None
    return cpu / sys_d * ncpu * 100.0


_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _size(text: str) -> float:
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num) :] or "b"
    if unit not in _UNITS:
        raise ValueError(f"unknown size unit in {text!r}")
    return float(num) * _UNITS[unit]


def parse_docker_cli_stats(line: str) -> tuple[int | None, float | None]:
    """``(memory bytes, cpu percent)`` from one ``docker stats --no-stream --format '{{json .}}'`` line."""
    data = json.loads(line)
    mem = cpu = None
    usage = str(data.get("MemUsage", "")).split("/", maxsplit=1)[0]
    if usage.strip():
        mem = int(_size(usage))
    perc = str(data.get("CPUPerc", "")).strip().rstrip("%")
    if perc and perc != "--":
        cpu = float(perc)
    return mem, cpu


def docker_ps_ports(text: str) -> list[dict[str, Any]]:
    """The published ports of one ``docker ps --format '{{.Ports}}'`` cell, as the Engine API lists them.

    ``127.0.0.1:9000->9000/tcp, :::9000->9000/tcp`` gives PublicPort 9000 twice; a range
    (``0.0.0.0:8000-8001->8000-8001/tcp``) one entry a port; an exposed port that is not
    published (``9000/tcp``) none.
    """
    out: list[dict[str, Any]] = []
    for item in text.split(","):
        host, arrow, inner = item.strip().partition("->")
        if not arrow:
            continue
        ip, ports = host.rpartition(":")[::2]
        first, last = ports.partition("-")[::2]
        proto = inner.rpartition("/")[2] or "tcp"
        for port in range(int(first), int(last or first) + 1):
            out.append({"IP": ip, "PublicPort": port, "Type": proto})
    return out


def container_name(c: Mapping[str, Any]) -> str:
    """A container's name from an Engine API list entry (``Names``) or inspect (``Name``)."""
    names = c.get("Names") or [c.get("Name") or c.get("Id", "?")[:12]]
    return str(names[0]).lstrip("/")


def host_network(c: Mapping[str, Any]) -> bool:
    return (c.get("HostConfig") or {}).get("NetworkMode") == "host"


def published_ports(c: Mapping[str, Any]) -> list[int]:
    """The host TCP ports a container publishes, from a list entry (``Ports``) or inspect (``NetworkSettings``)."""
    ports = {p.get("PublicPort") for p in c.get("Ports") or [] if p.get("Type", "tcp") == "tcp"}
    for key, binds in ((c.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if key.endswith("/tcp"):
            ports.update(int(b["HostPort"]) for b in binds or [] if str(b.get("HostPort", "")).isdigit())
    return sorted(p for p in ports if isinstance(p, int))


def _ports_said(c: Mapping[str, Any]) -> str:
    if host_network(c):
        return "on the host's network"
    ports = published_ports(c)
    return "publishes " + ", ".join(map(str, ports)) if ports else "publishes no port"


def pick_container(
    found: Sequence[Mapping[str, Any]], port: int | None, what: str, named: bool = False
) -> Mapping[str, Any]:
    """The one container of ``found`` (Engine API entries) that serves the target's ``port``.

    A container is only taken for the target's when it publishes that port: another sidecar
    on the machine must not stand in for it. One on the host's network publishes nothing,
    so it is taken only when the operator ``named`` it. ``what`` says how ``found`` was
    chosen (``with labels ...``, ``named ...``) for the messages. OSError says why none is.
    """
    if not found:
        raise OSError(f"no running container {what}")
    if port is not None:
        serving = [c for c in found if port in published_ports(c) or (named and host_network(c))]
        if not serving:
            seen = "; ".join(f"{container_name(c)} {_ports_said(c)}" for c in found)
            raise OSError(f"no running container {what} publishes port {port}, the target's ({seen})")
        found = serving
    if len(found) > 1:
        names = ", ".join(container_name(c) for c in found)
        raise OSError(f"{len(found)} containers {what} serve the target ({names}); name one")
    return found[0]


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class DockerSocket:
    """The few Docker Engine API calls the benchmark needs, over the local unix socket."""

    def __init__(self, path: str = "/var/run/docker.sock", timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def get(self, url: str) -> Any:
        conn = _UnixHTTPConnection(self.path, self.timeout)
        try:
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise OSError(f"Docker API GET {url} answered {resp.status}: {body[:200]!r}")
        return json.loads(body)

    def find(
        self, name: str | None = None, service: str | None = None, project: str | None = None, port: int | None = None
    ) -> str:
        """The id of the running container named ``name``, or of the compose ``service`` (in ``project``).

        With ``port``, only a container that publishes it (pick_container).
        """
        return self.locate(name, service, project, port)[0]

    def locate(
        self, name: str | None = None, service: str | None = None, project: str | None = None, port: int | None = None
    ) -> tuple[str, str]:
        """``(id, name)`` of the container ``find`` takes."""
        if name:
            c = self.get(f"/containers/{quote(name, safe='')}/json")
            if not (c.get("State") or {}).get("Running", True):
                raise OSError(f"container {name} is not running")
            c = pick_container([c], port, f"named {name}", named=True)
            return c["Id"], container_name(c)
        labels = [f"com.docker.compose.service={service or 'edgeinfer-sidecar'}"]
        if project:
            labels.append(f"com.docker.compose.project={project}")
        filters = quote(json.dumps({"label": labels, "status": ["running"]}), safe="")
        c = pick_container(self.get(f"/containers/json?filters={filters}"), port, f"with labels {', '.join(labels)}")
        return c["Id"], container_name(c)

    def stats(self, container_id: str) -> dict[str, Any]:
        return self.get(f"/containers/{container_id}/stats?stream=false&one-shot=true")


class _SocketSample:
    """``sample()`` of one container over the local Docker socket; ``container`` names it for the report."""

    def __init__(self, api: DockerSocket, cid: str, container: str) -> None:
        self.api = api
        self.cid = cid
        self.container = container
        self.prev: dict[str, Any] | None = None

    def __call__(self) -> tuple[int | None, float | None]:
        cur = self.api.stats(self.cid)
        cpu = docker_cpu_percent(self.prev, cur)
        self.prev = cur
        return docker_memory_bytes(cur), cpu


def socket_sampler(
    container: str | None,
    service: str | None,
    project: str | None,
    path: str = "/var/run/docker.sock",
    port: int | None = None,
) -> Callable[[], tuple[int | None, float | None]]:
    """A ``sample()`` reading the local Docker socket; raises OSError when the container can't be found.

    With ``port`` (the target's), only a container that publishes it is measured.
    """
    api = DockerSocket(path)
    cid, name = api.locate(container, service, project, port)
    sample = _SocketSample(api, cid, name)
    sample()  # the first CPU figure needs a previous sample
    return sample


def ssh_sampler(
    ssh_host: str, container: str, ssh_args: Sequence[str] = ()
) -> Callable[[], tuple[int | None, float | None]]:
    """A ``sample()`` running ``docker stats`` on a remote edge over SSH."""
    cmd = [
        "ssh",
        "-o",
        "BatchMode=yes",
        *ssh_args,
        ssh_host,
        "docker",
        "stats",
        "--no-stream",
        "--format",
        "'{{json .}}'",
        container,
    ]

    def sample() -> tuple[int | None, float | None]:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise OSError(f"{' '.join(cmd)} failed (rc {proc.returncode}): {proc.stderr.strip()[:300]}")
        return parse_docker_cli_stats(proc.stdout.strip().splitlines()[-1])

    sample()
    return sample


class ResourceSampler:
    """Samples a container's memory and CPU in a background thread while the load runs."""

    def __init__(
        self,
        sample: Callable[[], tuple[int | None, float | None]] | None,
        interval_s: float = 1.0,
        reason: str = "",
        container: str = "",
    ) -> None:
        self._sample = sample
        self.interval = interval_s
        self.reason = reason if sample is None else ""
        # Which container the figures are of, for the report (socket_sampler's sample knows it).
        self.container = container or str(getattr(sample, "container", "") or "")
        self.mem: list[int] = []
        self.cpu: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(self.interval)

    def take(self) -> None:
        if self._sample is None:
            return
        try:
            mem, cpu = self._sample()
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            self.errors.append(str(exc))
            return
        if mem is not None:
            self.mem.append(mem)
        if cpu is not None:
            self.cpu.append(cpu)

    def __enter__(self) -> ResourceSampler:
        if self._sample is not None:
            self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.take()

    def summary(self) -> dict[str, Any]:
        mb = [m / 2**20 for m in self.mem]
        measured = bool(mb)
        reason = self.reason or (self.errors[-1] if self.errors and not measured else "")
        return {
            "measured": measured,
            "container": self.container or None,
            "reason": reason if not measured else "",
            "samples": len(mb),
            "memory_peak_mb": round(max(mb), 2) if mb else None,
            "memory_mean_mb": round(math.fsum(mb) / len(mb), 2) if mb else None,
            "cpu_peak_pct": round(max(self.cpu), 2) if self.cpu else None,
            "cpu_mean_pct": round(math.fsum(self.cpu) / len(self.cpu), 2) if self.cpu else None,
            "errors": self.errors[-3:],
        }
