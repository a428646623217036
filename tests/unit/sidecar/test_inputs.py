"""JSON windows: the direct float32 path gives the same array as the exact one, and refuses the same inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sidecar.inputs import InputError, parse_json, window_array

WINDOW = [[round(0.37 * r - 1.1 * c + 0.001 * r * c, 6) for c in range(9)] for r in range(100)]


def _body(window: object, **extra: object) -> bytes:
    return json.dumps({"imu_window": window, **extra}).encode()


def test_a_plain_window_takes_the_direct_path_and_matches_the_exact_one() -> None:
    direct = window_array(WINDOW, "imu_window", has_bool=False, has_str=False)
    exact = window_array(WINDOW, "imu_window", has_bool=False, has_str=True)
    assert direct.dtype == np.float32 and direct.shape == (100, 9)
    assert np.array_equal(direct, exact)
    windows, _batch, _norm, _obj = parse_json(_body(WINDOW), "imu_window", "imu_windows", 8)
    assert np.array_equal(windows[0], exact)


@pytest.mark.parametrize(
    ("value", "field", "got"),
    [
        ("1.5", "imu_window[3][4]", "'1.5'"),  # a string: has_str sends it to the exact walk
        (None, "imu_window[3][4]", "None"),
        (True, "imu_window[3][4]", "True"),
        ({"x": 1}, "imu_window[3][4]", "{'x': 1}"),
        ([1.0], "imu_window[3][4]", "[1.0]"),
        (1e39, "imu_window[3][4]", "1e+39"),
        (10**400, "imu_window[3][4]", "1000000000000000000000000000000000000..."),
    ],
)
def test_a_bad_value_is_named_whichever_path_reads_it(value: object, field: str, got: str) -> None:
    window = [list(row) for row in WINDOW]
    window[3][4] = value
    with pytest.raises(InputError) as err:
        parse_json(_body(window), "imu_window", "imu_windows", 8)
    assert (err.value.field, err.value.got) == (field, got)


def test_a_string_elsewhere_in_the_body_still_gets_a_plain_window_through() -> None:
    order = ["ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz"]
    windows, _batch, _norm, obj = parse_json(_body(WINDOW, channel_order=order), "imu_window", "imu_windows", 8)
    assert obj["channel_order"] == order
    assert np.array_equal(windows[0], np.array(WINDOW, dtype=np.float32))
