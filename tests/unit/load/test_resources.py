"""edgeinfer_load.resources: Docker's stats arithmetic and its CLI's output."""

from __future__ import annotations

import pytest

import edgeinfer_load as lg

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
