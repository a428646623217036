# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load engine behind ``edgeinfer_benchmark`` and ``edgeinfer-validate``.

Standard library only: this file ships to edge hosts whose Python has neither
numpy nor requests. The Ansible module imports it through
``ansible_collections.edgeinfer.deploy.plugins.module_utils._loadgen`` and the
CLI loads this very file, so the deploy gate and the operator's command can
never disagree about how a figure was measured.

How it measures
- One non-blocking HTTP/1.1 keep-alive connection per unit of concurrency,
  all driven by a single ``selectors`` event loop in the calling thread: no
  GIL hand-offs between timing threads, so a timestamp is taken as soon as
  the last byte of a response is read.
- ``closed_loop``: every connection sends its next request as soon as the
  previous response is in (the maximum throughput at that concurrency);
  a request's latency runs from its send to its last response byte.
- ``open_loop``: requests are due at a constant rate on a fixed schedule
  (``t0 + i / rate``), whatever the server does; a request's latency runs
  from its *intended* send time, so a stall also charges every request that
  had to wait for it (coordinated omission corrected, as wrk2 does). The
  latency from the actual send is kept too (``uncorrected``).
- Every request counts. A failed request (status, timeout, connection error,
  bad body) is counted by kind and its latency (time to failure, or to the
  timeout) stays in the percentiles.
- Percentiles are exact, by the nearest-rank method on the sorted samples:
  ``p`` is the smallest sample such that at least ``p`` percent of all
  samples are less than or equal to it. Every reported figure is a latency
  that some request actually had.

Pure parts (percentiles, cosine, health and embedding predicates, threshold
evaluation, Docker stats arithmetic) are plain functions so that tests can
parametrize them; waiting is driven by a ``clock(timeout, interval)``
generator that returns ``(ok, last_state, duration)``.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import math
import random
import selectors
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = [
    "DEFAULT_TARGETS",
    "LATENT_DIM",
    "LoadResult",
    "Request",
    "ResourceSampler",
    "Target",
    "Targets",
    "clock",
    "closed_loop",
    "cosine",
    "docker_cpu_percent",
    "docker_memory_bytes",
    "embedding_problem",
    "encode_request",
    "evaluate",
    "golden_replay",
    "health_problems",
    "http_get_json",
    "load_golden",
    "load_replay",
    "open_loop",
    "parse_docker_cli_stats",
    "percentile",
    "replay_requests",
    "summarize",
    "synthetic_window",
    "wait_for",
]

LATENT_DIM = 64
WINDOW = 100
CHANNELS = 9
PERCENTILE_CURVE = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0)
# The seed's z-score constants: only used to make a plausible raw window when
# no golden set is given (the sidecar normalizes with the release's own).
_SEED_MEAN = (0.12, -0.08, 9.78, 0.002, -0.001, 0.003, 22.4, -8.7, 43.2)
_SEED_STD = (3.92, 3.87, 2.45, 1.24, 1.31, 0.98, 28.5, 31.2, 24.8)


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty).

    The value at 1-based rank ``ceil(p / 100 * n)``; ``p = 0`` gives the
    minimum, ``p = 100`` the maximum.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile {p!r} is outside 0..100")
    rank = math.ceil(p / 100.0 * n)
    return float(sorted_values[min(max(rank, 1), n) - 1])


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """count, mean, min, p50, p90, p95, p99, p99.9 and max (ms) of any samples."""
    s = sorted(latencies_ms)
    n = len(s)
    out = {"count": n, "mean_ms": (math.fsum(s) / n) if n else math.nan, "min_ms": s[0] if n else math.nan}
    for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        out[f"{name}_ms"] = percentile(s, p)
    out["max_ms"] = s[-1] if n else math.nan
    return out


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in plain Python; a length mismatch, NaN or a zero vector gives -1 (a miss)."""
    if len(a) != len(b) or not a:
        return -1.0
    dot = math.fsum(a[i] * b[i] for i in range(len(a)))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if not (math.isfinite(dot) and math.isfinite(na) and math.isfinite(nb)) or na == 0 or nb == 0:
        return -1.0
    return dot / (na * nb)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def embedding_problem(values: Any, dim: int = LATENT_DIM) -> str | None:
    """Why ``values`` is not a usable embedding of ``dim`` finite numbers, or None."""
    if not isinstance(values, (list, tuple)):
        return f"expected a list of {dim} numbers, got {type(values).__name__}"
    if len(values) != dim:
        return f"expected {dim} values, got {len(values)}"
    for i, v in enumerate(values):
        if not _finite(v):
            return f"value [{i}] is {v!r}, not a finite number"
    if all(v == 0 for v in values):
        return "all values are zero"
    return None


def embedding_from_response(content_type: str, body: bytes, dim: int = LATENT_DIM) -> Any:
    """The embedding in an /encode answer (JSON ``latent_embedding`` or raw little-endian float32)."""
    if content_type.split(";")[0].strip().lower() == "application/octet-stream":
        if len(body) != 4 * dim:
            raise ValueError(f"expected {4 * dim} bytes of float32, got {len(body)}")
        return list(struct.unpack(f"<{dim}f", body))
    data = json.loads(body)
    if not isinstance(data, dict) or "latent_embedding" not in data:
        raise ValueError("the JSON answer has no latent_embedding")
    return data["latent_embedding"]


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    scheme: str = "http"

    @classmethod
    def parse(cls, url: str) -> Target:
        """``http://host:port`` (a path, if any, is ignored here: it belongs to the request)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ValueError(
                f"url {url!r}: only http:// is supported (the sidecar serves plain HTTP on loopback or LAN)"
            )
        if not parts.hostname:
            raise ValueError(f"url {url!r} has no host; expected e.g. http://127.0.0.1:9000")
        return cls(parts.hostname, parts.port or 80)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.netloc}{path}"


# (status, content_type, body) -> None when good, else a failure kind such as "bad_body".
Validator = Callable[[int, str, bytes], "str | None"]


def status_ok(status: int, content_type: str, body: bytes) -> str | None:
    return None if 200 <= status < 300 else f"status_{status}"


def embedding_ok(status: int, content_type: str, body: bytes) -> str | None:
    """A 2xx answer that carries 64 finite values."""
    if not 200 <= status < 300:
        return f"status_{status}"
    try:
        values = embedding_from_response(content_type, body)
    except (ValueError, UnicodeDecodeError):
        return "bad_body"
    return None if embedding_problem(values) is None else "bad_body"


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent again and again; ``validate`` judges each answer."""

    method: str = "GET"
    path: str = "/healthz"
    body: bytes = b""
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    validate: Validator = status_ok

    def wire(self, target: Target) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {target.netloc}", "User-Agent: edgeinfer-loadgen"]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
            if self.content_type:
                lines.append(f"Content-Type: {self.content_type}")
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def synthetic_window(seed: int = 7) -> list[list[float]]:
    """A deterministic 100x9 raw IMU window around the seed's channel means."""
    rng = random.Random(seed)
    return [
        [round(_SEED_MEAN[c] + _SEED_STD[c] * rng.gauss(0, 1), 4) for c in range(CHANNELS)] for _row in range(WINDOW)
    ]


def encode_request(
    window: Sequence[Sequence[float]] | None = None, binary: bool = False, path: str = "/encode"
) -> Request:
    """POST /encode with one raw window, as JSON or as 3600 bytes of little-endian float32."""
    window = window if window is not None else synthetic_window()
    if binary:
        flat = [float(v) for row in window for v in row]
        body = struct.pack(f"<{len(flat)}f", *flat)
        return Request(
            "POST",
            path,
            body,
            "application/octet-stream",
            (("Accept", "application/octet-stream"),),
            embedding_ok,
        )
    body = json.dumps({"imu_window": [list(r) for r in window]}, separators=(",", ":")).encode()
    return Request("POST", path, body, "application/json", (), embedding_ok)


WINDOW_BYTES = WINDOW * CHANNELS * 4
# A replay file holds at most this many windows (the sidecar's capture keeps at most 10,000).
MAX_REPLAY_WINDOWS = 100_000


def load_replay(path: str) -> bytes:
    """A replay file: windows in raw units, little-endian float32, 3600 bytes each, nothing else.

    The layout ``POST /encode`` takes and ``GET /admin/capture`` answers (``model_tools capture
    --replay`` writes it). ValueError names the file and what is wrong with it.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_REPLAY_WINDOWS * WINDOW_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"replay file {path}: {exc.strerror or exc}") from None
    count, rest = divmod(len(data), WINDOW_BYTES)
    if rest or not count:
        raise ValueError(
            f"replay file {path}: expected a non-empty multiple of {WINDOW_BYTES} bytes "
            f"(little-endian float32 {WINDOW}x{CHANNELS} windows), got {len(data)} bytes"
        )
    if count > MAX_REPLAY_WINDOWS:
        raise ValueError(f"replay file {path}: expected at most {MAX_REPLAY_WINDOWS} windows")
    for i in range(count):
        values = struct.unpack_from(f"<{WINDOW * CHANNELS}f", data, i * WINDOW_BYTES)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"replay file {path}: window {i} holds NaN or Infinity")
    return data


def replay_windows(data: bytes) -> Iterator[list[list[float]]]:
    """The windows of a replay file's bytes, one 100x9 list at a time."""
    per = WINDOW * CHANNELS
    for off in range(0, len(data), WINDOW_BYTES):
        flat = struct.unpack_from(f"<{per}f", data, off)
        yield [list(flat[r * CHANNELS : (r + 1) * CHANNELS]) for r in range(WINDOW)]


def replay_requests(data: bytes, binary: bool = False, path: str = "/encode") -> list[Request]:
    """One request per window of a replay file, in its order: binary bodies are the file's own bytes."""
    if binary:
        return [
            Request(
                "POST",
                path,
                data[off : off + WINDOW_BYTES],
                "application/octet-stream",
                (("Accept", "application/octet-stream"),),
                embedding_ok,
            )
            for off in range(0, len(data), WINDOW_BYTES)
        ]
    return [encode_request(w, binary=False, path=path) for w in replay_windows(data)]


# --------------------------------------------------------------------------- results


@dataclass
class LoadResult:
    """Every request of one load phase. Latencies are in ms and include failures."""

    mode: str
    concurrency: int
    rate: float | None
    duration_s: float
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    uncorrected_ms: list[float] = field(default_factory=list)
    completed_at_s: list[float] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    intended: int = 0
    connects: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def successes(self) -> int:
        return self.requests - self.failed

    @property
    def success_rate(self) -> float:
        return self.successes / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        """Completed requests (failures included) per second of the phase."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok_rps(self) -> float:
        return self.successes / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def timeline(self) -> list[dict[str, Any]]:
        """Per second of the phase: completions, failures, p50/p99/max of what completed then.

        ``seconds`` is how much of that second the phase covered. The last one is often
        ``partial`` (under 0.9 s covered): its figures are not a second's worth (fewer requests,
        and percentiles of the last stragglers), so plots draw it apart.
        """
        if not self.completed_at_s:
            return []
        nbins = int(max(self.completed_at_s)) + 1
        end = max(self.elapsed_s, *self.completed_at_s)
        lat: list[list[float]] = [[] for _bin in range(nbins)]
        bad = [0] * nbins
        for j, t in enumerate(self.completed_at_s):
            b = int(t)
            lat[b].append(self.latencies_ms[j])
            if not self.ok[j]:
                bad[b] += 1
        out = []
        for i in range(nbins):
            s = sorted(lat[i])
            covered = round(min(1.0, max(0.0, end - i)), 3)
            out.append(
                {
                    "t_s": i,
                    "seconds": covered,
                    "partial": covered < 0.9,
                    "requests": len(s),
                    "failures": bad[i],
                    "p50_ms": _r(percentile(s, 50)),
                    "p99_ms": _r(percentile(s, 99)),
                    "max_ms": _r(s[-1]) if s else None,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 4),
            "requests": self.requests,
            "successes": self.successes,
            "failed": self.failed,
            "failures": dict(sorted(self.failures.items())),
            "success_rate": round(self.success_rate, 6),
            "rps": round(self.rps, 2),
            "ok_rps": round(self.ok_rps, 2),
            "connects": self.connects,
        }
        out["latency"] = {k: _r(v) for k, v in summarize(self.latencies_ms).items()}
        s = sorted(self.latencies_ms)
        out["percentile_curve"] = [[p, _r(percentile(s, p))] for p in PERCENTILE_CURVE]
        if self.mode == "open":
            out["intended"] = self.intended
            out["uncorrected_latency"] = {k: _r(v) for k, v in summarize(self.uncorrected_ms).items()}
        out["timeline"] = self.timeline()
        return out


def _r(v: float) -> float | None:
    if isinstance(v, int):
        return v
    return None if v is None or not math.isfinite(v) else round(v, 4)


# --------------------------------------------------------------------------- the event loop


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
        if timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {timeout_s}")
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
            body = _chunked_body(buf, c.head_end)
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


def closed_loop(
    target: Target | str,
    request: Request | Sequence[Request],
    concurrency: int = 8,
    duration_s: float | None = None,
    max_requests: int | None = None,
    timeout_s: float = 5.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    now: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Maximum throughput at ``concurrency``: each connection sends again as soon as it has its answer.

    A sequence of requests (a replay) is sent in turn, from the first again after the last.

    Stops after ``duration_s`` (no new request is sent after it; those in flight
    finish or time out) or after ``max_requests`` were sent, whichever comes first.
    """
    if duration_s is None and max_requests is None:
        raise ValueError("closed_loop needs duration_s or max_requests (it must stop by itself)")
    target = Target.parse(target) if isinstance(target, str) else target
    res = LoadResult("closed", concurrency, None, float(duration_s or 0.0))
    eng = _Engine(target, request, concurrency, timeout_s, res, on_progress, now)
    try:
        eng.resolve()
        eng.preconnect()
        eng.idle = list(eng.conns)
        eng.t0 = now()
        stop_at = eng.t0 + duration_s if duration_s is not None else math.inf
        sent = 0

        def due(t: float) -> float | None:
            nonlocal sent
            # One pass over the connections idle now; one that fails at once (refused)
            # waits for the next pass, so a dead server cannot spin this loop forever.
            batch, eng.idle = eng.idle, []
            for c in batch:
                if t >= stop_at or (max_requests is not None and sent >= max_requests):
                    break
                eng.issue(c, None)
                sent += 1
            if t >= stop_at or (max_requests is not None and sent >= max_requests):
                eng.idle.clear()
                return None
            return t if eng.idle else t + eng.CHECK_EVERY_S

        _run(eng, due, stop_at)
        res.intended = sent
        res.elapsed_s = max(eng.last_done - eng.t0, 1e-9) if res.requests else 0.0
        eng.progress(now(), stop_at)
    finally:
        eng.close()
    return res


def open_loop(
    target: Target | str,
    request: Request | Sequence[Request],
    rate: float,
    duration_s: float,
    concurrency: int = 32,
    timeout_s: float = 5.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    now: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Constant-rate load: request ``i`` is due at ``t0 + i / rate`` whatever the server does.

    A sequence of requests (a replay) is sent in turn, from the first again after the last.

    Latency runs from the due time, so waiting for a free connection counts.
    ``concurrency`` bounds the requests in flight. Requests still waiting
    for a connection when the phase ends are counted as failures of kind
    ``unsent`` with their wait so far as latency: an overloaded server can
    never look better by making the load generator fall behind.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    target = Target.parse(target) if isinstance(target, str) else target
    res = LoadResult("open", concurrency, float(rate), float(duration_s))
    eng = _Engine(target, request, concurrency, timeout_s, res, on_progress, now)
    total = max(int(math.floor(rate * duration_s)), 1)
    interval = 1.0 / rate
    try:
        eng.resolve()
        eng.preconnect()
        eng.idle = list(eng.conns)
        eng.t0 = now()
        stop_at = eng.t0 + duration_s
        i = 0

        def due(t: float) -> float | None:
            nonlocal i
            while i < total:
                when = eng.t0 + i * interval
                if when > t:
                    return when
                if t >= stop_at + interval:
                    return None
                if not eng.idle:
                    return t + eng.CHECK_EVERY_S
                eng.issue(eng.idle.pop(), when)
                i += 1
            return None

        _run(eng, due, stop_at)
        end = now()
        res.intended = total
        for j in range(i, total):  # due but never sent: counted, with their wait so far
            when = eng.t0 + j * interval
            res.latencies_ms.append(max(end - when, 0.0) * 1000.0)
            res.uncorrected_ms.append(0.0)
            res.completed_at_s.append(end - eng.t0)
            res.ok.append(False)
            res.failures["unsent"] = res.failures.get("unsent", 0) + 1
        res.elapsed_s = max(max(eng.last_done, end if i < total else eng.last_done) - eng.t0, 1e-9)
        eng.progress(end, stop_at)
    finally:
        eng.close()
    return res


# --------------------------------------------------------------------------- single requests


def http_request(
    target: Target,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> tuple[int, str, bytes]:
    """One request on a fresh connection: ``(status, content_type, body)``; OSError on failure."""
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    except http.client.HTTPException as exc:
        raise OSError(f"bad HTTP answer: {exc}") from exc
    finally:
        conn.close()


def http_get_json(target: Target, path: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    """``(status, parsed JSON or None)``; OSError when nothing answered."""
    status, _ctype, body = http_request(target, "GET", path, timeout_s=timeout_s)
    try:
        return status, json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return status, None


# --------------------------------------------------------------------------- waiting and health


def clock(
    timeout: float,
    interval: float,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[float]:
    """Yield the elapsed time, then sleep ``interval``, until ``timeout`` has passed (yields at least once)."""
    start = now()
    while True:
        elapsed = now() - start
        yield elapsed
        if elapsed + interval > timeout:
            return
        sleep(interval)


def wait_for(
    probe: Callable[[], Any],
    predicate: Callable[[Any], bool],
    timeout: float,
    interval: float = 1.0,
    ticks: Iterator[float] | None = None,
) -> tuple[bool, Any, float]:
    """Probe until ``predicate(state)`` holds: ``(ok, last_state, duration)``."""
    last, elapsed = None, 0.0
    for elapsed in ticks if ticks is not None else clock(timeout, interval):
        last = probe()
        if predicate(last):
            return True, last, elapsed
    return False, last, elapsed


def health_problems(status: int | None, body: Any, expect: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with a /healthz answer; empty when it is healthy and serves the expected model.

    ``expect`` maps a /healthz key (model_version, model_sha256,
    normalization_hash, backend, ...) to the value it must have; None values
    are not checked.
    """
    if status is None:
        return ["/healthz did not answer"]
    problems = []
    if status != 200:
        reason = body.get("reason") if isinstance(body, dict) else None
        problems.append(f"/healthz answered {status}" + (f" ({reason})" if reason else ""))
    if not isinstance(body, dict):
        problems.append("/healthz did not answer a JSON object")
        return problems
    for key, want in (expect or {}).items():
        if want is None or want == "":
            continue
        got = body.get(key)
        if key == "model_sha256" and isinstance(got, str) and isinstance(want, str):
            if not got.startswith(want.lower()) or len(want) < 8:
                problems.append(f"model_sha256 is {got}, expected {want}")
        elif key == "normalization_hash" and isinstance(got, str) and isinstance(want, str):
            if not (got.startswith(want) or want.startswith(got)):
                problems.append(f"normalization_hash is {got}, expected {want} (the golden set is for another model)")
        elif got != want:
            problems.append(f"{key} is {got!r}, expected {want!r}")
    return problems


def check_health(
    target: Target, expect: Mapping[str, Any] | None, wait_s: float = 0.0, timeout_s: float = 5.0
) -> dict[str, Any]:
    """Probe /healthz (waiting up to ``wait_s`` for it to be healthy); a dict with ok, problems, body."""

    def probe() -> tuple[int | None, Any, str]:
        try:
            status, body = http_get_json(target, "/healthz", timeout_s)
            return status, body, ""
        except OSError as exc:
            return None, None, str(exc)

    ok, last, duration = wait_for(probe, lambda s: not health_problems(s[0], s[1], expect), wait_s, 1.0)
    status, body, error = last
    problems = health_problems(status, body, expect)
    if error:
        problems = [f"/healthz on {target.netloc} did not answer: {error}"]
    return {"ok": ok, "status": status, "problems": problems, "body": body, "waited_s": round(duration, 3)}


# --------------------------------------------------------------------------- output quality


def load_golden(path: str) -> dict[str, Any]:
    """A release's golden.json (raw-unit windows and reference embeddings), checked enough to replay."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"golden set {path} does not exist") from None
    except ValueError as exc:
        raise ValueError(f"golden set {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"golden set {path}: expected a JSON object with windows and embeddings")
    if data.get("input_units", "raw") != "raw":
        raise ValueError(f"golden set {path}: input_units is {data.get('input_units')!r}; /encode takes raw units")
    windows, embs = data.get("windows"), data.get("embeddings")
    if not isinstance(windows, list) or not windows or not isinstance(embs, list) or len(embs) != len(windows):
        raise ValueError(f"golden set {path}: expected non-empty windows and one embedding per window")
    for i, w in enumerate(windows):
        if not isinstance(w, list) or len(w) != WINDOW or any(not isinstance(r, list) or len(r) != CHANNELS for r in w):
            raise ValueError(f"golden set {path}: windows[{i}] is not {WINDOW}x{CHANNELS} numbers")
    return data


# What a sidecar's error code means, where a gate's message should say it in words.
ERROR_WORDS = {"non_finite_output": "the model returned NaN or Infinity (non-finite output)"}


def error_code_of(body: bytes) -> str:
    """' <code>: <words>' for a sidecar's JSON error body ({"error": code, ...}), else ''."""
    try:
        code = json.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    if not isinstance(code, str):
        return ""
    words = ERROR_WORDS.get(code)
    return f" {code}: {words}" if words else f" {code}"


def golden_replay(
    target: Target,
    windows: Sequence[Any],
    embeddings: Sequence[Sequence[float]],
    min_cosine: float,
    path: str = "/encode",
    timeout_s: float = 5.0,
    binary: bool = False,
) -> dict[str, Any]:
    """Send each golden window once; cosine of each answer against its reference embedding."""
    cosines: list[float] = []
    drifts: list[float] = []
    problems: list[str] = []
    for i, w in enumerate(windows):
        ref = embeddings[i]
        req = encode_request(w, binary=binary, path=path)
        try:
            status, ctype, body = http_request(
                target, "POST", path, req.body, {"Content-Type": req.content_type, **dict(req.headers)}, timeout_s
            )
        except OSError as exc:
            problems.append(f"window {i}: no answer ({exc})")
            cosines.append(-1.0)
            continue
        if status != 200:
            problems.append(f"window {i}: /encode answered {status}{error_code_of(body)}")
            cosines.append(-1.0)
            continue
        try:
            emb = embedding_from_response(ctype, body)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"window {i}: {exc}")
            cosines.append(-1.0)
            continue
        bad = embedding_problem(emb)
        if bad:
            problems.append(f"window {i}: {bad}")
            cosines.append(-1.0)
            continue
        c = cosine(emb, ref)
        cosines.append(c)
        ref_norm = math.sqrt(math.fsum(x * x for x in ref))
        if ref_norm > 0:
            drifts.append(abs(math.sqrt(math.fsum(x * x for x in emb)) - ref_norm) / ref_norm)
        if c < min_cosine:
            problems.append(f"window {i}: cosine {c:.6f} < {min_cosine}")
    n = len(cosines)
    return {
        "windows": n,
        "min_cosine": round(min(cosines), 6) if n else None,
        "mean_cosine": round(math.fsum(cosines) / n, 6) if n else None,
        "below_min": sum(1 for c in cosines if c < min_cosine),
        "max_norm_drift": round(max(drifts), 6) if drifts else None,
        "threshold": min_cosine,
        "problems": problems[:20],
        "ok": n > 0 and not problems,
    }


def probe_embedding(target: Target, request: Request, timeout_s: float = 5.0) -> dict[str, Any]:
    """One /encode answer: does it carry 64 finite numbers?"""
    try:
        status, ctype, body = http_request(
            target,
            request.method,
            request.path,
            request.body,
            {"Content-Type": request.content_type, **dict(request.headers)},
            timeout_s,
        )
    except OSError as exc:
        return {"ok": False, "problem": f"{request.path} did not answer: {exc}"}
    if status != 200:
        return {"ok": False, "problem": f"{request.path} answered {status}: {body[:200]!r}"}
    try:
        emb = embedding_from_response(ctype, body)
    except (ValueError, UnicodeDecodeError) as exc:
        return {"ok": False, "problem": f"{request.path}: {exc}"}
    bad = embedding_problem(emb)
    meta: dict[str, Any] = {}
    if ctype.startswith("application/json"):
        data = json.loads(body)
        meta = {k: data.get(k) for k in ("model_version", "backend", "inference_ms") if k in data}
    return {"ok": bad is None, "problem": bad, "dim": len(emb) if isinstance(emb, list) else None, **meta}


# --------------------------------------------------------------------------- memory and CPU


def docker_memory_bytes(stats: Mapping[str, Any]) -> int | None:
    """Memory in use as ``docker stats`` shows it: usage less the inactive page cache."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if not isinstance(usage, int):
        return None
    inner = mem.get("stats") or {}
    for key in ("inactive_file", "total_inactive_file"):  # cgroup v2, then v1
        v = inner.get(key)
        if isinstance(v, int) and v < usage:
            return usage - v
    cache = inner.get("cache")
    if isinstance(cache, int) and cache < usage:
        return usage - cache
    return usage


def docker_cpu_percent(prev: Mapping[str, Any] | None, cur: Mapping[str, Any]) -> float | None:
    """CPU use between two stats samples, in percent of one core (so 4 busy cores = 400)."""
    if not prev:
        return None
    try:
        cpu = cur["cpu_stats"]["cpu_usage"]["total_usage"] - prev["cpu_stats"]["cpu_usage"]["total_usage"]
        sys_d = cur["cpu_stats"]["system_cpu_usage"] - prev["cpu_stats"]["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    ncpu = cur["cpu_stats"].get("online_cpus") or len(cur["cpu_stats"]["cpu_usage"].get("percpu_usage") or []) or 1
    if sys_d <= 0 or cpu < 0:
        return None
    return cpu / sys_d * ncpu * 100.0


_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _size(text: str) -> float:
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num) :] or "b"
    if unit not in _UNITS:
        raise ValueError(f"unknown size unit in {text!r}")
    return float(num) * _UNITS[unit]


def parse_docker_cli_stats(line: str) -> tuple[int | None, float | None]:
    """``(memory bytes, cpu percent)`` from one ``docker stats --no-stream --format '{{json .}}'`` line."""
    data = json.loads(line)
    mem = cpu = None
    usage = str(data.get("MemUsage", "")).split("/", maxsplit=1)[0]
    if usage.strip():
        mem = int(_size(usage))
    perc = str(data.get("CPUPerc", "")).strip().rstrip("%")
    if perc and perc != "--":
        cpu = float(perc)
    return mem, cpu


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class DockerSocket:
    """The few Docker Engine API calls the benchmark needs, over the local unix socket."""

    def __init__(self, path: str = "/var/run/docker.sock", timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def get(self, url: str) -> Any:
        conn = _UnixHTTPConnection(self.path, self.timeout)
        try:
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise OSError(f"Docker API GET {url} answered {resp.status}: {body[:200]!r}")
        return json.loads(body)

    def find(self, name: str | None = None, service: str | None = None, project: str | None = None) -> str:
        """The id of the running container named ``name``, or of the compose ``service`` (in ``project``)."""
        if name:
            return self.get(f"/containers/{quote(name, safe='')}/json")["Id"]
        labels = [f"com.docker.compose.service={service or 'edgeinfer-sidecar'}"]
        if project:
            labels.append(f"com.docker.compose.project={project}")
        filters = quote(json.dumps({"label": labels, "status": ["running"]}), safe="")
        found = self.get(f"/containers/json?filters={filters}")
        if not found:
            raise OSError(f"no running container with labels {', '.join(labels)}")
        if len(found) > 1:
            names = ", ".join(n for c in found for n in c.get("Names", []))
            raise OSError(f"{len(found)} containers match {', '.join(labels)} ({names}); give the compose project")
        return found[0]["Id"]

    def stats(self, container_id: str) -> dict[str, Any]:
        return self.get(f"/containers/{container_id}/stats?stream=false&one-shot=true")


def socket_sampler(
    container: str | None, service: str | None, project: str | None, path: str = "/var/run/docker.sock"
) -> Callable[[], tuple[int | None, float | None]]:
    """A ``sample()`` reading the local Docker socket; raises OSError when the container can't be found."""
    api = DockerSocket(path)
    cid = api.find(container, service, project)
    prev: dict[str, Any] = {}

    def sample() -> tuple[int | None, float | None]:
        cur = api.stats(cid)
        cpu = docker_cpu_percent(prev.get("s"), cur)
        prev["s"] = cur
        return docker_memory_bytes(cur), cpu

    sample()  # the first CPU figure needs a previous sample
    return sample


def ssh_sampler(
    ssh_host: str, container: str, ssh_args: Sequence[str] = ()
) -> Callable[[], tuple[int | None, float | None]]:
    """A ``sample()`` running ``docker stats`` on a remote edge over SSH."""
    cmd = [
        "ssh",
        "-o",
        "BatchMode=yes",
        *ssh_args,
        ssh_host,
        "docker",
        "stats",
        "--no-stream",
        "--format",
        "'{{json .}}'",
        container,
    ]

    def sample() -> tuple[int | None, float | None]:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise OSError(f"{' '.join(cmd)} failed (rc {proc.returncode}): {proc.stderr.strip()[:300]}")
        return parse_docker_cli_stats(proc.stdout.strip().splitlines()[-1])

    sample()
    return sample


class ResourceSampler:
    """Samples a container's memory and CPU in a background thread while the load runs."""

    def __init__(
        self, sample: Callable[[], tuple[int | None, float | None]] | None, interval_s: float = 1.0, reason: str = ""
    ) -> None:
        self._sample = sample
        self.interval = interval_s
        self.reason = reason if sample is None else ""
        self.mem: list[int] = []
        self.cpu: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(self.interval)

    def take(self) -> None:
        if self._sample is None:
            return
        try:
            mem, cpu = self._sample()
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            self.errors.append(str(exc))
            return
        if mem is not None:
            self.mem.append(mem)
        if cpu is not None:
            self.cpu.append(cpu)

    def __enter__(self) -> ResourceSampler:
        if self._sample is not None:
            self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.take()

    def summary(self) -> dict[str, Any]:
        mb = [m / 2**20 for m in self.mem]
        measured = bool(mb)
        reason = self.reason or (self.errors[-1] if self.errors and not measured else "")
        return {
            "measured": measured,
            "reason": reason if not measured else "",
            "samples": len(mb),
            "memory_peak_mb": round(max(mb), 2) if mb else None,
            "memory_mean_mb": round(math.fsum(mb) / len(mb), 2) if mb else None,
            "cpu_peak_pct": round(max(self.cpu), 2) if self.cpu else None,
            "cpu_mean_pct": round(math.fsum(self.cpu) / len(self.cpu), 2) if self.cpu else None,
            "errors": self.errors[-3:],
        }


# --------------------------------------------------------------------------- targets and checks


@dataclass(frozen=True)
class Targets:
    """Pass/fail thresholds; the defaults are the seed guide's."""

    p95_ms: float = 50.0
    min_rps: float = 250.0
    min_success_rate: float = 0.99
    max_memory_mb: float | None = 512.0
    min_cosine: float = 0.99


DEFAULT_TARGETS = Targets()
CHECKS = ("health", "latency", "throughput", "success", "quality", "memory")


def evaluate(figures: Mapping[str, Any], targets: Targets) -> list[dict[str, Any]]:
    """One entry per check: name, status (passed, failed, skipped, not_run), value, target, detail.

    ``figures`` holds what was measured: ``health`` (check_health),
    ``latency_p95_ms``, ``throughput_rps``, ``success_rate``, ``quality``
    (dict with ok and problems), ``memory`` (ResourceSampler.summary() or
    None when skipped on purpose). A figure that is missing means the
    phase did not run; a memory that was not measured fails unless the
    memory target is off (``max_memory_mb`` None).
    """
    out: list[dict[str, Any]] = []

    def add(name: str, status: str, value: Any, target: Any, detail: str) -> None:
        out.append(
            {
                "name": name,
                "status": status,
                "passed": status in ("passed", "skipped"),
                "value": value,
                "target": target,
                "detail": detail,
            }
        )

    h = figures.get("health")
    if h is None:
        add("health", "not_run", None, "200 + expected model", "not probed")
    else:
        add(
            "health",
            "passed" if h["ok"] else "failed",
            h.get("status"),
            "200 + expected model",
            "; ".join(h["problems"]) or "healthy",
        )

    p95 = figures.get("latency_p95_ms")
    if p95 is None:
        add("latency", "not_run", None, targets.p95_ms, "no latency phase ran")
    else:
        ok = math.isfinite(p95) and p95 < targets.p95_ms
        add(
            "latency",
            "passed" if ok else "failed",
            p95,
            targets.p95_ms,
            f"p95 {p95:.2f} ms {'<' if ok else '>='} {targets.p95_ms} ms (all requests, failures included)",
        )

    rps = figures.get("throughput_rps")
    if rps is None:
        add("throughput", "not_run", None, targets.min_rps, "no throughput phase ran")
    else:
        ok = rps > targets.min_rps
        add(
            "throughput",
            "passed" if ok else "failed",
            rps,
            targets.min_rps,
            f"{rps:.1f} successful req/s {'>' if ok else '<='} {targets.min_rps}",
        )

    sr = figures.get("success_rate")
    if sr is None:
        add("success", "not_run", None, targets.min_success_rate, "no load ran")
    else:
        ok = sr > targets.min_success_rate
        add(
            "success",
            "passed" if ok else "failed",
            sr,
            targets.min_success_rate,
            f"{sr * 100:.3f} % {'>' if ok else '<='} {targets.min_success_rate * 100:g} %",
        )

    q = figures.get("quality")
    if q is None:
        add("quality", "not_run", None, targets.min_cosine, "no /encode answer was checked")
    else:
        add(
            "quality",
            "passed" if q["ok"] else "failed",
            q.get("min_cosine"),
            targets.min_cosine,
            "; ".join(q.get("problems") or []) or q.get("detail", "64 finite values"),
        )

    m = figures.get("memory")
    if targets.max_memory_mb is None:
        add("memory", "skipped", m.get("memory_peak_mb") if m else None, None, "memory target off")
    elif m is None:
        add("memory", "not_run", None, targets.max_memory_mb, "no load ran")
    elif not m["measured"]:
        add(
            "memory",
            "failed",
            None,
            targets.max_memory_mb,
            f"memory not measured ({m['reason'] or 'no sample'}); name the container or turn the memory target off",
        )
    else:
        peak = m["memory_peak_mb"]
        ok = peak < targets.max_memory_mb
        add(
            "memory",
            "passed" if ok else "failed",
            peak,
            targets.max_memory_mb,
            f"peak {peak:.1f} MiB {'<' if ok else '>='} {targets.max_memory_mb} MiB over {m['samples']} samples",
        )
    return out


# --------------------------------------------------------------------------- the whole benchmark


@dataclass
class Plan:
    """What one validation run does; the CLI and the Ansible module fill it from their options."""

    target: Target
    path: str = "/encode"
    binary: bool = False
    concurrency: int = 16
    duration_s: float = 15.0
    warmup_s: float = 3.0
    rate: float = 250.0  # 0: no open-loop phase (latency then comes from the closed loop)
    open_concurrency: int = 64
    timeout_s: float = 5.0
    wait_s: float = 0.0
    expect: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] | None = None
    golden_limit: int | None = None
    replay: bytes | None = None  # load_replay's windows, sent in turn instead of the one synthetic window


def run_benchmark(
    plan: Plan,
    targets: Targets,
    sampler: ResourceSampler,
    say: Callable[[str], None] = lambda _m: None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    end_phase: Callable[[], None] = lambda: None,
) -> tuple[dict[str, Any], dict[str, LoadResult]]:
    """Health, quality, warm-up, closed loop, open loop, resources; then the checks.

    Returns the report (plain JSON-able data: figures, ``checks``, ``passed``,
    ``failed_checks``) and the raw phases (for plots). When health fails the
    load phases do not run and their checks are ``not_run``.
    """
    target = plan.target
    figures: dict[str, Any] = {}
    phases: dict[str, LoadResult] = {}
    report: dict[str, Any] = {"target": target.url(), "targets": dict(targets.__dict__)}
    expect = dict(plan.expect)
    golden = plan.golden
    if golden and golden.get("normalization_hash") and not expect.get("normalization_hash"):
        expect["normalization_hash"] = golden["normalization_hash"]
    say(f"health: GET {target.url('/healthz')}")
    health = check_health(target, expect, wait_s=plan.wait_s, timeout_s=plan.timeout_s)
    figures["health"] = health
    body = health["body"] if isinstance(health["body"], dict) else {}
    report["health"] = {k: health[k] for k in ("ok", "status", "problems", "waited_s")}
    report["health"]["model"] = {
        k: body.get(k) for k in ("model_version", "model_sha256", "backend", "normalization_hash", "embedding_stamp")
    }
    if health["ok"]:
        load: Request | list[Request]
        if plan.replay:
            load = replay_requests(plan.replay, plan.binary, plan.path)
            request = load[0]
            report["load_windows"] = {"source": "replay", "windows": len(load)}
        else:
            request = encode_request(golden["windows"][0] if golden else None, binary=plan.binary, path=plan.path)
            load = request
            report["load_windows"] = {"source": "golden" if golden else "synthetic", "windows": 1}
        say(f"load: {report['load_windows']['windows']} {report['load_windows']['source']} window(s)")
        probe = probe_embedding(target, request, plan.timeout_s)
        quality: dict[str, Any] = {
            "ok": probe["ok"],
            "probe": probe,
            "problems": [] if probe["ok"] else [probe["problem"]],
        }
        quality["min_cosine"] = None
        if golden:
            n = min(plan.golden_limit or len(golden["windows"]), len(golden["windows"]))
            say(f"quality: replaying {n} golden windows")
            rep = golden_replay(
                target,
                golden["windows"][:n],
                golden["embeddings"][:n],
                targets.min_cosine,
                plan.path,
                plan.timeout_s,
                plan.binary,
            )
            quality.update(golden=rep, min_cosine=rep["min_cosine"], ok=quality["ok"] and rep["ok"])
            quality["problems"] += rep["problems"]
        else:
            quality["detail"] = "64 finite values (no golden set given: cosine not checked)"
        figures["quality"] = quality
        report["quality"] = quality
        with sampler:
            if plan.warmup_s > 0:
                say(f"warm-up: {plan.warmup_s:g} s at concurrency {plan.concurrency} (not recorded)")
                w = closed_loop(target, load, plan.concurrency, duration_s=plan.warmup_s, timeout_s=plan.timeout_s)
                report["warmup"] = {"requests": w.requests, "failed": w.failed}
            say(f"closed loop: {plan.duration_s:g} s at concurrency {plan.concurrency}")
            phases["closed"] = closed_loop(
                target,
                load,
                plan.concurrency,
                duration_s=plan.duration_s,
                timeout_s=plan.timeout_s,
                on_progress=on_progress,
            )
            end_phase()
            if plan.rate > 0:
                say(f"open loop: {plan.duration_s:g} s at {plan.rate:g} req/s")
                phases["open"] = open_loop(
                    target,
                    load,
                    plan.rate,
                    plan.duration_s,
                    plan.open_concurrency,
                    plan.timeout_s,
                    on_progress=on_progress,
                )
                end_phase()
        figures["memory"] = report["resources"] = sampler.summary()
        closed = phases["closed"]
        latency_phase = phases.get("open", closed)
        figures["latency_p95_ms"] = summarize(latency_phase.latencies_ms)["p95_ms"]
        figures["throughput_rps"] = closed.ok_rps
        total = sum(p.requests for p in phases.values())
        figures["success_rate"] = sum(p.successes for p in phases.values()) / total if total else 0.0
        report["latency_from"] = latency_phase.mode
        report["phases"] = {k: v.to_dict() for k, v in phases.items()}
        report["latency_p95_ms"] = _r(figures["latency_p95_ms"])
        report["throughput_rps"] = round(figures["throughput_rps"], 2)
        report["success_rate"] = round(figures["success_rate"], 6)
        report["memory_peak_mb"] = figures["memory"]["memory_peak_mb"]
    checks = evaluate(figures, targets)
    report["checks"] = checks
    report["failed_checks"] = [c["name"] for c in checks if c["status"] == "failed"]
    report["passed"] = all(c["status"] in ("passed", "skipped") for c in checks)
    return report, phases
