"""Pure parts of the probe gate, without a network: the embedding-stamp judgement
(the /healthz judgement and the clock are edgeinfer_load's, tested in tests/unit/load)."""

from __future__ import annotations

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._probe import stamp_problem

HEALTHY = {"model_version": "v2", "model_sha256": "ab" * 32, "embedding_stamp": {"stamp": "m/64/0123456789ab"}}


@pytest.mark.parametrize(
    ("body", "expect", "problem"),
    [
        (HEALTHY, None, None),
        (HEALTHY, "m/64/0123456789ab", None),
        ({"embedding_stamp": "m/64/0123456789ab"}, "m/64/0123456789ab", None),
        (HEALTHY, "other/64/0123456789ab", "expected 'other/64/0123456789ab'"),
        ({}, "m/64/0123456789ab", "serving embedding stamp None"),
        (None, "m/64/0123456789ab", "serving embedding stamp None"),
    ],
)
def test_stamp_problem(body, expect, problem) -> None:
    got = stamp_problem(body, expect)
    if problem is None:
        assert got is None
    else:
        assert problem in got
