"""edgeinfer_validate's calibration server (``python -m edgeinfer_validate.testserver``, no model)
as a child process on a free 127.0.0.1 port, with the misbehaviour its arguments ask for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edgeinfer_load as lg

REPO = Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CalibrationServer:
    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeinfer_validate.testserver", "--port", "0", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"calibration server did not start: {line!r} {err!r}")
        host, port = line.removeprefix("listening on ").rsplit(":", 1)
        self.target = lg.Target(host, int(port))
        self.url = self.target.url()

    @property
    def shown(self) -> str:
        """The command line that reproduces this server."""
        return "python -m edgeinfer_validate.testserver " + " ".join(self.args)

    def stats(self) -> dict:
        status, body = lg.http_get_json(self.target, "/_stats")
        assert status == 200, (status, body)
        return body

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> CalibrationServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
