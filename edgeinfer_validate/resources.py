"""Where the sidecar's memory and CPU come from: the local Docker socket, or ``docker stats`` over SSH.

Only the container that publishes the target's port is measured, never another one that
happens to carry the compose label. When none is found, or neither way works, the sampler
says why and the memory figure is reported as not measured: it is never invented.
"""

from __future__ import annotations

import argparse
import os
import subprocess

import edgeinfer_load as lg

# Name, published ports and networks of each running container, one line each.
PS_FORMAT = "'{{.Names}}\t{{.Ports}}\t{{.Networks}}'"


def ps_containers(text: str) -> list[dict]:
    """``docker ps --format PS_FORMAT`` output as Engine API list entries (what pick_container reads)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, rest = line.strip().partition("\t")
        ports, _, networks = rest.partition("\t")
        out.append(
            {
                "Names": [name],
                "Ports": lg.docker_ps_ports(ports),
                "HostConfig": {"NetworkMode": networks.strip()},
            }
        )
    return out


def _ssh_find(host: str, name: str | None, service: str, project: str | None, port: int) -> str:
    """The name of the container on ``host`` that publishes ``port``: ``name``, else the compose service's."""
    flt = []
    if not name:
        flt.append(f"--filter=label=com.docker.compose.service={service}")
        if project:
            flt.append(f"--filter=label=com.docker.compose.project={project}")
    cmd = ["ssh", "-o", "BatchMode=yes", host, "docker", "ps", *flt, "--format", PS_FORMAT]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        raise OSError(f"{' '.join(cmd)} failed (rc {proc.returncode}): {proc.stderr.strip()[:300]}")
    found = ps_containers(proc.stdout)
    if name:
        found = [c for c in found if c["Names"][0] == name]
        what = f"named {name} on {host}"
    else:
        what = f"of service {service} on {host}"
    return lg.container_name(lg.pick_container(found, port, what, named=bool(name)))


def resource_sampler(a: argparse.Namespace, loopback: bool) -> lg.ResourceSampler:
    mode = a.docker
    if mode == "none":
        return lg.ResourceSampler(None, reason="--docker none")
    if mode == "socket" or (mode == "auto" and loopback):
        if not os.path.exists(a.docker_socket):
            return lg.ResourceSampler(None, reason=f"no Docker socket at {a.docker_socket}")
        try:
            sample = lg.socket_sampler(a.container, a.compose_service, a.compose_project, a.docker_socket, a.port)
        except (OSError, ValueError) as exc:
            return lg.ResourceSampler(None, reason=f"Docker socket {a.docker_socket}: {exc}")
        return lg.ResourceSampler(sample)
    host = a.ssh_host or a.host
    try:
        name = _ssh_find(host, a.container, a.compose_service, a.compose_project, a.port)
        sample = lg.ssh_sampler(host, name)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return lg.ResourceSampler(None, reason=f"docker stats over ssh to {host}: {exc}")
    return lg.ResourceSampler(sample, container=name)
