"""edgeinfer_load.result: the per-second timeline of a phase."""

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
