"""edgeinfer_load.engine: HTTP/1.1 framing the event loop decodes."""

from __future__ import annotations

import socket
import threading

import pytest

import edgeinfer_load as lg
from edgeinfer_load.engine import _chunked_body


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", b"Wikipedia"),
        (b"4\r\nWiki\r\n5\r\nped", None),
        (b"0\r\n\r\n", b""),
        (b"a;ext=1\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ],
)
def test_chunked_body(raw, body):
    assert _chunked_body(bytearray(b"HEAD" + raw), 4) == body


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunk-size"],
)
def test_a_malformed_answer_is_a_protocol_failure_and_the_load_goes_on(head: bytes) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(head)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        res = lg.closed_loop(lg.Target("127.0.0.1", port), lg.Request("GET", "/"), concurrency=1, max_requests=3)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert res.requests == 3 and res.failures == {"protocol": 3}, res.failures
