"""uvicorn with the connection limits it lacks.

uvicorn (0.54, httptools) arms no timer on a new connection nor while a request head or body
arrives: its only timer is the keep-alive one, armed after a response. A client that opens a
connection and sends nothing, or one header byte every few seconds (slowloris), holds it
forever. httptools (llhttp) puts no bound on a request head: a 32 MiB header value is buffered
whole, by repeated concatenation. And ``limit_concurrency`` answers 503 to every request while
the connection count is over the limit, so a flood of idle connections denies service to the
clients that do send requests.

``GuardedHttpToolsProtocol`` adds, per connection, one deadline (time to receive a request head,
then its body, or the keep-alive wait after a response) checked by one sweep over the open
connections every second or so: a timer per request would cost more on the hot path than a float
store. uvicorn's own keep-alive timer, armed after every response and cancelled by the next
request's first read, is replaced by that deadline. It counts the bytes of a request
head before httptools can buffer more than one read beyond the limit, counts header fields, and
keeps the open connections under ``max_connections`` by closing the oldest one that is waiting
for a request (idle, or with a head still arriving), as nginx reuses its idle connections when
it runs short. Connections with a request in progress are never closed for the cap.

Each closing is counted in ``edgeinfer_connections_closed_total{reason}`` and logged at debug
level only: a client that can make the sidecar write a log line per connection can fill the disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings

if TYPE_CHECKING:
    from .app import Service

log = logging.getLogger("sidecar.server")

STATUS_LINES = {408: b"HTTP/1.1 408 Request Timeout\r\n", 431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n"}


class HeaderLimitError(Exception):
    """Raised in a parser callback: httptools stops, and uvicorn answers through send_400_response."""


@dataclass
class Limits:
    """The limits of one server and the connections they apply to."""

    max_connections: int
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    closed: Counter | None = None
    # Open connections, oldest first; a connection leaves when it is closed, not when the
    # transport reports it lost, so that a burst of new connections closes one each.
    live: dict[GuardedHttpToolsProtocol, None] = field(default_factory=dict)
    sweeper: asyncio.TimerHandle | None = None

    @property
    def sweep_interval(self) -> float:
        return min(1.0, max(0.05, min(self.header_timeout, self.body_timeout) / 4))

    def count(self, reason: str) -> None:
        if self.closed is not None:
            self.closed.labels(reason).inc()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sweeper is None:
            self.sweeper = loop.call_later(self.sweep_interval, self.sweep, loop)

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn in [c for c in self.live if c.deadline is not None and c.deadline <= now]:
            conn.expire()
        self.sweeper = loop.call_later(self.sweep_interval, self.sweep, loop) if self.live else None


class HeadWithBody:
    """A request's view of its connection that sends the response head with the first body write.

    uvicorn writes a response's status line and headers, then its body, with two writes: two
    send(2) calls and, with TCP_NODELAY, two segments that wake the client twice. This holds the
    head back until the body (or a close) follows; the 100 Continue interim answer, written
    before the response starts, passes straight through, and so does the head of an answer to
    HEAD, which uvicorn follows with no body write.
    """

    __slots__ = ("cycle", "head", "started", "transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self.transport = transport
        self.cycle = cycle
        self.head: bytes | None = None
        self.started = cycle.scope["method"] == "HEAD"  # nothing to hold the head for

    def write(self, data: bytes) -> None:
        if self.head is not None:  # the body, or its first chunk
            data, self.head = self.head + data, None
        elif not self.started and self.cycle.response_started:  # the head: uvicorn sets the flag first
            self.started = True
            self.head = data
            return
        self.transport.write(data)

    def close(self) -> None:
        if self.head is not None:
            self.transport.write(self.head)
            self.head = None
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under ``limits`` (set on the subclass that protocol_class makes)."""

    limits: Limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline: float | None = self.loop.time() + self.limits.header_timeout
        self.awaiting_head = True  # the next bytes belong to a request head
        self.kept_alive = False  # idle after a response: the deadline is the keep-alive one
        self.head_bytes = 0
        self.heads = 0
        self.refusal: str | None = None
        lim = self.limits
        lim.live[self] = None
        lim.watch(self.loop)
        if len(lim.live) > lim.max_connections:
            # the oldest idle one; this one when every other has a request in progress
            victim = next(c for c in lim.live if c.idle)
            lim.count("max_connections")
            log.debug("%d connections open: closing %s", len(lim.live), "this one" if victim is self else "an idle one")
            victim.close()

    @property
    def idle(self) -> bool:
        """No request in progress (waiting for one, or its head arriving): may be closed for the cap."""
        return self.awaiting_head and (self.cycle is None or self.cycle.response_complete)

    def connection_lost(self, exc: Exception | None) -> None:
        self.limits.live.pop(self, None)
        super().connection_lost(exc)

    def close(self) -> None:
        self.limits.live.pop(self, None)
        self.deadline = None
        self.transport.close()

    # The parser callbacks below run on every request: each does a few attribute stores and
    # calls no method beyond uvicorn's own (header fields are counted once, at the end of the head).

    def data_received(self, data: bytes) -> None:
        self.read_bytes = len(data)
        counted, heads = self.awaiting_head, self.heads
        super().data_received(data)
        # A read that was all head (no head completed in it) is counted here, so that httptools
        # never holds more than one read (256 KiB) beyond the limit; the read that completes a
        # head is checked in on_headers_complete.
        if counted and heads == self.heads and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes:
                self.refuse(431, self.too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.deadline is None or self.kept_alive:  # the first byte of a request after a keep-alive wait
            self.kept_alive = False
            self.deadline = self.loop.time() + self.limits.header_timeout

    def on_headers_complete(self) -> None:
        lim = self.limits
        if len(self.headers) > lim.max_headers:
            self.refusal = f"the request has more than {lim.max_headers} header fields"
        # Sized exactly only when this read and the earlier ones of the head could pass the limit.
        elif self.head_bytes + self.read_bytes > lim.max_header_bytes and self.head_size() > lim.max_header_bytes:
            self.refusal = self.too_large()
        if self.refusal is not None:
            raise HeaderLimitError(self.refusal)
        self.awaiting_head = False
        self.heads += 1
        self.head_bytes = 0
        self.deadline = self.loop.time() + self.limits.body_timeout
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request (an upgrade makes none)
            self.cycle.transport = HeadWithBody(self.transport, self.cycle)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.awaiting_head = True
        if self.cycle.response_complete:  # answered before its body ended (a 413, say): idle now
            self.keep_alive_wait()
        else:
            self.deadline = None

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive wait as the connection's deadline instead of a timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # a pipelined request waits: start it
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self.awaiting_head and self.head_bytes == 0:  # its request has ended and no other began
            self.keep_alive_wait()

    def keep_alive_wait(self) -> None:
        self.kept_alive = True
        self.deadline = self.loop.time() + self.timeout_keep_alive

    def head_size(self) -> int:
        """The request head's size on the wire, less optional whitespace."""
        line = len(self.parser.get_method()) + len(self.url) + len(b" HTTP/1.1\r\n") + 1
        return line + sum(len(n) + len(v) + 4 for n, v in self.headers) + 2

    def too_large(self) -> str:
        return f"the request head is over {self.limits.max_header_bytes} bytes"

    def send_400_response(self, msg: str) -> None:
        if self.refusal is not None:
            self.refuse(431, self.refusal)
        else:
            super().send_400_response(msg)

    def refuse(self, status: int, detail: str) -> None:
        """Answer a request whose head never completed (no ASGI task exists for it), then close.

        Behind a pipelined request still being answered, the answer would come first: close only.
        """
        code = "header_too_large" if status == 431 else "request_timeout"
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps({"error": code, "detail": detail}).encode()
            head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            self.transport.write(STATUS_LINES[status] + head + body)
        self.limits.count(code if status == 431 else "header_timeout")
        log.debug("closing a connection from %s: %s", self.client, detail)
        self.close()

    def expire(self) -> None:
        if self.kept_alive:  # an idle keep-alive connection, as uvicorn closes it: not counted
            self.close()
            return
        if self.awaiting_head:
            if self.head_bytes:
                self.refuse(408, f"the request head did not arrive within {self.limits.header_timeout:g} s")
                return
            self.limits.count("header_timeout")  # no request began: close without an answer
        else:
            # The endpoint reading the body sees the client disconnect.
            self.limits.count("body_timeout")
            log.debug(
                "closing a connection from %s: no request body within %g s", self.client, self.limits.body_timeout
            )
        self.close()


def protocol_class(limits: Limits) -> type[GuardedHttpToolsProtocol]:
    return type("SidecarHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def limits_of(settings: Settings, closed: Counter | None = None) -> Limits:
    return Limits(
        max_connections=settings.max_connections,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout_s,
        body_timeout=settings.body_timeout_s,
        closed=closed,
    )


def schedule(policy: str) -> None:
    """Put the calling thread, and so every thread it starts from now on, under ``policy``.

    ``batch`` is Linux's SCHED_BATCH: a thread that wakes does not preempt the one running; it
    waits for that one to block or to end its time slice. Where the event loop and the inference
    thread share a core under load, the loop otherwise wakes on each request's bytes in the middle
    of a batch's inference and takes the core from it, two or three times per batch: each switch
    costs both threads their caches, and the loop reads fewer requests per wake. Under SCHED_BATCH
    the inference runs on, and the loop then reads every request that arrived meanwhile in one go
    (docs/sidecar.md has the figures). An idle core has nothing to preempt,
    so a lone request is not delayed. What it costs: on a core where another process's CPU-bound
    work runs, a request waits for the end of that process's time slice (a few ms) rather than
    preempting it; ``other`` (SCHED_OTHER) preempts as before. A platform without the call (not
    Linux) or one that refuses it serves on under its default policy, and says so.
    """
    wanted = {"batch": getattr(os, "SCHED_BATCH", None), "other": getattr(os, "SCHED_OTHER", None)}[policy]
    if wanted is None or not hasattr(os, "sched_setscheduler"):
        log.warning("EDGEINFER_SCHED_POLICY=%s: this platform has no such policy; serving under its default", policy)
        return
    try:
        os.sched_setscheduler(0, wanted, os.sched_param(0))
    except OSError as exc:
        log.warning("EDGEINFER_SCHED_POLICY=%s was refused (%s); serving under the default policy", policy, exc)


def serve(app: Service, settings: Settings, closed: Counter | None = None) -> None:
    import uvicorn

    limits = limits_of(settings, closed)
    app.connections = limits.live.__len__  # what Service.alone reads
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(limits),
        timeout_keep_alive=settings.keepalive_timeout_s,  # type: ignore[arg-type]  # a float works: call_later
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
        # No proxy in front of the sidecar: skip the middleware that rewrites the client address.
        proxy_headers=False,
        # limit_concurrency is left unset: it answers 503 to every request while the count is
        # over, so idle connections would deny service; the cap above closes them instead.
    )
