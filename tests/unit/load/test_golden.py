"""The golden gate names a non-finite model output by name, not as a low cosine."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import edgeinfer_load as lg
from edgeinfer_validate.testserver import LATENT


class NonFinite(BaseHTTPRequestHandler):
    """Answers /encode as the sidecar does when its model returned NaN for the window."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": "non_finite_output", "detail": "model v9 returned NaN"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_error_code_of_names_the_sidecar_error() -> None:
    assert lg.error_code_of(b'{"error": "non_finite_output", "detail": "x"}').startswith(" non_finite_output: ")
    assert "NaN or Infinity" in lg.error_code_of(b'{"error": "non_finite_output"}')
    assert lg.error_code_of(b'{"error": "no_model"}') == " no_model"
    assert lg.error_code_of(b"not json") == ""
    assert lg.error_code_of(b'{"error": 3}') == ""


def test_golden_replay_names_non_finite_outputs() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NonFinite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        window = [[0.0] * 9 for _ in range(100)]
        out = lg.golden_replay(lg.Target("127.0.0.1", server.server_address[1]), [window] * 2, [[1.0] * 64] * 2, 0.999)
    finally:
        server.shutdown()
        server.server_close()
    assert out["ok"] is False and out["min_cosine"] == -1.0
    assert len(out["problems"]) == 2
    assert all("non_finite_output" in p and "NaN or Infinity" in p for p in out["problems"]), out["problems"]


@pytest.mark.parametrize("floor", [math.nan, -2.0, 1.5])
def test_golden_replay_fails_closed_on_a_floor_that_is_not_a_cosine(server, floor) -> None:
    """Every answer matches its reference (cosine 1), yet no floor outside [-1, 1] may pass: NaN compares false."""
    window = lg.synthetic_window()
    out = lg.golden_replay(server.target, [window] * 2, [LATENT] * 2, floor)
    assert out["min_cosine"] == pytest.approx(1.0)
    assert out["ok"] is False and "not a cosine floor" in out["problems"][0]
    if math.isnan(floor):
        assert out["below_min"] == 2


def test_golden_replay_fails_closed_on_a_nan_cosine(server, monkeypatch) -> None:
    monkeypatch.setattr("edgeinfer_load.golden.cosine", lambda _a, _b: math.nan)
    out = lg.golden_replay(server.target, [lg.synthetic_window()], [LATENT], 0.99)
    assert out["ok"] is False and out["below_min"] == 1 and out["min_cosine"] == -1.0
    assert any("cosine is NaN" in p for p in out["problems"]), out["problems"]
