"""model_tools capture sends the admin token to the sidecar it names, and nowhere else."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

import pytest

from model_tools.capture import CaptureError, fetch


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []
    location = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append(self.headers.get("Authorization"))
        if self.location:
            self.send_response(307)
            self.send_header("Location", self.location)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list]]:
    handler = type("Elsewhere", (_Recorder,), {"seen": [], "location": ""})
    with _serve(handler) as url:
        yield url, handler.seen


def test_a_redirect_is_not_followed_and_the_token_never_reaches_its_target(elsewhere, monkeypatch) -> None:
    target, seen_there = elsewhere
    monkeypatch.setenv("http_proxy", target)  # a proxy from the environment is not used either
    handler = type("Sidecar", (_Recorder,), {"seen": [], "location": target + "/admin/capture"})
    with _serve(handler) as url, pytest.raises(CaptureError, match="answered 307"):
        fetch(url, "s3cret", timeout_s=5)
    assert handler.seen == ["Bearer s3cret"]
    assert seen_there == []
