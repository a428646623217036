# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exact percentiles (nearest rank) and the latency summary every report shows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

PERCENTILE_CURVE = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty).

    The value at 1-based rank ``ceil(p / 100 * n)``; ``p = 0`` gives the
    minimum, ``p = 100`` the maximum.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile {p!r} is outside 0..100")
    # Exact: in floats 99.9 / 100 * 1000 is 999.0000000000001, whose ceiling is rank 1000, the maximum.
    rank = math.ceil(Fraction(str(p)) * n / 100)
    return float(sorted_values[min(max(rank, 1), n) - 1])


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """count, mean, min, p50, p90, p95, p99, p99.9 and max (ms) of any samples."""
    s = sorted(latencies_ms)
    n = len(s)
    out = {"count": n, "mean_ms": (math.fsum(s) / n) if n else math.nan, "min_ms": s[0] if n else math.nan}
    for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        out[f"{name}_ms"] = percentile(s, p)
    out["max_ms"] = s[-1] if n else math.nan
    return out


def rounded(v: float) -> float | None:
    if isinstance(v, int):
        return v
    return None if v is None or not math.isfinite(v) else round(v, 4)
