"""The dead-man's decision on the edge, as a pure function of what it has seen."""

from __future__ import annotations

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import decide


@pytest.mark.parametrize(
    ("confirmed", "cancelled", "elapsed", "action"),
    [
        (False, False, 0, "wait"),
        (False, False, 29.9, "wait"),
        (False, False, 30, "revert"),
        (True, False, 31, "confirmed"),
        (False, True, 31, "cancelled"),
        (True, True, 0, "confirmed"),
    ],
)
def test_decide(confirmed: bool, cancelled: bool, elapsed: float, action: str) -> None:
    assert decide(confirmed, cancelled, elapsed, 30) == action
