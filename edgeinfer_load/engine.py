# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The event loop: one non-blocking keep-alive connection per unit of concurrency, one selector."""

from __future__ import annotations

import contextlib
import errno
import math
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from .requests import Request, Target
from .result import LoadResult


class _Conn:
    __slots__ = (
        "sock",
        "state",
        "buf",
        "out",
        "ref",
        "sent",
        "deadline",
        "head_end",
        "status",
        "ctype",
        "length",
        "chunked",
        "close_after",
        "reused",
    )

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.state = "idle"
        self.buf = bytearray()
        self.out: memoryview | None = None
        self.ref = 0.0
        self.sent = 0.0
        self.deadline = 0.0
        self.head_end = -1
        self.status = 0
        self.ctype = ""
        self.length = -1
        self.chunked = False
        self.close_after = False
        self.reused = False


def _chunked_body(buf: bytearray, start: int) -> bytes | None:
    """The decoded body when a chunked message starting at ``start`` is complete, else None."""
    pos, parts = start, []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            if end < 0 and not buf.endswith(b"\r\n", eol):
                return None
            return b"".join(parts)
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
        pos = eol + 2 + size + 2


class _Engine:
    """A single-threaded driver of ``concurrency`` keep-alive connections."""

    CHECK_EVERY_S = 0.005

    def __init__(
        self,
        target: Target,
        request: Request | Sequence[Request],
        concurrency: int,
        timeout_s: float,
        result: LoadResult,
        on_progress: Callable[[dict[str, Any]], None] | None,
        now: Callable[[], float],
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout_s}")
        self.target = target
        requests = [request] if isinstance(request, Request) else list(request)
        if not requests:
            raise ValueError("no request to send")
        self.request = requests[0]  # every request of a load is judged alike (its validate)
        # A replay cycles through its windows, one request each, in the file's order.
        self.wires = [r.wire(target) for r in requests]
        self.issued = 0
        self.timeout = timeout_s
        self.res = result
        self.now = now
        # select(2) takes a timeout in microseconds where epoll takes milliseconds: with it
        # an open-loop request is sent on time, not up to a millisecond late. epoll only
        # past select's 1024-descriptor limit.
        self.sel = selectors.SelectSelector() if concurrency <= 256 else selectors.DefaultSelector()
        self.conns = [_Conn() for _slot in range(concurrency)]
        self.idle: list[_Conn] = []
        self.inflight = 0
        self.t0 = 0.0
        self.last_done = 0.0
        self.on_progress = on_progress
        self._addr: tuple[Any, ...] | None = None
        self._family = socket.AF_INET

    # -- setup
    def resolve(self) -> None:
        info = socket.getaddrinfo(self.target.host, self.target.port, type=socket.SOCK_STREAM)
        self._family, self._addr = info[0][0], info[0][4]

    def preconnect(self) -> None:
        """Open every connection before the clock starts, so the handshake is not in the first latencies."""
        for c in self.conns:
            try:
                s = socket.create_connection(self._addr[:2], timeout=self.timeout)
            except OSError:
                continue  # it is retried, and counted, when its first request is due
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.sock = s
            self.res.connects += 1

    # -- one request
    def issue(self, c: _Conn, ref: float | None) -> None:
        """Send the request on ``c``; its latency runs from ``ref`` (the due time), or from the send when None."""
        if c.sock is not None and self.dropped(c.sock):
            # The server closed this keep-alive connection while it sat idle (its idle
            # timeout): open a new one, as an HTTP client's pool does (urllib3's
            # is_connection_dropped), instead of sending into a closed socket.
            self.drop(c)
        wire = self.wires[self.issued % len(self.wires)]
        self.issued += 1
        c.sent = self.now()
        c.ref = c.sent if ref is None else ref
        c.deadline = c.sent + self.timeout
        c.buf.clear()
        c.head_end = -1
        self.inflight += 1
        if c.sock is None:
            s = socket.socket(self._family, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.res.connects += 1
            c.sock = s
            c.reused = False
            err = s.connect_ex(self._addr)
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                self.fail(c, "connect")
                return
            c.state = "connecting"
            c.out = memoryview(wire)
            self.sel.register(s, selectors.EVENT_WRITE, c)
            return
        c.reused = True
        c.out = memoryview(wire)
        c.state = "sending"
        self.send(c, registered=False)

    @staticmethod
    def dropped(sock: socket.socket) -> bool:
        """An idle connection the peer has closed (or sent something unasked on) is not reusable."""
        try:
            sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False  # nothing to read: alive
        except OSError:
            return True
        return True  # end of stream, or bytes nobody asked for: either way not reusable

    def send(self, c: _Conn, registered: bool) -> None:
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.fail(c, "connection")
            return
        c.out = c.out[n:]
        if len(c.out):
            if not registered:
                self.sel.register(c.sock, selectors.EVENT_WRITE, c)
            return
        c.state = "receiving"
        if registered:
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
        else:
            self.sel.register(c.sock, selectors.EVENT_READ, c)

    def on_writable(self, c: _Conn) -> None:
        if c.state == "connecting":
            if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.fail(c, "connect")
                return
            c.state = "sending"
        self.send(c, registered=True)

    def on_readable(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.fail(c, "connection")
            return
        # The time the response's last byte was read: what parsing and validating the answer
        # cost this process comes after it, and is not the server's latency.
        done = self.now()
        if not data:
            if c.head_end >= 0 and c.length < 0 and not c.chunked:
                self.complete(c, bytes(c.buf[c.head_end :]), done, closing=True)
            else:
                self.fail(c, "connection")
            return
        c.buf += data
        buf = c.buf
        if c.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.parse_head(c, end):
                return
        if c.chunked:
            try:
                body = _chunked_body(buf, c.head_end)
            except ValueError:  # a chunk size that is not hex: the server's fault, counted, the load goes on
                self.fail(c, "protocol")
                return
            if body is not None:
                self.complete(c, body, done)
        elif c.length >= 0 and len(buf) - c.head_end >= c.length:
            self.complete(c, bytes(buf[c.head_end : c.head_end + c.length]), done)

    def parse_head(self, c: _Conn, end: int) -> bool:
        head = bytes(c.buf[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            self.fail(c, "protocol")
            return False
        c.status = int(parts[1])
        c.head_end = end + 4
        c.length, c.chunked, c.ctype = -1, False, ""
        c.close_after = parts[0] == "HTTP/1.0"
        for line in head[1:]:
            name, _colon, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                if not value.strip().isdigit():  # "12, 12", "-1", "": the server's fault, counted as such
                    self.fail(c, "protocol")
                    return False
                c.length = int(value.strip())
            elif name == "transfer-encoding":
                c.chunked = "chunked" in value.lower()
            elif name == "content-type":
                c.ctype = value.strip()
            elif name == "connection":
                v = value.strip().lower()
                c.close_after = v == "close" or (c.close_after and v != "keep-alive")
        if c.status in (204, 304) or 100 <= c.status < 200:
            c.length = 0
        return True

    # -- outcomes
    def record(self, c: _Conn, kind: str | None, done: float | None = None) -> None:
        now = self.now() if done is None else done
        res = self.res
        res.latencies_ms.append((now - c.ref) * 1000.0)
        if res.mode == "open":
            res.uncorrected_ms.append((now - c.sent) * 1000.0)
        res.completed_at_s.append(now - self.t0)
        res.ok.append(kind is None)
        if kind is not None:
            res.failures[kind] = res.failures.get(kind, 0) + 1
        self.inflight -= 1
        self.last_done = now
        c.state = "idle"
        self.idle.append(c)

    def complete(self, c: _Conn, body: bytes, done: float, closing: bool = False) -> None:
        try:
            kind = self.request.validate(c.status, c.ctype, body)
        except Exception:  # a validator bug must not stop the load; the answer counts as bad
            kind = "bad_body"
        if closing or c.close_after:
            self.drop(c)
        else:
            self.sel.unregister(c.sock)
        self.record(c, kind, done)

    def fail(self, c: _Conn, kind: str) -> None:
        self.drop(c)
        self.record(c, kind)

    def drop(self, c: _Conn) -> None:
        if c.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def check_timeouts(self, now: float) -> None:
        for c in self.conns:
            if c.state != "idle" and now >= c.deadline:
                self.fail(c, "timeout")

    def poll(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            c = key.data
            if c.state == "idle":
                continue
            if mask & selectors.EVENT_WRITE and c.state in ("connecting", "sending"):
                self.on_writable(c)
            elif mask & selectors.EVENT_READ:
                self.on_readable(c)

    def progress(self, now: float, phase_end: float | None) -> None:
        if self.on_progress is None:
            return
        res = self.res
        self.on_progress(
            {
                "mode": res.mode,
                "elapsed_s": now - self.t0,
                "duration_s": res.duration_s,
                "requests": res.requests,
                "failed": res.failed,
                "rps": res.requests / (now - self.t0) if now > self.t0 else 0.0,
                "inflight": self.inflight,
            }
        )

    def close(self) -> None:
        for c in self.conns:
            self.drop(c)
        self.sel.close()


def _run(engine: _Engine, due: Callable[[float], float | None], stop_at: float | None) -> None:
    """Drive the loop: ``due(now)`` issues what is due and returns when the next is due (or None)."""
    last_check = last_progress = engine.now()
    while True:
        now = engine.now()
        nxt = due(now)
        if nxt is None and engine.inflight == 0:
            break
        wait = engine.CHECK_EVERY_S if nxt is None else min(max(nxt - now, 0.0), engine.CHECK_EVERY_S)
        if engine.inflight:
            engine.poll(wait)
        elif wait > 0:
            time.sleep(wait)
        now = engine.now()
        if now - last_check >= engine.CHECK_EVERY_S:
            engine.check_timeouts(now)
            last_check = now
        if now - last_progress >= 1.0:
            engine.progress(now, stop_at)
            last_progress = now
