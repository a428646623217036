"""Background traffic for deploy tests and benchmarks: a constant rate on one persistent connection."""

from __future__ import annotations

import http.client
import json
import threading
import time


class BackgroundLoad:
    """Open-loop load at a constant rate on one persistent connection; every failure counted.

    ``body``: one request body, or a list of them sent in turn (traffic of many distinct windows).
    """

    def __init__(self, port: int, rate: float, body: bytes | list[bytes]) -> None:
        self.port, self.interval = port, 1.0 / rate
        self.bodies = body if isinstance(body, list) else [body]
        self.sent = self.failed = 0
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        next_at = time.monotonic()
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            next_at += self.interval
            self.sent += 1
            t0 = time.perf_counter()
            try:
                body = self.bodies[self.sent % len(self.bodies)]
                conn.request("POST", "/encode", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    self.failed += 1
                    self.errors.append(f"{resp.status}: {data[:200]!r}")
                else:
                    self.versions.add(json.loads(data)["model_version"])
            except (OSError, http.client.HTTPException) as exc:
                self.failed += 1
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.latencies_ms.append((time.perf_counter() - t0) * 1000)
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def p99_ms(self) -> float:
        lat = sorted(self.latencies_ms)
        return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
