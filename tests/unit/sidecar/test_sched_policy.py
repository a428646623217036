"""EDGEINFER_SCHED_POLICY: every thread of a real sidecar process runs under the policy it names."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeinfer_contract import ModelConfig
from sidecar.config import ConfigError, Settings
from testbed.sidecar import raw_windows

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux's scheduling policies")


@contextlib.contextmanager
def started_under(policy: int) -> Iterator[None]:
    """Processes started inside inherit ``policy`` from this thread (restored after)."""
    before = os.sched_getscheduler(0)
    os.sched_setscheduler(0, policy, os.sched_param(0))
    try:
        yield
    finally:
        os.sched_setscheduler(0, before, os.sched_param(0))


@pytest.mark.parametrize(
    ("env", "inherited", "wanted"),
    [
        ({}, "SCHED_OTHER", "SCHED_BATCH"),  # the default
        ({"EDGEINFER_SCHED_POLICY": "other"}, "SCHED_BATCH", "SCHED_OTHER"),  # set, not merely inherited
    ],
    ids=["default batch", "other"],
)
def test_every_thread_of_the_sidecar_runs_under_the_policy_named(
    sidecar, models, origin_config: ModelConfig, env: dict[str, str], inherited: str, wanted: str
):
    with started_under(getattr(os, inherited)):
        s = sidecar(models / "current", env=env)
    window = raw_windows(origin_config, 1, seed=5)[0].tolist()
    assert s.post("/encode", json={"imu_window": window}).status_code == 200
    # The event loop, the inference thread, and the worker that loaded the release.
    threads = sorted(Path(f"/proc/{s.proc.pid}/task").iterdir())
    assert len(threads) >= 3, [t.name for t in threads]
    policies = {t.name: os.sched_getscheduler(int(t.name)) for t in threads}
    assert set(policies.values()) == {getattr(os, wanted)}, policies


def test_an_unknown_policy_is_refused_naming_the_variable_and_the_choices():
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({"EDGEINFER_SCHED_POLICY": "fifo"})
    assert exc.value.variable == "EDGEINFER_SCHED_POLICY"
    assert "expected one of batch, other, got 'fifo'" in str(exc.value)
