"""Turn request bodies into float32 windows, or an InputError that names the field."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import simdjson

from edgeinfer_contract import CHANNELS, WINDOW

WINDOW_BYTES = WINDOW * CHANNELS * 4
EXPECTED_WINDOW = f"{WINDOW} rows of {CHANNELS} finite numbers"
# The input domain: no IMU reading comes near it, in raw units or in standard deviations, and
# within it the model's arithmetic stays far from float32 overflow (the production model's output
# is about 0.9 x its input's scale). Beyond it a healthy model could answer Infinity or NaN,
# which is a 500, so a client could cause a server error: such a value is refused (422).
MAX_ABS_VALUE = 1e9
IN_RANGE = "a finite number within ±1e9"  # MAX_ABS_VALUE


class InputError(ValueError):
    """Client input is wrong; rendered as a 4xx JSON body."""

    def __init__(self, field: str, expected: str, got: str = "", status: int = 422) -> None:
        super().__init__(f"{field}: expected {expected}" + (f", got {got}" if got else ""))
        self.field = field
        self.expected = expected
        self.got = got
        self.status = status

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": "invalid_input", "field": self.field, "expected": self.expected}
        if self.got:
            out["got"] = self.got
        out["detail"] = str(self)
        return out


def describe(v: Any) -> str:
    """A value as an error's ``got`` shows it: its repr, cut at 40 characters."""
    try:
        text = repr(v)
    except RecursionError:  # orjson reads lists nested 1024 deep; repr stops before
        return f"a {type(v).__name__} nested too deep"
    return text if len(text) <= 40 else text[:37] + "..."


def _locate(window: Any, field: str) -> InputError:
    """Walk a window that numpy refused and name the first offending element."""
    if not isinstance(window, list):
        return InputError(field, EXPECTED_WINDOW, f"{type(window).__name__}")
    if len(window) != WINDOW:
        return InputError(field, EXPECTED_WINDOW, f"{len(window)} rows")
    for i, row in enumerate(window):
        if not isinstance(row, list):
            return InputError(f"{field}[{i}]", f"a row of {CHANNELS} numbers", type(row).__name__)
        if len(row) != CHANNELS:
            return InputError(f"{field}[{i}]", f"a row of {CHANNELS} numbers", f"{len(row)} numbers")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return InputError(f"{field}[{i}][{j}]", "a finite number", describe(v))
            if abs(v) > MAX_ABS_VALUE or not math.isfinite(v):  # in this order: an int over 1e308 has no float
                return InputError(f"{field}[{i}][{j}]", IN_RANGE, describe(v))
    return InputError(field, EXPECTED_WINDOW, "something else")


def in_range(arr: np.ndarray) -> bool:
    """Every value finite and within ±MAX_ABS_VALUE: two reductions, no temporary array (NaN fails both)."""
    return bool(arr.min() >= -MAX_ABS_VALUE and arr.max() <= MAX_ABS_VALUE)


def first_out_of_range(arr: np.ndarray) -> tuple[int, ...]:
    """The index of the first value that ``in_range`` refuses (NaN compares false)."""
    return tuple(int(i) for i in np.argwhere(~(np.abs(arr) <= MAX_ABS_VALUE))[0])


def window_array(window: Any, field: str, has_bool: bool, has_str: bool = True) -> np.ndarray:
    """One 100x9 window as float32; strings, booleans, nulls, ragged rows and non-finite values are refused.

    ``has_str`` False promises that the window holds no string: numpy then converts straight to
    float32 (it would read "1.5" as 1.5, and ``has_bool`` as 1.0 or 0.0, hence the promises), about
    twice as fast as finding the type first; anything else it fails on takes the exact walk.
    """
    if not has_bool and not has_str:
        try:
            # A number beyond float32 becomes inf, which in_range refuses: no warning for it.
            with np.errstate(over="ignore"):
                out = np.array(window, dtype=np.float32)
        except (ValueError, TypeError, OverflowError):
            raise _locate(window, field) from None
        # None reads as NaN: out of range. A value float32 rounded onto ±1e9 may lie beyond it as sent
        # (1000000001 becomes 1e9): the walk judges the window as sent.
        if out.shape != (WINDOW, CHANNELS) or not (out.min() > -MAX_ABS_VALUE and out.max() < MAX_ABS_VALUE):
            err = _locate(window, field)
            if out.shape != (WINDOW, CHANNELS) or err.got != "something else":
                raise err
        return out
    if has_bool:
        # numpy would read true/false as 1/0; the exact walk refuses them.
        err = _locate(window, field)
        if err.got != "something else":
            raise err
    try:
        arr = np.array(window)
    except (ValueError, TypeError):
        raise _locate(window, field) from None
    if arr.shape != (WINDOW, CHANNELS) or arr.dtype.kind not in "fiu" or not in_range(arr):  # as sent
        raise _locate(window, field)
    return arr.astype(np.float32)


def _brackets(body: bytes) -> int:
    """The ``[`` in ``body``. numpy compares the bytes in vector registers: on an 18 KB window, two to
    four times as fast as ``bytes.count``, whose one-byte count is a plain loop."""
    return int(np.count_nonzero(np.frombuffer(body, np.uint8) == 0x5B))


def _rows(window: simdjson.Array) -> bool:
    """Every element of ``window`` has CHANNELS elements. A number has no length; a string or an
    object of that length passes here and fails ``as_buffer``, which reads numbers only. About two
    thirds of the time of an ``isinstance`` and a ``len`` per row."""
    try:
        return set(map(len, window)) == {CHANNELS}
    except TypeError:
        return False


def plain_window(body: bytes, window_key: str) -> tuple[np.ndarray, bool] | None:
    """The windows [1,100,9] and the normalized flag of a plain one-window body, read without a
    Python object per number; None for any other body, which then takes ``parse_json_exact``.

    Plain: a JSON object whose keys are ``window_key`` and at most ``normalized`` (true or false),
    each once, the window 100 arrays of 9 numbers each within ±MAX_ABS_VALUE as sent. orjson would make 900
    Python floats and 100 lists of every window, and numpy read them back: under load that is most
    of a JSON request's event-loop CPU. simdjson's ``as_buffer`` copies the numbers straight into
    one buffer of doubles (flattening any nesting, hence the checks of the shape and of the body's
    ``[`` count), and each double becomes float32 as numpy converts a Python float: the same array
    as the exact path's. Everything else, errors included, is the exact path's.
    """
    try:
        doc = simdjson.Parser().parse(body)  # a parser per body: no proxy of it outlives the call
    except (ValueError, RuntimeError, UnicodeError):
        return None
    if not isinstance(doc, simdjson.Object):
        return None
    keys = list(doc.keys())
    if window_key not in keys or len(set(keys)) != len(keys) or not set(keys) <= {window_key, "normalized"}:
        return None
    normalized = doc.get("normalized", False)
    window = doc[window_key]
    if (
        not isinstance(normalized, bool)
        or not isinstance(window, simdjson.Array)
        or len(window) != WINDOW
        or _brackets(body) != WINDOW + 1  # no array in any row: as_buffer would flatten it
        or not _rows(window)
    ):
        return None
    try:
        flat = np.frombuffer(window.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:  # a string, true, false, null or object among the numbers
        return None
    # The range is checked on the numbers as sent: 1000000001 rounds to 1e9 in float32, and the
    # exact path's walk refuses it.
    if not in_range(flat):
        return None
    return flat.astype(np.float32).reshape(1, WINDOW, CHANNELS), normalized


def parse_json(
    body: bytes, window_key: str, batch_key: str | None, max_windows: int
) -> tuple[np.ndarray, bool, bool, dict[str, Any]]:
    """Return (windows [N,100,9], is_batch, normalized flag, the decoded object): a plain one-window
    body through ``plain_window``, any other through ``parse_json_exact``."""
    plain = plain_window(body, window_key) if body else None
    if plain is not None:
        return plain[0], False, plain[1], {"normalized": plain[1]}
    return parse_json_exact(body, window_key, batch_key, max_windows)


def parse_json_exact(
    body: bytes, window_key: str, batch_key: str | None, max_windows: int
) -> tuple[np.ndarray, bool, bool, dict[str, Any]]:
    """Any JSON body: the windows, or an InputError that names the offending field."""
    if not body:
        raise InputError("body", "a JSON object", "an empty body", 400)
    try:
        # orjson parses a 900-number window several times faster than the stdlib.
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses NaN and Infinity (not JSON) and integers beyond 64 bits; the
        # stdlib reads them, so that the window check names the offending element.
        try:
            obj = json.loads(body, parse_constant=lambda c: float(c))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError("body", "valid JSON", str(exc), 400) from None
        except RecursionError:
            # orjson stops at 1024 levels; the stdlib parser recurses until the stack limit.
            raise InputError("body", "valid JSON nested at most 1024 deep", "deeper nesting", 400) from None
    if not isinstance(obj, dict):
        raise InputError("body", "a JSON object", type(obj).__name__, 400)
    # numpy reads true/false as 1/0, so a body with either gets the exact walk. The one-byte
    # tests (memchr) come first: no number and no key of a plain request holds a "t" or an
    # "f", so a plain request never pays for the far slower word searches.
    has_bool = (b"t" in body and b"true" in body) or (b"f" in body and b"false" in body)
    # Two quotes for each key of the object and none left over: no string anywhere in the values.
    has_str = body.count(b'"') != 2 * len(obj)
    normalized = obj.get("normalized", False)
    if not isinstance(normalized, bool):
        raise InputError("normalized", "true or false", describe(normalized))
    if window_key in obj:
        if batch_key and batch_key in obj:
            raise InputError(window_key, f"either {window_key} or {batch_key}, not both", "both")
        return window_array(obj[window_key], window_key, has_bool, has_str)[None], False, normalized, obj
    if batch_key and batch_key in obj:
        windows = obj[batch_key]
        if not isinstance(windows, list) or not windows:
            raise InputError(batch_key, f"a list of 1 to {max_windows} windows of {EXPECTED_WINDOW}", describe(windows))
        if len(windows) > max_windows:
            raise InputError(batch_key, f"at most {max_windows} windows", f"{len(windows)}", 413)
        arrs = [window_array(w, f"{batch_key}[{i}]", has_bool, has_str) for i, w in enumerate(windows)]
        return np.stack(arrs), True, normalized, obj
    keys = window_key if not batch_key else f"{window_key} (one window) or {batch_key} (a list)"
    raise InputError(keys.split(" ")[0], f"{keys}: {EXPECTED_WINDOW}", "missing")


def parse_binary(body: bytes, max_windows: int) -> tuple[np.ndarray, bool]:
    """Little-endian float32, 3600 bytes a window; k windows give the batch form."""
    n, rest = divmod(len(body), WINDOW_BYTES)
    if rest or n == 0:
        raise InputError(
            "body",
            f"a multiple of {WINDOW_BYTES} bytes (little-endian float32 {WINDOW}x{CHANNELS} per window)",
            f"{len(body)} bytes",
            400,
        )
    if n > max_windows:
        raise InputError(
            "body", f"at most {max_windows} windows ({max_windows * WINDOW_BYTES} bytes)", f"{n} windows", 413
        )
    arr = np.frombuffer(body, dtype="<f4").reshape(n, WINDOW, CHANNELS)
    if not in_range(arr):
        bad = first_out_of_range(arr)
        raise InputError(f"body[{bad[0]}][{bad[1]}][{bad[2]}]", f"{IN_RANGE} (float32)", str(arr[bad]))
    return arr.astype(np.float32), n > 1


def reorder(windows: np.ndarray, given: Any, model_order: Sequence[str]) -> np.ndarray:
    """Put columns sent in ``given`` order into the model's channel order."""
    if given is None or given == list(model_order):
        return windows
    if (
        not isinstance(given, list)
        or len(given) != len(model_order)
        or not all(isinstance(c, str) for c in given)
        or sorted(given) != sorted(model_order)
    ):
        raise InputError("channel_order", f"a permutation of {list(model_order)}", describe(given))
    idx = [given.index(c) for c in model_order]
    return windows[:, :, idx]
