"""A calibration server in its own process, on a free 127.0.0.1 port, with the misbehaviour a test asks for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import edgeinfer_load as lg


class Server:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeinfer_validate.testserver", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"test server did not start: {line!r} {self.proc.stderr.read()!r}")
        host, port = line.removeprefix("listening on ").rsplit(":", 1)
        self.target = lg.Target(host, int(port))
        self.url = self.target.url()

    def stats(self) -> dict:
        status, body = lg.http_get_json(self.target, "/_stats")
        assert status == 200
        return body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server_factory() -> Iterator:
    started: list[Server] = []

    def make(*args: str) -> Server:
        s = Server(list(args))
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory) -> Server:
    """A well-behaved calibration server."""
    return server_factory()
