# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LoadResult: every request of one load phase, and its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stats import PERCENTILE_CURVE, percentile, rounded, summarize


@dataclass
class LoadResult:
    """Every request of one load phase. Latencies are in ms and include failures."""

    mode: str
    concurrency: int
    rate: float | None
    duration_s: float
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    uncorrected_ms: list[float] = field(default_factory=list)
    completed_at_s: list[float] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    intended: int = 0
    connects: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def successes(self) -> int:
        return self.requests - self.failed

    @property
    def unsent(self) -> int:
        """Open-loop requests due but never sent: the load generator's shortfall, not the server's."""
        return self.failures.get("unsent", 0)

    @property
    def sent(self) -> int:
        return self.requests - self.unsent

    @property
    def success_rate(self) -> float:
        """Successes among the requests the server was sent (``unsent`` ones it never saw are not its failures)."""
        return self.successes / self.sent if self.sent else 0.0

    @property
    def rps(self) -> float:
        """Completed requests (failures included) per second of the phase."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok_rps(self) -> float:
        return self.successes / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def timeline(self) -> list[dict[str, Any]]:
        """Per second of the phase: completions, failures, p50/p99/max of what completed then.

        ``seconds`` is how much of that second the phase covered. The last one is often
        ``partial`` (under 0.9 s covered): its figures are not a second's worth (fewer requests,
        and percentiles of the last stragglers), so plots draw it apart.
        """
        if not self.completed_at_s:
            return []
        nbins = int(max(self.completed_at_s)) + 1
        end = max(self.elapsed_s, *self.completed_at_s)
        lat: list[list[float]] = [[] for _bin in range(nbins)]
        bad = [0] * nbins
        for j, t in enumerate(self.completed_at_s):
            b = int(t)
            lat[b].append(self.latencies_ms[j])
            if not self.ok[j]:
                bad[b] += 1
        out = []
        for i in range(nbins):
            s = sorted(lat[i])
            covered = round(min(1.0, max(0.0, end - i)), 3)
            out.append(
                {
                    "t_s": i,
                    "seconds": covered,
                    "partial": covered < 0.9,
                    "requests": len(s),
                    "failures": bad[i],
                    "p50_ms": rounded(percentile(s, 50)),
                    "p99_ms": rounded(percentile(s, 99)),
                    "max_ms": rounded(s[-1]) if s else None,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 4),
            "requests": self.requests,
            "successes": self.successes,
            "failed": self.failed,
            "failures": dict(sorted(self.failures.items())),
            "success_rate": round(self.success_rate, 6),
            "rps": round(self.rps, 2),
            "ok_rps": round(self.ok_rps, 2),
            "connects": self.connects,
        }
        out["latency"] = {k: rounded(v) for k, v in summarize(self.latencies_ms).items()}
        s = sorted(self.latencies_ms)
        out["percentile_curve"] = [[p, rounded(percentile(s, p))] for p in PERCENTILE_CURVE]
        if self.mode == "open":
            out["intended"] = self.intended
            out["unsent"] = self.unsent
            out["uncorrected_latency"] = {k: rounded(v) for k, v in summarize(self.uncorrected_ms).items()}
        out["timeline"] = self.timeline()
        return out
