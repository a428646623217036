"""edgeinfer_load.replay: the replay file's layout, its refusals by name, and the requests made of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeinfer_load import replay

WINDOW_BYTES = replay.WINDOW_BYTES


def windows(n: int) -> np.ndarray:
    return np.arange(n * 900, dtype="<f4").reshape(n, 100, 9) / 100


def test_a_replay_file_loads_and_each_window_becomes_one_request(tmp_path) -> None:
    (tmp_path / "r.bin").write_bytes(windows(3).tobytes())
    data = replay.load_replay(str(tmp_path / "r.bin"))
    binary = replay.replay_requests(data, binary=True)
    assert [r.body for r in binary] == [windows(3)[i].tobytes() for i in range(3)]
    sent = [json.loads(r.body)["imu_window"] for r in replay.replay_requests(data)]
    assert np.array_equal(np.array(sent, dtype="<f4"), windows(3))


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"", "expected a non-empty multiple of 3600 bytes"),
        (windows(1).tobytes()[:-4], "got 3596 bytes"),
        (np.full((1, 100, 9), np.nan, "<f4").tobytes(), "window 0 holds NaN or Infinity"),
    ],
)
def test_a_malformed_replay_file_is_refused_by_name(tmp_path, content: bytes, named: str) -> None:
    (tmp_path / "r.bin").write_bytes(content)
    with pytest.raises(ValueError, match=named):
        replay.load_replay(str(tmp_path / "r.bin"))


def test_a_replay_file_over_the_limit_is_refused_as_such(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(replay, "MAX_REPLAY_WINDOWS", 2)
    (tmp_path / "r.bin").write_bytes(windows(2).tobytes())
    assert len(replay.load_replay(str(tmp_path / "r.bin"))) == 2 * WINDOW_BYTES
    (tmp_path / "r.bin").write_bytes(windows(3).tobytes())
    with pytest.raises(ValueError, match="more than 2 windows; expected at most that many"):
        replay.load_replay(str(tmp_path / "r.bin"))
    with pytest.raises(ValueError, match=r"replay file .*nowhere\.bin: No such file"):
        replay.load_replay(str(tmp_path / "nowhere.bin"))
