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
from pathlib import Path
from typing import Any

from edgeinfer_contract import FILES, ContractError, GoldenSet

from . import __version__
from .errors import InputError, ModelToolsError

Handler = Callable[[argparse.Namespace], dict[str, Any]]


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

    loaded = load_checkpoint(a.checkpoint, read_config(a.config) if a.config else None, a.trust_pickle)
    norm = _norm_for(a, loaded)
    golden = make_golden(
        lambda x: reference_embeddings(loaded.model, x), norm, a.model_id or loaded.default_model_id, a.count, a.seed
    )
    out = Path(a.out)
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

    arr, report = make_calibration(_norm_for(a), a.count, a.seed, a.windows, a.min_windows)
    out = Path(a.out)
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
    from .release import adopt

    return adopt(
        a.onnx, a.config, a.out, a.model_version, a.signing_key, a.model_id, a.golden_count, a.calibration_count,
        a.calibration_windows, a.int8_floor, a.require_int8,
    )  # fmt: skip


def cmd_capture(a: argparse.Namespace) -> dict[str, Any]:
    from .capture import capture

    return capture(a.url, a.token_file, a.replay, a.golden, a.release, a.count)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="model_tools", description="TCN-VAE checkpoint -> verified, signed release artifacts"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Handler, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        sp.set_defaults(fn=fn)
        return sp

    def ckpt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--checkpoint", required=True, help="raw state_dict or {'model_state_dict': ...}")
        sp.add_argument("--config", help="model_config.json: normalization and architecture")
        sp.add_argument("--model-id", help="embedding stamp model id (default tcn-vae-<sha256[:12]>)")
        sp.add_argument(
            "--trust-pickle", action="store_true", help="allow arbitrary pickled objects (trusted files only)"
        )

    sp = add("init", cmd_init, "write a seeded, UNTRAINED checkpoint for demos and tests")
    sp.add_argument("--out", required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--config", help="take architecture and normalization from this model_config.json")
    sp.add_argument("--force", action="store_true")

    sp = add("export", cmd_export, "export ONNX (cpu, batch, hailo) and check each against PyTorch")
    ckpt(sp)
    sp.add_argument("--out", required=True, help="directory")
    sp.add_argument("--target", action="append", choices=["cpu", "batch", "hailo"], help="repeatable; default all")
    sp.add_argument("--opset", type=int, default=13)

    sp = add("golden", cmd_golden, "write golden.json: fixed raw windows and their PyTorch embeddings")
    ckpt(sp)
    sp.add_argument("--out", required=True, help="path of golden.json")
    sp.add_argument("--count", type=int, default=64)
    sp.add_argument("--seed", type=int, default=20250905)

    sp = add("calibrate", cmd_calibrate, "write the Hailo calibration set, float32 NHWC (N,1,100,9), normalized")
    sp.add_argument("--config", required=True, help="model_config.json with the normalization")
    sp.add_argument("--out", required=True, help="path of calibration.npy")
    sp.add_argument("--count", type=int, default=2000)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--windows", help="your own raw windows: .npy [N,100,9] / [T,9] or .csv (9 columns)")
    sp.add_argument("--min-windows", type=int, default=1024)

    sp = add("quantize-check", cmd_quantize, "INT8 static quantization with ONNX Runtime, checked on the golden set")
    sp.add_argument("--onnx", required=True, help="fp32 CPU graph (imu_window [1,100,9])")
    sp.add_argument("--calibration", required=True)
    sp.add_argument("--golden", required=True)
    sp.add_argument("--config", required=True)
    sp.add_argument("--out", required=True, help="path of model_int8.onnx")
    sp.add_argument(
        "--floor", type=float, help="minimum cosine on the golden set (default: QUALITY_FLOORS['int8'], 0.98)"
    )

    sp = add("lint-hailo", cmd_lint, "check an ONNX graph against the Hailo-8 constraints")
    sp.add_argument("onnx")

    sp = add("compile", cmd_compile, "compile a HEF with the Hailo Dataflow Compiler (hailo_sdk_client)")
    sp.add_argument("--onnx", required=True, help=FILES["onnx_hailo"])
    sp.add_argument("--calibration", required=True)
    sp.add_argument("--golden", required=True)
    sp.add_argument("--config", required=True)
    sp.add_argument("--out", required=True, help="directory for model.hef and deployment_metadata.json")
    sp.add_argument("--hw-arch", default="hailo8")
    sp.add_argument("--net-name", default="tcn_encoder")
    sp.add_argument(
        "--floor", type=float, help="minimum emulator cosine vs ONNX Runtime (default: QUALITY_FLOORS['hailo'], 0.98)"
    )

    sp = add("hailo-smoke", cmd_hailo_smoke, "end-to-end check of the real DFC path on an untrained model")
    sp.add_argument("--out", required=True)
    sp.add_argument("--hw-arch", default="hailo8")
    sp.add_argument("--allow-double", action="store_true", help=argparse.SUPPRESS)

    sp = add("keygen", cmd_keygen, "write an ed25519 key pair (PEM; private key mode 0600)")
    sp.add_argument("--out", required=True, help="private key path; public key at <out>.pub")
    sp.add_argument("--public")
    sp.add_argument("--force", action="store_true")

    sp = add("manifest", cmd_manifest, "write manifest.json (and .sig with a key) for a release directory")
    sp.add_argument("--release", required=True)
    sp.add_argument("--model-version", required=True)
    sp.add_argument("--signing-key")

    sp = add("verify", cmd_verify, "verify a release's signature, names, sizes and digests")
    sp.add_argument("--release", required=True)
    sp.add_argument("--public-key", required=True)

    for name, fn, help in (
        (
            "build",
            cmd_build,
            "checkpoint -> complete release directory (export, golden, calibration, int8, HEF, manifest)",
        ),
        (
            "adopt",
            cmd_adopt,
            "an existing ONNX with the production model's interface (imu_window [1,100,9] -> "
            "latent_embeddings [1,64]) + model_config.json -> release directory",
        ),
    ):
        sp = add(name, fn, help)
        if name == "build":
            ckpt(sp)
            sp.add_argument("--hailo-floor", type=float, help="default: QUALITY_FLOORS['hailo'] (edgeinfer_contract)")
            sp.add_argument("--hw-arch", default="hailo8")
            sp.add_argument("--opset", type=int, default=13)
            sp.add_argument(
                "--compile", choices=["auto", "yes", "no"], default="auto", help="auto: when the DFC is importable"
            )
            sp.add_argument(
                "--force", action="store_true", help="rebuild even if --out holds this checkpoint's release"
            )
        else:
            sp.add_argument("--onnx", required=True)
            sp.add_argument("--config", required=True)
            sp.add_argument("--model-id")
        sp.add_argument("--out", required=True, help="release directory (replaced atomically)")
        sp.add_argument("--model-version", required=True)
        sp.add_argument("--signing-key", help="ed25519 private key (PEM); without it the manifest is unsigned")
        sp.add_argument("--golden-count", type=int, default=64)
        sp.add_argument("--calibration-count", type=int, default=2000)
        sp.add_argument("--calibration-windows", help="your own raw windows (.npy/.csv) for calibration")
        sp.add_argument("--int8-floor", type=float, help="default: QUALITY_FLOORS['int8'] (edgeinfer_contract)")
        sp.add_argument("--require-int8", action="store_true", help="fail instead of leaving model_int8.onnx out")

    sp = add(
        "ensure",
        cmd_ensure,
        "build <artifacts>/<version> unless the same build is there (same source, config, key and arguments), "
        "then describe the release for the edges (its id, digest, files, signature)",
    )
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a trained checkpoint (build)")
    src.add_argument("--onnx", help="an ONNX with the production model's interface (adopt; needs --config)")
    src.add_argument("--demo-seed", type=int, help="an UNTRAINED demo model of this seed, made on first use")
    sp.add_argument("--artifacts", required=True, help="the artifacts directory; the release is <artifacts>/<version>")
    sp.add_argument("--model-version", required=True)
    sp.add_argument("--config", help="model_config.json")
    sp.add_argument("--signing-key", help="ed25519 private key (PEM), its public half at <key>.pub")
    sp.add_argument("--keygen", action="store_true", help="create the signing key when it is missing")
    sp.add_argument("--extra-args", default="[]", help="a JSON list of further arguments for build or adopt")
    sp.add_argument("--force", action="store_true", help="build even when the same build is there")
    sp = add(
        "capture",
        cmd_capture,
        "fetch a sidecar's sample of real traffic (GET /admin/capture) and write it as a replay file "
        "and/or a golden set",
    )
    sp.add_argument("--url", default="http://127.0.0.1:9000", help="the sidecar (default %(default)s)")
    sp.add_argument(
        "--token-file",
        help="file holding the admin bearer token (default: $EDGEINFER_ADMIN_TOKEN; never pass the token itself)",
    )
    sp.add_argument("--replay", metavar="PATH", help="write the windows here (raw float32, 3600 bytes a window)")
    sp.add_argument("--golden", metavar="PATH", help="write a golden.json of the windows here (needs --release)")
    sp.add_argument("--release", metavar="DIR", help="release whose model.onnx gives the golden embeddings")
    sp.add_argument("--count", type=int, default=64, help="golden windows, spread over the sample (default 64)")
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
