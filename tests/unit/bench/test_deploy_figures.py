"""The per-edge controller CPU of bench/bench_deploy.py: what each further edge adds to a run."""

from __future__ import annotations

import pytest

from bench.bench_deploy import marginal_cpu


def rows(cpu: dict[int, float]) -> list[dict]:
    return [{"edges": n, "upgrade_one_batch_cpu_s": {"controller": c}} for n, c in cpu.items()]


def test_a_run_cost_paid_once_cancels_out() -> None:
    # 3 CPU-s once per run, 1.8 per edge: the total per edge falls (4.8, 2.8, 2.1), the marginal does not.
    assert marginal_cpu(rows({1: 4.8, 3: 8.4, 10: 21.0})) == pytest.approx({3: 1.8, 10: 1.8})


def test_a_cost_that_grows_with_the_fleet_shows_in_the_later_step() -> None:
    m = marginal_cpu(rows({10: 20.0, 1: 3.0, 3: 5.0}))  # 1 per edge up to 3 edges, then 15 / 7
    assert m == pytest.approx({3: 1.0, 10: 15 / 7})
    assert max(m.values()) / min(m.values()) > 1.25


def test_failed_sizes_are_left_out() -> None:
    assert marginal_cpu([{"edges": 1, "failed": "x"}, *rows({3: 6.0})]) == {}
