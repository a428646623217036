"""Connection limits against a real sidecar process on 127.0.0.1: slow heads and bodies, huge heads,
idle floods. Normal requests are served during each attack. Traffic goes to 127.0.0.1 only, bounded
in connections and seconds."""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testbed.sidecar import Server, make_release

OCTET = {"Content-Type": "application/octet-stream"}
WINDOW = b"\0" * 3600


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, origin_dir: Path) -> Path:
    return make_release(
        tmp_path_factory.mktemp("limits") / "rel",
        origin_dir / "tcn_encoder_for_edgeinfer.onnx",
        origin_dir / "model_config.json",
        golden_windows=2,
    )


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Client sockets of a test, closed at its end; the soft fd limit raised for the idle flood."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    opened: list[socket.socket] = []
    yield opened
    for s in opened:
        s.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def connect(server: Server, opened: list[socket.socket], n: int, first_bytes: bytes = b"") -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port_of(server)), timeout=5)
        opened.append(s)
        if first_bytes:
            s.sendall(first_bytes)
        out.append(s)
    return out


def server_sockets(server: Server) -> int:
    """Sockets the server process holds (its listening socket included)."""
    fds = Path(f"/proc/{server.proc.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def rss_mib(server: Server) -> float:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def closed_at(conns: list[socket.socket], t0: float, timeout: float, tick=None) -> dict[int, tuple[float, bytes]]:
    """Wait until the server closed each connection: {index: (seconds after t0, what it sent first)}."""
    sel = selectors.DefaultSelector()
    got: dict[int, bytearray] = {}
    for i, c in enumerate(conns):
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ, i)
        got[i] = bytearray()
    done: dict[int, tuple[float, bytes]] = {}
    while len(done) < len(conns) and time.monotonic() - t0 < timeout:
        for key, _ in sel.select(0.05):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                got[key.data] += data
                continue
            done[key.data] = (time.monotonic() - t0, bytes(got[key.data][:120]))
            sel.unregister(key.fileobj)
        if tick is not None:
            tick(done)
    sel.close()
    return done


def served(server: Server) -> float:
    """One normal binary /encode on a new connection; its latency in seconds."""
    t0 = time.monotonic()
    r = requests.post(server.url + "/encode", data=WINDOW, headers=OCTET, timeout=10)
    assert r.status_code == 200, r.text
    return time.monotonic() - t0


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + " ", name + "{")))


def test_slow_request_heads_are_closed_at_the_header_timeout_while_requests_are_served(sidecar, release, sockets):
    s = sidecar(release, env={"EDGEINFER_HEADER_TIMEOUT_S": "1", "EDGEINFER_MAX_CONNECTIONS": "1000"})
    t0 = time.monotonic()
    slow = connect(s, sockets, 200, b"POST /encode HTTP/1.1\r\nHost: x\r\n")
    latencies: list[float] = []
    last = [time.monotonic()]

    def trickle(done: dict[int, tuple[float, bytes]]) -> None:
        # slowloris: one more header line every 0.3 s on every open connection, and a normal request
        if time.monotonic() - last[0] < 0.3:
            return
        last[0] = time.monotonic()
        for i, c in enumerate(slow):
            if i not in done:
                with contextlib.suppress(OSError):
                    c.send(b"X-Slow: 1\r\n")
        latencies.append(served(s))

    done = closed_at(slow, t0, timeout=6, tick=trickle)
    assert len(done) == 200, f"{200 - len(done)} slow connections still open after 6 s"
    times = sorted(t for t, _ in done.values())
    assert times[0] >= 0.9, times[:5]  # not before the timeout
    assert times[-1] <= 2.5, times[-5:]  # the timeout, plus the sweep (0.25 s) and a loaded machine
    assert all(first.startswith(b"HTTP/1.1 408 ") for _, first in done.values())
    assert latencies and max(latencies) < 2, latencies
    m = s.get("/metrics").text
    assert _metric(m, 'edgeinfer_connections_closed_total{reason="header_timeout"}') == 200
    assert s.alive()


def test_an_idle_connection_is_closed_at_the_header_timeout_and_keep_alive_at_its_own(sidecar, release, sockets):
    s = sidecar(release, env={"EDGEINFER_HEADER_TIMEOUT_S": "1", "EDGEINFER_KEEPALIVE_TIMEOUT_S": "2"})
    t0 = time.monotonic()
    idle = connect(s, sockets, 1)
    kept = connect(s, sockets, 1, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    done = closed_at(idle + kept, t0, timeout=5)
    assert 0.9 <= done[0][0] <= 2.5 and done[0][1] == b"", done  # nothing asked, nothing answered
    assert 1.9 <= done[1][0] <= 3.5 and done[1][1].startswith(b"HTTP/1.1 200 "), done


def test_a_slow_request_body_is_closed_at_the_body_timeout_while_requests_are_served(sidecar, release, sockets):
    s = sidecar(release, env={"EDGEINFER_BODY_TIMEOUT_S": "1"})
    t0 = time.monotonic()
    head = b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 3600\r\n\r\n"
    slow = connect(s, sockets, 20, head + b"\0" * 100)
    latencies = [served(s)]
    done = closed_at(slow, t0, timeout=5, tick=lambda d: None)
    latencies.append(served(s))
    assert len(done) == 20
    assert all(0.9 <= t <= 2.5 for t, _ in done.values()), sorted(done.values())
    assert max(latencies) < 2
    m = s.get("/metrics").text
    assert _metric(m, 'edgeinfer_connections_closed_total{reason="body_timeout"}') == 20
    assert _metric(m, 'edgeinfer_requests_total{route="/encode",status="408"}') == 20  # the endpoint saw it
    assert _metric(m, 'edgeinfer_requests_total{route="/encode",status="500"}') == 0


def test_a_huge_header_gets_431_and_the_server_memory_stays_flat(sidecar, release, sockets):
    s = sidecar(release)
    served(s)
    before = rss_mib(s)
    (c,) = connect(s, sockets, 1, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    try:
        for _ in range(512):  # 32 MiB, one header value
            c.sendall(b"a" * 65536)
            sent += 65536
    except OSError:
        pass  # the server closed the connection: its kernel resets what it did not read
    c.settimeout(5)
    try:
        answer = c.recv(4096)
    except OSError:
        answer = b""
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:100]
    assert sent < 32 * 2**20  # refused long before the end
    served(s)
    assert rss_mib(s) - before < 8, (before, rss_mib(s))

    # a head over the limit that arrives in one read, with its body
    r = requests.post(s.url + "/encode", data=WINDOW, headers={**OCTET, "X-Big": "a" * 20000}, timeout=10)
    assert r.status_code == 431 and r.json()["error"] == "header_too_large", r.text
    exact = requests.post(s.url + "/encode", data=WINDOW, headers={**OCTET, "X-Big": "a" * 16000}, timeout=10)
    assert exact.status_code == 200, exact.text  # within 16384 bytes with the other header fields

    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(101))
    r = connect(s, sockets, 1, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert closed_at(r, time.monotonic(), timeout=5)[0][1].startswith(b"HTTP/1.1 431 ")
    ok = requests.get(s.url + "/healthz", headers={f"X-H{i}": "1" for i in range(90)}, timeout=10)
    assert ok.status_code == 200  # 90 and the 5 that requests adds are within the 100
    m = s.get("/metrics").text
    assert _metric(m, 'edgeinfer_connections_closed_total{reason="header_too_large"}') == 3


def test_an_idle_flood_is_capped_by_closing_the_oldest_idle_connections(sidecar, release, sockets):
    s = sidecar(release, env={"EDGEINFER_HEADER_TIMEOUT_S": "3"})  # EDGEINFER_MAX_CONNECTIONS: the default 128
    # A request in progress (its body half sent) is never closed for the cap.
    head = b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 3600\r\n\r\n"
    (busy,) = connect(s, sockets, 1, head + WINDOW[:1800])
    time.sleep(0.2)
    t0 = time.monotonic()
    idle = connect(s, sockets, 1000)
    time.sleep(0.5)
    assert server_sockets(s) <= 128 + 4, server_sockets(s)  # the cap, the listening socket and a few closing
    latencies = [served(s) for _ in range(5)]
    assert max(latencies) < 2, latencies
    busy.sendall(WINDOW[1800:])
    busy.settimeout(10)
    assert busy.recv(4096).startswith(b"HTTP/1.1 200 ")
    # The idle ones left within the cap are the newest, and are closed at the header timeout.
    done = closed_at(idle, t0, timeout=6)
    assert len(done) == 1000, f"{1000 - len(done)} idle connections still open"
    survivors = {i for i, (t, _) in done.items() if t >= 2}
    assert 100 <= len(survivors) <= 128 and survivors == set(range(1000 - len(survivors), 1000)), sorted(survivors)
    m = s.get("/metrics").text
    assert _metric(m, 'edgeinfer_connections_closed_total{reason="max_connections"}') >= 1000 - 128
    assert s.alive()


def test_a_connection_answered_before_its_body_ended_does_not_stay_open(sidecar, release, sockets):
    # uvicorn arms its keep-alive timer at the 413, and the body that still arrives cancels it.
    s = sidecar(release, env={"EDGEINFER_HEADER_TIMEOUT_S": "1", "EDGEINFER_KEEPALIVE_TIMEOUT_S": "1"})
    size = 4 * 2**20 + 3600
    head = b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
    (c,) = connect(s, sockets, 1, head % size)
    t0 = time.monotonic()
    c.settimeout(5)
    assert c.recv(4096).startswith(b"HTTP/1.1 413 ")
    c.sendall(b"\0" * size)
    done = closed_at([c], t0, timeout=5)
    assert done and done[0][0] <= 3, done


def test_head_on_a_kept_alive_connection_is_answered_at_once_and_in_order(sidecar, release, sockets):
    s = sidecar(release)
    (c,) = connect(s, sockets, 1, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    c.settimeout(3)  # the keep-alive wait is longer: an answer held back would not come in time
    head = c.recv(4096)
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), head
    # No body follows a HEAD answer: the next answer on the connection is the GET's, whole.
    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        chunk = c.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in got, got
