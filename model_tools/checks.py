"""Checks of what the user gave, made before any work starts, each naming the option it is about.

The argparse types (``cosine_floor``, ``positive_int``) refuse a bad value while the command line
is parsed (exit 2); the ``check_*`` functions raise :class:`InputError` (exit 2 too) for the
callers of the Python API, such as the Ansible modules, who bypass argparse.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinfer_contract import INPUT_NAME, OUTPUT_NAME, ContractError
from edgeinfer_contract import check_model_version as _contract_version

from .errors import InputError

if TYPE_CHECKING:
    import onnx

FLOOR_RULE = "a cosine similarity: a finite number from -1 to 1, such as 0.98"


def check_model_version(version: Any, option: str = "--model-version") -> str:
    """The release contract's rule for a name that a release directory can carry as it is."""
    try:
        return _contract_version(version)
    except ContractError as exc:
        raise InputError(f"{option}: {exc.message}", field="model_version") from None


def _floor(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    # NaN compares false with everything: a NaN floor would pass every model.
    return number if math.isfinite(number) and -1.0 <= number <= 1.0 else None


def cosine_floor(text: str) -> float:
    """argparse type of every cosine floor option (``--floor``, ``--int8-floor``, ``--hailo-floor``)."""
    try:
        number = _floor(float(text))
    except ValueError:
        number = None
    if number is None:
        raise argparse.ArgumentTypeError(f"expected {FLOOR_RULE}, got {text!r}")
    return number


def check_floor(value: float | None, option: str) -> float | None:
    """None (the contract's floor) or a cosine floor; anything else is refused naming ``option``."""
    if value is not None and _floor(value) is None:
        raise InputError(f"{option}: expected {FLOOR_RULE}, got {value!r}", field=option.lstrip("-"))
    return value


def positive_int(text: str) -> int:
    """argparse type of the window counts: a count of windows is at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number


def seed(text: str) -> int:
    """argparse type of the seeds: numpy's generators take no negative seed, torch none of 2**63 or more."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number < 2**63:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**63-1, got {text!r}")
    return number


def check_count(value: Any, option: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InputError(f"{option}: expected a whole number of at least {least}, got {value!r}", field=option)
    return value


def check_out(path: str | os.PathLike[str], option: str, directory: bool = False) -> Path:
    """A path the command can write: where it exists it is of the right kind, and the nearest
    existing directory above it is a directory this user may write in."""
    p = Path(path)
    if directory and p.exists() and not p.is_dir():
        raise InputError(f"{option} {p}: is a file; expected a directory, or a path where one can be made")
    if not directory and p.is_dir():
        raise InputError(f"{option} {p}: is a directory; expected the path of a file")
    start = p if directory and p.is_dir() else p.parent
    for above in (start, *start.parents):
        if above.exists():
            if not above.is_dir():
                raise InputError(f"{option} {p}: {above} is a file; expected a path under a directory")
            if not os.access(above, os.W_OK | os.X_OK):
                raise InputError(f"{option} {p}: cannot write in {above}; expected a directory this user may write")
            break
    return p


def load_onnx(path: str | os.PathLike[str], option: str) -> onnx.ModelProto:
    """An ONNX file, or an InputError that says it is missing or not ONNX (cut short, another format)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{option} {p}: does not exist; expected an ONNX model file")
    try:
        return onnx.load(str(p))
    except Exception as exc:  # protobuf's DecodeError and onnx's own share no base class
        raise InputError(f"{option} {p}: not an ONNX model ({type(exc).__name__}: {exc})") from None


def dims(value_info: Any) -> list[int | str]:
    """A graph input's or output's shape: each axis its size, or its name (``?`` when unnamed) when dynamic."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value_info.type.tensor_type.shape.dim
    ]


def check_interface(proto: onnx.ModelProto, path: Path, option: str, any_batch: bool = False) -> None:
    """The production model's interface: ``imu_window`` [1,100,9] -> ``latent_embeddings`` [1,latent];
    with ``any_batch``, a named (dynamic) batch axis is accepted too."""
    inits = {i.name for i in proto.graph.initializer}
    ins = [i for i in proto.graph.input if i.name not in inits]
    outs = list(proto.graph.output)

    def batch_ok(dim: int | str) -> bool:
        return dim == 1 or (any_batch and isinstance(dim, str))

    in_dims = dims(ins[0]) if len(ins) == 1 else []
    if (
        [i.name for i in ins] != [INPUT_NAME]
        or len(in_dims) != 3
        or not batch_ok(in_dims[0])
        or in_dims[1:] != [100, 9]
    ):
        got = [(i.name, dims(i)) for i in ins]
        raise InputError(f"{option} {path}: inputs {got}; expected {INPUT_NAME} [1,100,9]")
    out_dims = dims(outs[0]) if len(outs) == 1 else []
    if [o.name for o in outs] != [OUTPUT_NAME] or len(out_dims) != 2 or not batch_ok(out_dims[0]):
        got = [(o.name, dims(o)) for o in outs]
        raise InputError(f"{option} {path}: outputs {got}; expected {OUTPUT_NAME} [1,64]")


def check_release_arguments(
    model_version: str,
    out: str | os.PathLike[str],
    signing_key: str | os.PathLike[str] | None,
    golden_count: int,
    calibration_count: int,
    int8_floor: float | None,
) -> Path:
    """The arguments ``build`` and ``adopt`` share, checked before any model is loaded, so that a
    mistake costs no export or calibration. Returns the release directory."""
    from .calibrate import MIN_WINDOWS  # here: calibrate and signing load numpy and cryptography
    from .signing import read_signing_key

    check_model_version(model_version)
    out_dir = check_out(out, "--out", directory=True)
    if signing_key is not None:
        read_signing_key(signing_key)
    check_count(golden_count, "--golden-count")
    check_count(calibration_count, "--calibration-count", MIN_WINDOWS)
    check_floor(int8_floor, "--int8-floor")
    return out_dir
