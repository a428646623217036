"""The soak's verdicts (bench/soak.py): what a bad request must get back, and the memory check."""

from __future__ import annotations

import pytest

from bench.soak import checks, client_error


@pytest.mark.parametrize(
    ("status", "body", "failure"),
    [
        (422, b'{"error": "invalid_input", "detail": "imu_window: expected 100 rows"}', None),
        (415, b'{"error": "unsupported_media_type"}', None),
        (500, b'{"error": "internal_error"}', "status_500"),
        (200, b'{"latent_embedding": []}', "status_200"),
        (400, b"Bad Request", "error_body_not_json"),
        (400, b'["error"]', "error_body_without_error"),
    ],
)
def test_a_bad_request_needs_a_4xx_with_a_json_error_body(status: int, body: bytes, failure: str | None) -> None:
    assert client_error(status, "application/json", body) == failure


def _run(rss_after_each_reload: list[float]) -> dict:
    samples = [{"at_s": 60.0 * (i + 1), "rss_mib": r, "fds": 18} for i, r in enumerate(rss_after_each_reload)]
    reloads = [{"at_s": s["at_s"], "status": 200, "seconds": 0.2} for s in samples]
    return {"before": {"rss_mib": 84.0, "fds": 18}, "after": {"rss_mib": 90.0, "fds": 17},
            "samples": samples, "reloads": reloads}  # fmt: skip


def _memory_verdict(rss: list[float]) -> bool:
    verdicts = checks({}, _run(rss), alive=True)
    return next(ok for name, ok in verdicts.items() if name.startswith("RSS"))


def test_memory_is_judged_from_the_first_reload_to_the_last() -> None:
    assert _memory_verdict([92.3, 89.9, 96.8, 97.2])  # +5.3 %
    assert not _memory_verdict([91.8, 95.0, 99.0, 102.9])  # +12.1 %
    assert not _memory_verdict([])  # no reload: nothing to judge, and no pass
