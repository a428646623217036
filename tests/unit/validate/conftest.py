"""A calibration server in its own process, on a free 127.0.0.1 port, with the misbehaviour a test asks for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.testserver import CalibrationServer


@pytest.fixture
def server_factory() -> Iterator:
    started: list[CalibrationServer] = []

    def make(*args: str) -> CalibrationServer:
        s = CalibrationServer(*args)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory) -> CalibrationServer:
    """A well-behaved calibration server."""
    return server_factory()
