"""JSON windows: the direct float32 path and the buffer path give the same array as the exact one, and\nrefuse the same inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.inputs import InputError, parse_json, parse_json_exact, plain_window, window_array

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
        # Beyond ±1e9 as sent, onto it once rounded to float32: refused on every path, with or without
        # a boolean elsewhere in the body.
        (1000000001, "imu_window[3][4]", "1000000001"),
        (-1000000020.0, "imu_window[3][4]", "-1000000020.0"),
    ],
)
def test_a_bad_value_is_named_whichever_path_reads_it(value: object, field: str, got: str) -> None:
    window = [list(row) for row in WINDOW]
    window[3][4] = value
    for extra in ({}, {"normalized": False}):
        with pytest.raises(InputError) as err:
            parse_json(_body(window, **extra), "imu_window", "imu_windows", 8)
        assert (err.value.field, err.value.got) == (field, got)
    with pytest.raises(InputError) as err:
        parse_json(json.dumps({"imu_windows": [WINDOW, window]}).encode(), "imu_window", "imu_windows", 8)
    assert (err.value.field, err.value.got) == ("imu_windows[1]" + field.removeprefix("imu_window"), got)


def test_a_string_elsewhere_in_the_body_still_gets_a_plain_window_through() -> None:
    order = ["ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz"]
    windows, _batch, _norm, obj = parse_json(_body(WINDOW, channel_order=order), "imu_window", "imu_windows", 8)
    assert obj["channel_order"] == order
    assert np.array_equal(windows[0], np.array(WINDOW, dtype=np.float32))


# The buffer path (plain_window): it serves plain one-window bodies, and every body it serves gets the
# exact path's array; any other body, and every error, is the exact path's.


def _same_as_exact(body: bytes, key: str = "imu_window") -> object:
    """parse_json's outcome on ``body``, checked against parse_json_exact's: equal arrays, bit for bit,
    or the same InputError (field, expected, got, status)."""
    try:
        exact = parse_json_exact(body, key, None if key == "x" else "imu_windows", 8)
    except InputError as want:
        with pytest.raises(InputError) as got:
            parse_json(body, key, None if key == "x" else "imu_windows", 8)
        assert (got.value.field, got.value.expected, got.value.got, got.value.status) == (
            want.field,
            want.expected,
            want.got,
            want.status,
        )
        return want
    windows, is_batch, normalized, obj = parse_json(body, key, None if key == "x" else "imu_windows", 8)
    assert windows.dtype == np.float32 and windows.shape == exact[0].shape
    assert np.array_equal(windows.view(np.uint32), exact[0].view(np.uint32))  # -0.0 and subnormals too
    assert (is_batch, normalized, obj.get("channel_order")) == (exact[1], exact[2], exact[3].get("channel_order"))
    return windows


def _text(window: list[list[object]], key: str = "imu_window", tail: str = "", sep: str = ",") -> bytes:
    rows = sep.join("[" + sep.join(str(v) for v in row) + "]" for row in window)
    return f'{{"{key}":[{rows}]{tail}}}'.encode()


@pytest.mark.parametrize(
    "body",
    [
        _body(WINDOW),
        _body(WINDOW, normalized=True),
        _body(WINDOW, normalized=False),
        json.dumps({"normalized": True, "imu_window": WINDOW}, indent=2).encode(),
        _text([[r * 9 + c - 450 for c in range(9)] for r in range(100)]),  # integers
        _text([[f"{(r - c) * 1.5e-3:e}" for c in range(9)] for r in range(100)]),  # exponents
        _text([["-0.0", "1E2", "1e-400", "1e-45", "999999999", "-1e9", "1.17549435e-38", "0", "-0"]] * 100),
        _text(WINDOW, sep=" ,\n\t"),
        b"\xef\xbb\xbf" + _body(WINDOW),  # a UTF-8 byte order mark: both paths read past it
    ],
)
def test_a_plain_body_takes_the_buffer_path_and_gets_the_exact_array(body: bytes) -> None:
    assert plain_window(body, "imu_window") is not None
    _same_as_exact(body)


def test_the_infer_route_body_takes_the_buffer_path_too() -> None:
    body = json.dumps({"x": WINDOW}).encode()
    assert plain_window(body, "x") is not None
    assert plain_window(body, "imu_window") is None
    _same_as_exact(body, "x")


def _with(value: str, row: int = 3, col: int = 4) -> bytes:
    window: list[list[object]] = [list(r) for r in WINDOW]
    window[row][col] = value
    return _text(window)


@pytest.mark.parametrize(
    "body",
    [
        _with("[1.5]"),  # an array in a row: as_buffer would flatten it
        _with("[]"),
        _with("[[1,2]]"),
        _with('"1.5"'),
        _with("true"),
        _with("null"),
        _with('{"v":1}'),
        _with("NaN"),
        _with("1e400"),
        _with("2e9"),
        _with("1000000001"),  # 1e9 once rounded to float32: refused as sent
        _text(
            [[*r[:4], "-1000000000.5", *r[5:]] if i == 3 else r for i, r in enumerate(WINDOW)],
            tail=',"normalized":false',
        ),
        _with("18446744073709551616"),
        _with("-9223372036854775809"),
        _text(WINDOW[:99]),
        _text([*WINDOW[:50], WINDOW[50][:8], WINDOW[51] + [1.0], *WINDOW[52:]]),  # 8 and 10: 900 in all
        _text([*WINDOW[:99], [[1.0] * 9]]),
        _text(WINDOW, tail=',"imu_window":[[1]]'),  # the same key twice
        _text(WINDOW, tail=',"normalized":null'),
        _text(WINDOW, tail=',"normalized":"yes"'),
        _text(WINDOW, tail=',"channel_order":["ax"]'),
        _text(WINDOW, tail=',"imu_windows":[]'),
        _text(WINDOW, tail=',"other":1'),
        _text(WINDOW) + b" x",
        _text(WINDOW)[:-1],
        b'{"imu_window":{"0":[1]}}',
        b'[{"imu_window":[]}]',
        b'{"imu_window":[[1]],"k":"\xff"}',
        b"",
    ],
)
def test_any_other_body_takes_the_exact_path_with_its_errors(body: bytes) -> None:
    assert plain_window(body, "imu_window") is None
    _same_as_exact(body)


NUMBER = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_subnormal=True).map(repr),
    st.floats(min_value=-1e9, max_value=1e9).map(lambda v: f"{v:.{len(repr(v)) % 9}e}"),
    st.floats(width=32, min_value=-1e9, max_value=1e9).map(repr),
    st.integers(min_value=-(10**9), max_value=10**9).map(str),
    st.sampled_from(["-0.0", "-0", "0e0", "1E+2", "1e-400", "-1e-46", "3.4028235e38", "1e9", "1000000000.0000001"]),
    # beyond ±1e9 as sent, within it once rounded to float32
    st.sampled_from(["1000000001", "-1000000000.5", "1.00000003e9", "-1000000032"]),
    st.sampled_from(["true", "null", '"1"', "[1]", "[]", "NaN", "1e400", "01", "1.", ".5", "+1", "-"]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(NUMBER, min_size=9, max_size=9), min_size=1, max_size=4),
    st.integers(min_value=0, max_value=96),
    st.sampled_from(["", ',"normalized":true', ',"normalized":false']),
    st.sampled_from([",", ", ", " ,\n"]),
)
def test_random_windows_read_the_same_on_both_paths(rows: list[list[str]], at: int, tail: str, sep: str) -> None:
    window: list[list[object]] = [list(r) for r in WINDOW]
    window[at : at + len(rows)] = rows
    body = _text(window, tail=tail, sep=sep)
    got = _same_as_exact(body)
    # One rule on every path: a window is read when its numbers lie within ±1e9 as sent, and then
    # through the buffer path.
    within = all(abs(float(v)) <= 1e9 for row in rows for v in row if _number(v))
    fast = plain_window(body, "imu_window") is not None
    if isinstance(got, np.ndarray):
        assert fast and within
    else:
        assert not fast


def _number(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool)
