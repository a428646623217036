# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replay files: captured windows, little-endian float32, sent in turn instead of one window."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

from .contract import CHANNELS, WINDOW
from .requests import Request, embedding_ok, encode_request

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
    if len(data) > MAX_REPLAY_WINDOWS * WINDOW_BYTES:  # read one byte past the most a file may hold
        raise ValueError(f"replay file {path}: more than {MAX_REPLAY_WINDOWS} windows; expected at most that many")
    count, rest = divmod(len(data), WINDOW_BYTES)
    if rest or not count:
        raise ValueError(
            f"replay file {path}: expected a non-empty multiple of {WINDOW_BYTES} bytes "
            f"(little-endian float32 {WINDOW}x{CHANNELS} windows), got {len(data)} bytes"
        )
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
