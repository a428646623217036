"""Free TCP ports on loopback for the servers the tests start.

Ports are drawn at random from a slice of 20000-32767 of each pytest-xdist worker's own,
checked free by binding them: below Linux's ephemeral range (32768 and up), so no outgoing
connection takes one, and disjoint between workers, so two workers never pick the same port
in the moment between choosing it and a server binding it.
"""

from __future__ import annotations

import os
import random
import socket

LOW, HIGH = 20000, 32767
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
_WORKER = int((os.environ.get("PYTEST_XDIST_WORKER", "gw0") or "gw0").removeprefix("gw") or 0)
_SPAN = (HIGH - LOW) // max(_WORKERS, 1)
_RANGE = range(LOW + _WORKER * _SPAN, LOW + (_WORKER + 1) * _SPAN)
_rng = random.Random()


def free_port(address: str = "127.0.0.1", taken: set[int] | None = None) -> int:
    """A port free now on ``address`` and not in ``taken`` (which it joins). A fleet's sidecars
    start only after all its ports are drawn, so the ports of one fleet are kept apart here."""
    for _ in range(1000):
        port = _rng.choice(_RANGE)
        if taken is not None and port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
        if taken is not None:
            taken.add(port)
        return port
    raise RuntimeError(f"no free port on {address} in {_RANGE.start}-{_RANGE.stop - 1} after 1000 tries")
