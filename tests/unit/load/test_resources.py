"""edgeinfer_load.resources: Docker's stats arithmetic, its CLI's output, and which container is measured."""

from __future__ import annotations

import re

import pytest

import edgeinfer_load as lg
from tests.unit.load.recorded import SIDECAR

V2 = {"memory_stats": {"usage": 300 * 2**20, "stats": {"inactive_file": 100 * 2**20}}}
V1 = {"memory_stats": {"usage": 300 * 2**20, "stats": {"total_inactive_file": 50 * 2**20, "cache": 80 * 2**20}}}


@pytest.mark.parametrize(
    ("stats", "mib"),
    [(V2, 200), (V1, 250), ({"memory_stats": {"usage": 64 * 2**20}}, 64), ({"memory_stats": {}}, None), ({}, None)],
)
def test_docker_memory_excludes_inactive_cache(stats, mib):
    got = lg.docker_memory_bytes(stats)
    assert (got / 2**20 if got is not None else None) == mib


def _cpu(total, system, n=4):
    return {"cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": n}}


@pytest.mark.parametrize(
    ("prev", "cur", "pct"),
    [
        (_cpu(0, 0), _cpu(1_000, 4_000), 100.0),  # one of four cores busy = 100 %
        (_cpu(0, 0), _cpu(2_000, 4_000), 200.0),
        (None, _cpu(1, 1), None),
        (_cpu(5, 5), _cpu(6, 5), None),  # no system time passed
    ],
)
def test_docker_cpu_percent(prev, cur, pct):
    assert lg.docker_cpu_percent(prev, cur) == (pytest.approx(pct) if pct is not None else None)


@pytest.mark.parametrize(
    ("line", "mem", "cpu"),
    [
        ('{"MemUsage":"123.5MiB / 15.84GiB","CPUPerc":"12.34%"}', int(123.5 * 2**20), 12.34),
        ('{"MemUsage":"1.5GiB / 2GiB","CPUPerc":"0.00%"}', int(1.5 * 2**30), 0.0),
        ('{"MemUsage":"512kB / 1GB","CPUPerc":"--"}', 512_000, None),
    ],
)
def test_parse_docker_cli_stats(line, mem, cpu):
    assert lg.parse_docker_cli_stats(line) == (mem, cpu)


# A second sidecar of another compose project on 9001.
OTHER = dict(SIDECAR, Id="b" * 64, Names=["/edgeinfer-b-sidecar"], Ports=[dict(SIDECAR["Ports"][0], PublicPort=9001)])
EXPOSED_ONLY = dict(SIDECAR, Id="c" * 64, Names=["/unpublished"], Ports=[{"PrivatePort": 9000, "Type": "tcp"}])
HOST_NET = dict(SIDECAR, Id="d" * 64, Names=["/on-host"], Ports=[], HostConfig={"NetworkMode": "host"})
# GET /containers/{name}/json of the same container: the port mapping under NetworkSettings.
INSPECT = {
    "Id": SIDECAR["Id"],
    "Name": "/edgeinfer-local-sidecar",
    "State": {"Status": "running", "Running": True},
    "HostConfig": {"NetworkMode": "edgeinfer-local_default"},
    "NetworkSettings": {"Ports": {"9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]}},
}


@pytest.mark.parametrize(
    ("found", "port", "named", "picked"),
    [
        ([SIDECAR], 9000, False, "edgeinfer-local-sidecar"),
        ([SIDECAR, OTHER], 9001, False, "edgeinfer-b-sidecar"),  # the one serving the target, not "2 match"
        ([INSPECT], 9000, True, "edgeinfer-local-sidecar"),
        ([HOST_NET], 9000, True, "on-host"),  # named by the operator: its ports cannot be told
        ([SIDECAR], None, False, "edgeinfer-local-sidecar"),  # no target port to check against
    ],
)
def test_pick_container_takes_the_one_publishing_the_target_port(found, port, named, picked):
    assert lg.container_name(lg.pick_container(found, port, "with labels x", named=named)) == picked


@pytest.mark.parametrize(
    ("found", "port", "named", "said"),
    [
        # a calibration server on 19511 in no container: the sidecar on 9000 must not stand in for it
        ([SIDECAR], 19511, False, "publishes port 19511, the target's (edgeinfer-local-sidecar publishes 9000)"),
        ([INSPECT], 19511, True, "edgeinfer-local-sidecar publishes 9000"),
        ([EXPOSED_ONLY], 9000, False, "unpublished publishes no port"),
        ([HOST_NET], 9000, False, "on-host on the host's network"),
        ([], 9000, False, "no running container with labels x"),
        ([SIDECAR, SIDECAR], 9000, False, "2 containers with labels x serve the target"),
    ],
)
def test_pick_container_says_why_it_takes_none(found, port, named, said):
    with pytest.raises(OSError, match=re.escape(said)):
        lg.pick_container(found, port, "with labels x", named=named)


@pytest.mark.parametrize(
    ("cell", "ports"),
    [
        ("127.0.0.1:9000->9000/tcp", [9000]),
        ("0.0.0.0:9000->9000/tcp, :::9000->9000/tcp", [9000]),
        ("[::]:9100->9000/tcp", [9100]),
        ("0.0.0.0:8000-8001->8000-8001/tcp", [8000, 8001]),
        ("9000/tcp", []),  # exposed, not published
        ("0.0.0.0:5353->5353/udp", []),
        ("", []),
    ],
)
def test_docker_ps_ports_reads_the_published_tcp_ports(cell, ports):
    assert lg.published_ports({"Ports": lg.docker_ps_ports(cell)}) == ports


class _Recorded:
    """Answers the Docker API calls socket_sampler makes with recorded bodies."""

    def __init__(self, containers):
        self.containers = containers
        self.urls = []

    def __call__(self, url):
        self.urls.append(url)
        if url.startswith("/containers/json"):
            return self.containers
        if url.endswith("/json"):
            return INSPECT
        return {"memory_stats": {"usage": 128 * 2**20}}


def test_socket_sampler_measures_only_the_container_serving_the_target(monkeypatch):
    api = _Recorded([SIDECAR])
    monkeypatch.setattr(lg.DockerSocket, "get", lambda _self, url: api(url))
    with pytest.raises(OSError, match="publishes port 19511"):
        lg.socket_sampler(None, "edgeinfer-sidecar", None, port=19511)
    assert not any("/stats" in u for u in api.urls)  # nothing was read from the wrong container
    sampler = lg.ResourceSampler(lg.socket_sampler(None, "edgeinfer-sidecar", None, port=9000))
    sampler.take()
    summary = sampler.summary()
    assert summary["measured"] is True and summary["container"] == "edgeinfer-local-sidecar"
    assert summary["memory_peak_mb"] == 128.0
