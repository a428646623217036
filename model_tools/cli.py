"""``python -m model_tools COMMAND`` / ``model-tools COMMAND``.

Every command prints a human summary, or with ``--json`` one JSON object on
stdout; progress goes to stderr. Exit codes: 0 ok, 2 bad input, 3 no DFC,
4 checkpoint, 5 parity, 6 quantization/fidelity, 7 Hailo lint, 8 compile,
9 verify (see :mod:`model_tools.errors`), 10 capture (the sidecar did not hand over its capture).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from edgeinfer_contract import FILES

from . import __version__
from .checks import cosine_floor, positive_int, seed
from .commands import (
    cmd_adopt,
    cmd_build,
    cmd_calibrate,
    cmd_capture,
    cmd_compile,
    cmd_ensure,
    cmd_export,
    cmd_golden,
    cmd_hailo_smoke,
    cmd_init,
    cmd_keygen,
    cmd_lint,
    cmd_manifest,
    cmd_quantize,
    cmd_verify,
)
from .errors import ModelToolsError

Handler = Callable[[argparse.Namespace], dict[str, Any]]
# What add_subparsers() returns; argparse names its class privately.
Subcommands = argparse._SubParsersAction


def _add_command(sub: Subcommands, name: str, fn: Handler, help: str) -> argparse.ArgumentParser:
    """A subcommand whose help line is also its description, with the ``--json`` every command takes."""
    sp = sub.add_parser(name, help=help, description=help)
    sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sp.set_defaults(fn=fn)
    return sp


def _add_checkpoint_args(sp: argparse.ArgumentParser) -> None:
    """The checkpoint a command reads, as ``export``, ``golden`` and ``build`` take it."""
    sp.add_argument("--checkpoint", required=True, help="raw state_dict or {'model_state_dict': ...}")
    sp.add_argument("--config", help="model_config.json: normalization and architecture")
    sp.add_argument("--model-id", help="embedding stamp model id (default tcn-vae-<sha256[:12]>)")
    sp.add_argument("--trust-pickle", action="store_true", help="allow arbitrary pickled objects (trusted files only)")


def _add_init(sub: Subcommands) -> None:
    sp = _add_command(sub, "init", cmd_init, "write a seeded, UNTRAINED checkpoint for demos and tests")
    sp.add_argument("--out", required=True)
    sp.add_argument("--seed", type=seed, default=0)
    sp.add_argument("--config", help="take architecture and normalization from this model_config.json")
    sp.add_argument("--force", action="store_true")


def _add_export(sub: Subcommands) -> None:
    sp = _add_command(sub, "export", cmd_export, "export ONNX (cpu, batch, hailo) and check each against PyTorch")
    _add_checkpoint_args(sp)
    sp.add_argument("--out", required=True, help="directory")
    sp.add_argument("--target", action="append", choices=["cpu", "batch", "hailo"], help="repeatable; default all")
    sp.add_argument("--opset", type=int, default=13)


def _add_golden(sub: Subcommands) -> None:
    sp = _add_command(sub, "golden", cmd_golden, "write golden.json: fixed raw windows and their PyTorch embeddings")
    _add_checkpoint_args(sp)
    sp.add_argument("--out", required=True, help="path of golden.json")
    sp.add_argument("--count", type=positive_int, default=64)
    sp.add_argument("--seed", type=seed, default=20250905)


def _add_calibrate(sub: Subcommands) -> None:
    help = "write the Hailo calibration set, float32 NHWC (N,1,100,9), normalized"
    sp = _add_command(sub, "calibrate", cmd_calibrate, help)
    sp.add_argument("--config", required=True, help="model_config.json with the normalization")
    sp.add_argument("--out", required=True, help="path of calibration.npy")
    sp.add_argument("--count", type=positive_int, default=2000)
    sp.add_argument("--seed", type=seed, default=0)
    sp.add_argument("--windows", help="your own raw windows: .npy [N,100,9] / [T,9] or .csv (9 columns)")
    sp.add_argument("--min-windows", type=positive_int, default=1024)


def _add_quantize_check(sub: Subcommands) -> None:
    help = "INT8 static quantization with ONNX Runtime, checked on the golden set"
    sp = _add_command(sub, "quantize-check", cmd_quantize, help)
    sp.add_argument("--onnx", required=True, help="fp32 CPU graph (imu_window [1,100,9])")
    sp.add_argument("--calibration", required=True)
    sp.add_argument("--golden", required=True)
    sp.add_argument("--config", required=True)
    sp.add_argument("--out", required=True, help="path of model_int8.onnx")
    sp.add_argument(
        "--floor", type=cosine_floor, help="minimum cosine on the golden set (default: QUALITY_FLOORS['int8'], 0.98)"
    )


def _add_lint_hailo(sub: Subcommands) -> None:
    sp = _add_command(sub, "lint-hailo", cmd_lint, "check an ONNX graph against the Hailo-8 constraints")
    sp.add_argument("onnx")


def _add_compile(sub: Subcommands) -> None:
    help = "compile a HEF with the Hailo Dataflow Compiler (hailo_sdk_client)"
    sp = _add_command(sub, "compile", cmd_compile, help)
    sp.add_argument("--onnx", required=True, help=FILES["onnx_hailo"])
    sp.add_argument("--calibration", required=True)
    sp.add_argument("--golden", required=True)
    sp.add_argument("--config", required=True)
    sp.add_argument("--out", required=True, help="directory for model.hef and deployment_metadata.json")
    sp.add_argument("--hw-arch", default="hailo8")
    sp.add_argument("--net-name", default="tcn_encoder")
    sp.add_argument(
        "--floor",
        type=cosine_floor,
        help="minimum emulator cosine vs ONNX Runtime (default: QUALITY_FLOORS['hailo'], 0.98)",
    )


def _add_hailo_smoke(sub: Subcommands) -> None:
    help = "end-to-end check of the real DFC path on an untrained model"
    sp = _add_command(sub, "hailo-smoke", cmd_hailo_smoke, help)
    sp.add_argument("--out", required=True)
    sp.add_argument("--hw-arch", default="hailo8")
    sp.add_argument("--allow-double", action="store_true", help=argparse.SUPPRESS)


def _add_keygen(sub: Subcommands) -> None:
    sp = _add_command(sub, "keygen", cmd_keygen, "write an ed25519 key pair (PEM; private key mode 0600)")
    sp.add_argument("--out", required=True, help="private key path; public key at <out>.pub")
    sp.add_argument("--public")
    sp.add_argument("--force", action="store_true")


def _add_manifest(sub: Subcommands) -> None:
    help = "write manifest.json (and .sig with a key) for a release directory"
    sp = _add_command(sub, "manifest", cmd_manifest, help)
    sp.add_argument("--release", required=True)
    sp.add_argument("--model-version", required=True)
    sp.add_argument("--signing-key")


def _add_verify(sub: Subcommands) -> None:
    sp = _add_command(sub, "verify", cmd_verify, "verify a release's signature, names, sizes and digests")
    sp.add_argument("--release", required=True)
    sp.add_argument("--public-key", required=True)


def _add_release_args(sp: argparse.ArgumentParser) -> None:
    """What ``build`` and ``adopt`` share: where the release goes, its signing key and its quality gates."""
    sp.add_argument("--out", required=True, help="release directory (replaced atomically)")
    sp.add_argument("--model-version", required=True)
    sp.add_argument("--signing-key", help="ed25519 private key (PEM); without it the manifest is unsigned")
    sp.add_argument("--golden-count", type=positive_int, default=64)
    sp.add_argument("--calibration-count", type=positive_int, default=2000)
    sp.add_argument("--calibration-windows", help="your own raw windows (.npy/.csv) for calibration")
    sp.add_argument("--int8-floor", type=cosine_floor, help="default: QUALITY_FLOORS['int8'] (edgeinfer_contract)")
    sp.add_argument("--require-int8", action="store_true", help="fail instead of leaving model_int8.onnx out")


def _add_build(sub: Subcommands) -> None:
    help = "checkpoint -> complete release directory (export, golden, calibration, int8, HEF, manifest)"
    sp = _add_command(sub, "build", cmd_build, help)
    _add_checkpoint_args(sp)
    sp.add_argument("--hailo-floor", type=cosine_floor, help="default: QUALITY_FLOORS['hailo'] (edgeinfer_contract)")
    sp.add_argument("--hw-arch", default="hailo8")
    sp.add_argument("--opset", type=int, default=13)
    sp.add_argument("--compile", choices=["auto", "yes", "no"], default="auto", help="auto: when the DFC is importable")
    sp.add_argument("--force", action="store_true", help="rebuild even if --out holds this checkpoint's release")
    _add_release_args(sp)


def _add_adopt(sub: Subcommands) -> None:
    help = (
        "an existing ONNX with the production model's interface (imu_window [1,100,9] -> "
        "latent_embeddings [1,64]) + model_config.json -> release directory"
    )
    sp = _add_command(sub, "adopt", cmd_adopt, help)
    sp.add_argument("--onnx", required=True)
    sp.add_argument("--config", required=True)
    sp.add_argument("--model-id")
    _add_release_args(sp)


def _add_ensure(sub: Subcommands) -> None:
    help = (
        "build <artifacts>/<version> unless the same build is there (same source, config, key and arguments), "
        "then describe the release for the edges (its id, digest, files, signature)"
    )
    sp = _add_command(sub, "ensure", cmd_ensure, help)
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a trained checkpoint (build)")
    src.add_argument("--onnx", help="an ONNX with the production model's interface (adopt; needs --config)")
    src.add_argument("--demo-seed", type=seed, help="an UNTRAINED demo model of this seed, made on first use")
    sp.add_argument("--artifacts", required=True, help="the artifacts directory; the release is <artifacts>/<version>")
    sp.add_argument("--model-version", required=True)
    sp.add_argument("--config", help="model_config.json")
    sp.add_argument("--signing-key", help="ed25519 private key (PEM), its public half at <key>.pub")
    sp.add_argument("--keygen", action="store_true", help="create the signing key when it is missing")
    sp.add_argument("--extra-args", default="[]", help="a JSON list of further arguments for build or adopt")
    sp.add_argument("--force", action="store_true", help="build even when the same build is there")


def _add_capture(sub: Subcommands) -> None:
    help = (
        "fetch a sidecar's sample of real traffic (GET /admin/capture) and write it as a replay file "
        "and/or a golden set"
    )
    sp = _add_command(sub, "capture", cmd_capture, help)
    sp.add_argument("--url", default="http://127.0.0.1:9000", help="the sidecar (default %(default)s)")
    sp.add_argument(
        "--token-file",
        help="file holding the admin bearer token (default: $EDGEINFER_ADMIN_TOKEN; never pass the token itself)",
    )
    sp.add_argument("--replay", metavar="PATH", help="write the windows here (raw float32, 3600 bytes a window)")
    sp.add_argument("--golden", metavar="PATH", help="write a golden.json of the windows here (needs --release)")
    sp.add_argument("--release", metavar="DIR", help="release whose model.onnx gives the golden embeddings")
    sp.add_argument(
        "--count", type=positive_int, default=64, help="golden windows, spread over the sample (default 64)"
    )


# In the order ``--help`` lists them.
_SUBCOMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    _add_init,
    _add_export,
    _add_golden,
    _add_calibrate,
    _add_quantize_check,
    _add_lint_hailo,
    _add_compile,
    _add_hailo_smoke,
    _add_keygen,
    _add_manifest,
    _add_verify,
    _add_build,
    _add_adopt,
    _add_ensure,
    _add_capture,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="model_tools", description="TCN-VAE checkpoint -> verified, signed release artifacts"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return p


def _human(result: dict[str, Any]) -> str:
    lines = []
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)[:160] + ("..." if len(json.dumps(value)) > 160 else "")
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.fn(args)
    except ModelToolsError as exc:
        if args.json:
            print(json.dumps({"ok": False, **exc.to_dict()}, default=str))
        print(f"model_tools {args.command}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps({"ok": True, **result}, default=str) if args.json else _human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
