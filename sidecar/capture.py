"""Capture of real traffic: a bounded, uniform sample of the windows the serving model answered.

Off unless EDGEINFER_CAPTURE_WINDOWS is above 0. The sample is a reservoir (Vitter's
Algorithm R): after n windows were seen, each of them is in the reservoir with the same
probability k/n, whatever the traffic's order, and the memory is k windows (3,600 bytes each),
allocated on the first window. Windows are kept in memory only, never written to a file by
the sidecar (a restart loses them), and are read with the admin token (``GET /admin/capture``).

The windows are kept in raw sensor units and in the channel order of the model that first
answered one (``channel_order``): the same little-endian float32 layout ``POST /encode`` takes,
so a capture can be sent back as it is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from edgeinfer_contract import CHANNELS, WINDOW

from .metrics import CaptureMetrics

WINDOW_BYTES = WINDOW * CHANNELS * 4


class Reservoir:
    """At most ``size`` windows, each of the ``seen`` so far kept with probability size/seen."""

    def __init__(self, size: int, metrics: CaptureMetrics, rng: random.Random | None = None) -> None:
        if size < 1:
            raise ValueError(f"a reservoir holds at least one window, not {size}")
        self.size = size
        self.metrics = metrics
        self.seen = 0
        self.kept = 0
        self.channel_order: tuple[str, ...] | None = None
        self._buf: np.ndarray | None = None
        self._rng = rng or random.Random()
        metrics.size.set(size)

    def offer(self, windows: np.ndarray, channel_order: Sequence[str]) -> None:
        """Algorithm R over each window of a request: [n, 100, 9] raw float32 in ``channel_order``.

        Runs on the event loop after the answer is made; a few microseconds a window (one draw,
        and a 3,600-byte copy for the windows kept).
        """
        order = tuple(channel_order)
        if self.channel_order is None:
            self.channel_order = order
        elif order != self.channel_order:  # a reload changed the model's order: keep the first one
            windows = windows[:, :, [order.index(c) for c in self.channel_order]]
        if self._buf is None:
            self._buf = np.empty((self.size, WINDOW, CHANNELS), np.float32)
        buf, size, rng = self._buf, self.size, self._rng
        for window in windows:
            self.seen += 1
            if self.kept < size:
                buf[self.kept] = window
                self.kept += 1
                continue
            slot = rng.randrange(self.seen)  # uniform in [0, seen): kept with probability size/seen
            if slot < size:
                buf[slot] = window
        self.metrics.seen.inc(windows.shape[0])
        self.metrics.kept.set(self.kept)

    def snapshot(self) -> bytes:
        """The windows kept, little-endian float32, 3,600 bytes each (a copy: the sample goes on)."""
        if self._buf is None or self.kept == 0:
            return b""
        return self._buf[: self.kept].astype("<f4", copy=False).tobytes()

    def clear(self) -> None:
        """Start a new sample; the memory stays allocated (its bound is the same)."""
        self.seen = self.kept = 0
        self.channel_order = None
        self.metrics.kept.set(0)
