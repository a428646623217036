"""edgeinfer_load.result: the per-second timeline of a phase, and what its success rate counts."""

from __future__ import annotations

import edgeinfer_load as lg


def test_the_last_partial_second_of_a_timeline_is_marked() -> None:
    res = lg.LoadResult("open", 4, 10.0, 2.5, elapsed_s=2.5)
    res.completed_at_s = [0.1, 0.9, 1.2, 1.8, 2.2, 2.4]
    res.latencies_ms = [1.0, 1.0, 2.0, 2.0, 9.0, 9.0]
    res.ok = [True] * 6
    tl = res.timeline()
    assert [(b["t_s"], b["seconds"], b["partial"]) for b in tl] == [(0, 1.0, False), (1, 1.0, False), (2, 0.5, True)]
    assert sum(b["requests"] for b in tl) == 6


def test_unsent_requests_are_apart_from_the_servers_success_rate() -> None:
    """Due but never sent (the generator fell behind): in the latencies and counted, not the server's failures."""
    res = lg.LoadResult("open", 4, 100.0, 1.0, elapsed_s=1.0)
    res.latencies_ms = [1.0] * 95 + [400.0] * 5
    res.ok = [True] * 90 + [False] * 10
    res.failures = {"status_500": 5, "unsent": 5}
    assert (res.requests, res.sent, res.unsent, res.failed, res.successes) == (100, 95, 5, 10, 90)
    assert res.success_rate == 90 / 95
    d = res.to_dict()
    assert d["unsent"] == 5 and d["success_rate"] == round(90 / 95, 6) and d["latency"]["max_ms"] == 400.0
