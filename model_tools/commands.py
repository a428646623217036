"""What each ``model_tools`` subcommand does with its parsed arguments.

One handler per subcommand, each returning the result dict that :func:`model_tools.cli.main`
prints. The heavy imports (torch, onnx, onnxruntime) sit inside the handlers, so that a
command loads only what it uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgeinfer_contract import ContractError, GoldenSet

from .checks import check_out
from .errors import InputError


def _norm_for(args: argparse.Namespace, loaded: Any = None) -> Any:
    from .config import normalization_of, read_config

    norm = normalization_of(read_config(args.config)) if getattr(args, "config", None) else None
    norm = norm or (loaded.normalization if loaded is not None else None)
    if norm is None:
        raise InputError("normalization: none in the checkpoint; pass --config model_config.json")
    return norm


def _golden(path: str) -> GoldenSet:
    try:
        return GoldenSet.load(path)
    except ContractError as exc:
        raise InputError(f"golden {path}: {exc}", field=exc.field) from None


def cmd_init(a: argparse.Namespace) -> dict[str, Any]:
    from .release import init_checkpoint

    return init_checkpoint(a.out, a.seed, a.config, a.force)


def cmd_export(a: argparse.Namespace) -> dict[str, Any]:
    from .checkpoint import load_checkpoint
    from .config import read_config
    from .export import export

    loaded = load_checkpoint(a.checkpoint, read_config(a.config) if a.config else None, a.trust_pickle)
    targets = tuple(a.target) if a.target else ("cpu", "batch", "hailo")
    return export(loaded, _norm_for(a, loaded), a.out, targets, a.opset, a.model_id)


def cmd_golden(a: argparse.Namespace) -> dict[str, Any]:
    from .checkpoint import load_checkpoint
    from .config import read_config
    from .export import reference_embeddings
    from .golden import make_golden

    out = check_out(a.out, "--out")
    loaded = load_checkpoint(a.checkpoint, read_config(a.config) if a.config else None, a.trust_pickle)
    norm = _norm_for(a, loaded)
    golden = make_golden(
        lambda x: reference_embeddings(loaded.model, x), norm, a.model_id or loaded.default_model_id, a.count, a.seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    golden.save(out)
    return {
        "golden": str(out),
        "count": len(golden),
        "model_id": golden.model_id,
        "normalization_hash": golden.normalization_hash,
    }


def cmd_calibrate(a: argparse.Namespace) -> dict[str, Any]:
    from .calibrate import make_calibration, save_calibration

    out = check_out(a.out, "--out")
    arr, report = make_calibration(_norm_for(a), a.count, a.seed, a.windows, a.min_windows)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_calibration(out, arr)
    for w in report["warnings"]:
        print(f"model_tools: warning: calibration {w}", file=sys.stderr)
    return {"calibration": str(out), **report}


def cmd_quantize(a: argparse.Namespace) -> dict[str, Any]:
    from .calibrate import load_calibration
    from .quantize import quantize_check

    return quantize_check(a.onnx, load_calibration(a.calibration), _golden(a.golden), _norm_for(a), a.out, a.floor)


def cmd_lint(a: argparse.Namespace) -> dict[str, Any]:
    from .errors import HailoLintError
    from .lint_hailo import lint_file

    report = lint_file(a.onnx)
    if not report.passed:
        raise HailoLintError(
            f"{a.onnx}: {len(report.violations)} Hailo-8 violation(s): {report.summary()}", **report.to_dict()
        )
    return {"onnx": a.onnx, **report.to_dict()}


def cmd_compile(a: argparse.Namespace) -> dict[str, Any]:
    from edgeinfer_contract import sha256_file

    from .calibrate import load_calibration
    from .compile_hef import compile_hef

    calib = load_calibration(a.calibration)
    return compile_hef(
        a.onnx,
        calib,
        _golden(a.golden),
        _norm_for(a),
        a.out,
        a.hw_arch,
        a.net_name,
        a.floor,
        sha256_file(a.calibration),
    )


def cmd_hailo_smoke(a: argparse.Namespace) -> dict[str, Any]:
    from .smoke import hailo_smoke

    return hailo_smoke(a.out, a.hw_arch, a.allow_double)


def cmd_keygen(a: argparse.Namespace) -> dict[str, Any]:
    from .signing import keygen

    return keygen(a.out, a.public, a.force)


def cmd_manifest(a: argparse.Namespace) -> dict[str, Any]:
    from .signing import write_manifest

    return write_manifest(a.release, a.model_version, a.signing_key)


def cmd_verify(a: argparse.Namespace) -> dict[str, Any]:
    from .signing import verify_release

    return verify_release(a.release, a.public_key)


def cmd_build(a: argparse.Namespace) -> dict[str, Any]:
    from .release import build

    return build(
        a.checkpoint, a.out, a.model_version, a.signing_key, a.config, a.model_id, a.golden_count, a.calibration_count,
        a.calibration_windows, a.int8_floor, a.require_int8, a.hailo_floor, a.hw_arch, a.opset,
        None if a.compile == "auto" else a.compile == "yes", a.force, a.trust_pickle,
    )  # fmt: skip


def cmd_ensure(a: argparse.Namespace) -> dict[str, Any]:
    from .ensure import ensure

    try:
        extra = json.loads(a.extra_args)
        assert isinstance(extra, list) and all(isinstance(x, str) for x in extra)
    except (ValueError, AssertionError):
        raise InputError(f"--extra-args: expected a JSON list of strings, got {a.extra_args!r}") from None
    return ensure(
        a.artifacts, a.model_version, a.checkpoint, a.onnx, a.demo_seed, a.config, a.signing_key, a.keygen,
        extra, a.force,
    )  # fmt: skip


def cmd_adopt(a: argparse.Namespace) -> dict[str, Any]:
    from .adopt import adopt

    return adopt(
        a.onnx, a.config, a.out, a.model_version, a.signing_key, a.model_id, a.golden_count, a.calibration_count,
        a.calibration_windows, a.int8_floor, a.require_int8,
    )  # fmt: skip


def cmd_capture(a: argparse.Namespace) -> dict[str, Any]:
    from .capture import capture

    return capture(a.url, a.token_file, a.replay, a.golden, a.release, a.count)
