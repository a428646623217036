"""Closing an ONNX Runtime backend hands the session's memory back to the system (glibc's malloc_trim)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from sidecar import backends


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_memory_trims_on_glibc() -> None:
    assert backends.release_free_memory() is True


def test_close_drops_the_session_then_releases_memory(origin_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = backends.OrtBackend(origin_onnx, 1)
    assert backend.run(np.zeros((2, 100, 9), np.float32)).shape == (2, 64)
    seen: list[object] = []
    # What matters is the order: a trim while the session is still referenced frees nothing of it.
    monkeypatch.setattr(backends, "release_free_memory", lambda: seen.append(backend.session))
    backend.close()
    assert seen == [None]
