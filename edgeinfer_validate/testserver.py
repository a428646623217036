"""A calibration target for the instrument: an HTTP/1.1 server whose misbehaviour you choose.

It speaks the sidecar's API (``GET /healthz``, ``POST /encode``) without a
model, so what a load run measures is the instrument and the network stack,
plus exactly the delays and failures asked for:

    python -m edgeinfer_validate.testserver --port 9100 --slow-every 100 --slow-ms 20

Behaviours count the load requests (every path but ``/healthz`` and
``/_stats``) with one server-wide counter, so "every 100th request" means
the 100th, 200th, ... request the server received, whichever connection it
came on. ``GET /_stats`` returns the counters, which tests compare with what
the engine counted. It runs on one asyncio loop in its own process, so it
does not compete with the load generator for a GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import selectors
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

LATENT = [round(0.01 * ((i * 37) % 64) - 0.3, 4) for i in range(64)]
HEALTH = {
    "status": "ok",
    "model_version": "calibration",
    "model_sha256": "0" * 64,
    "backend": "none",
    "normalization_hash": "f" * 64,
    "embedding_stamp": "calibration/64/ffffffffffff",
}


@dataclass
class Behaviour:
    delay_ms: float = 0.0
    slow_every: int = 0
    slow_ms: float = 0.0
    error_every: int = 0
    error_status: int = 500
    close_every: int = 0
    drop_every: int = 0
    bad_body_every: int = 0
    pause_at_s: float = -1.0
    pause_s: float = 0.0
    health_status: int = 200
    model_version: str = "calibration"
    idle_timeout_s: float = 0.0


@dataclass
class Counters:
    requests: int = 0
    slowed: int = 0
    errors: int = 0
    closed: int = 0
    dropped: int = 0
    bad_bodies: int = 0
    paused: int = 0
    health: int = 0
    connections: int = 0
    idle_closed: int = 0
    first_at: float | None = None
    by_path: dict[str, int] = field(default_factory=dict)


def _response(status: int, body: bytes, ctype: str = "application/json", close: bool = False) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Status')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


class _Server:
    def __init__(self, b: Behaviour) -> None:
        self.b = b
        self.c = Counters()
        health = dict(HEALTH, model_version=b.model_version)
        if b.health_status != 200:
            health = {"status": "unavailable", "reason": "test server told to be unhealthy"}
        self.health = _response(b.health_status, json.dumps(health).encode())
        enc = {"latent_embedding": LATENT, "model_version": b.model_version, "backend": "none", "inference_ms": 0.0}
        self.encode_body = json.dumps(enc).encode()
        self.encode_bin = struct.pack("<64f", *LATENT)
        self.bad_body = json.dumps({"latent_embedding": [0.0] * 10}).encode()
        self.plain = b"ok\n"

    def answer(self, method: str, path: str, accept: str) -> tuple[float, bytes | None, bool]:
        """``(delay seconds, response bytes or None to drop the connection, close after)``."""
        b, c = self.b, self.c
        if path == "/_stats":
            return 0.0, _response(200, json.dumps(c.__dict__).encode()), False
        if path == "/healthz":
            c.health += 1
            return 0.0, self.health, False
        now = time.monotonic()
        if c.first_at is None:
            c.first_at = now
        c.requests += 1
        n = c.requests
        c.by_path[path] = c.by_path.get(path, 0) + 1
        delay = b.delay_ms / 1000.0
        if b.slow_every and n % b.slow_every == 0:
            delay += b.slow_ms / 1000.0
            c.slowed += 1
        if b.pause_s > 0 and b.pause_at_s >= 0:
            start = c.first_at + b.pause_at_s
            if start <= now < start + b.pause_s:
                delay = max(delay, start + b.pause_s - now)
                c.paused += 1
        if b.drop_every and n % b.drop_every == 0:
            c.dropped += 1
            return delay, None, True
        close = bool(b.close_every and n % b.close_every == 0)
        if close:
            c.closed += 1
        if b.error_every and n % b.error_every == 0:
            c.errors += 1
            return delay, _response(b.error_status, b'{"error":"injected"}', close=close), close
        if b.bad_body_every and n % b.bad_body_every == 0:
            c.bad_bodies += 1
            return delay, _response(200, self.bad_body, close=close), close
        if path.startswith("/encode"):
            if "application/octet-stream" in accept:
                return delay, _response(200, self.encode_bin, "application/octet-stream", close), close
            return delay, _response(200, self.encode_body, close=close), close
        return delay, _response(200, self.plain, "text/plain", close), close


class _Protocol(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.ready_at = 0.0  # answers on one connection leave in order
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.c.connections += 1
        self.idle_timer: asyncio.TimerHandle | None = None
        self._arm_idle()

    def _arm_idle(self) -> None:
        """Close a keep-alive connection left idle for idle_timeout_s, as uvicorn's timeout_keep_alive does."""
        t = self.server.b.idle_timeout_s
        if t > 0:
            self.idle_timer = asyncio.get_running_loop().call_later(t, self._idle_close)

    def _idle_close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.server.c.idle_closed += 1
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.buf += data
        while not self.closing:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            length, accept = 0, ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "accept":
                    accept = value.strip()
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            parts = head[0].split(" ")
            method, path = (parts + ["", ""])[:2]
            delay, payload, close = self.server.answer(method, path.split("?")[0], accept)
            loop = asyncio.get_running_loop()
            at = max(loop.time() + delay, self.ready_at)
            self.ready_at = at
            if close:
                self.closing = True
            if at <= loop.time():
                self._send(payload, close)
            else:
                loop.call_at(at, self._send, payload, close)

    def _send(self, payload: bytes | None, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if payload is None:
            t.abort()
            return
        t.write(payload)
        if close:
            t.close()
        elif not self.buf:
            self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(b: Behaviour, host: str, port: int, ready: Any = None) -> None:
    server = _Server(b)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Protocol(server), host, port, backlog=1024, reuse_address=True)
    bound = srv.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with srv:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeinfer_validate.testserver", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="added to every load request")
    ap.add_argument("--slow-every", type=int, default=0, metavar="N", help="delay every Nth load request ...")
    ap.add_argument("--slow-ms", type=float, default=0.0, help="... by this much more")
    ap.add_argument("--error-every", type=int, default=0, metavar="N", help="answer every Nth with --error-status")
    ap.add_argument("--error-status", type=int, default=500)
    ap.add_argument("--close-every", type=int, default=0, metavar="N", help="answer, then close, every Nth")
    ap.add_argument("--drop-every", type=int, default=0, metavar="N", help="close without answering every Nth")
    ap.add_argument("--bad-body-every", type=int, default=0, metavar="N", help="a 200 with a 10-value embedding")
    ap.add_argument("--pause-at-s", type=float, default=-1.0, help="seconds after the first load request ...")
    ap.add_argument("--pause-s", type=float, default=0.0, help="... freeze every answer for this long")
    ap.add_argument("--health-status", type=int, default=200, help="what /healthz answers (503: unhealthy)")
    ap.add_argument("--model-version", default="calibration")
    ap.add_argument("--idle-timeout", type=float, default=0.0, help="close keep-alive connections idle this long")
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    a = ap.parse_args(argv)
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    b = Behaviour(
        delay_ms=a.delay_ms,
        slow_every=a.slow_every,
        slow_ms=a.slow_ms,
        error_every=a.error_every,
        error_status=a.error_status,
        close_every=a.close_every,
        drop_every=a.drop_every,
        bad_body_every=a.bad_body_every,
        pause_at_s=a.pause_at_s,
        pause_s=a.pause_s,
        health_status=a.health_status,
        model_version=a.model_version,
        idle_timeout_s=a.idle_timeout,
    )
    # select(2) wakes timers to the microsecond where epoll rounds them up to the next millisecond:
    # a --delay-ms 2 server then answers in 2.0x ms, not anywhere in 2..3 ms.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            loop.run_until_complete(serve(b, a.host, a.port))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
