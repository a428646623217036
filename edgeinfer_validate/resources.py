"""Where the sidecar's memory and CPU come from: the local Docker socket, or ``docker stats`` over SSH.

When neither works the sampler says why, and the memory figure is reported
as not measured: it is never invented.
"""

from __future__ import annotations

import argparse
import os
import subprocess

import edgeinfer_load as lg


def _ssh_find(host: str, service: str, project: str | None) -> str:
    flt = [f"--filter=label=com.docker.compose.service={service}"]
    if project:
        flt.append(f"--filter=label=com.docker.compose.project={project}")
    cmd = ["ssh", "-o", "BatchMode=yes", host, "docker", "ps", *flt, "--format", "'{{.Names}}'"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    names = proc.stdout.split()
    if proc.returncode != 0:
        raise OSError(f"{' '.join(cmd)} failed (rc {proc.returncode}): {proc.stderr.strip()[:300]}")
    if len(names) != 1:
        raise OSError(f"{len(names)} containers of service {service} on {host} ({', '.join(names)}); use --container")
    return names[0]


def resource_sampler(a: argparse.Namespace, loopback: bool) -> lg.ResourceSampler:
    mode = a.docker
    if mode == "none":
        return lg.ResourceSampler(None, reason="--docker none")
    if mode == "socket" or (mode == "auto" and loopback):
        if not os.path.exists(a.docker_socket):
            return lg.ResourceSampler(None, reason=f"no Docker socket at {a.docker_socket}")
        try:
            sample = lg.socket_sampler(a.container, a.compose_service, a.compose_project, a.docker_socket)
        except (OSError, ValueError) as exc:
            return lg.ResourceSampler(None, reason=f"Docker socket {a.docker_socket}: {exc}")
        return lg.ResourceSampler(sample)
    host = a.ssh_host or a.host
    try:
        name = a.container or _ssh_find(host, a.compose_service, a.compose_project)
        sample = lg.ssh_sampler(host, name)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return lg.ResourceSampler(None, reason=f"docker stats over ssh to {host}: {exc}")
    return lg.ResourceSampler(sample)
