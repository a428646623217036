"""``ensure``: the release GPUSRV serves for a deploy, built unless the same one is built already,
and described for the edges, in one call (the edgeinfer_build role runs this alone).

A build is the same when its fingerprint is: the mode (checkpoint, adopt, demo), the source's
sha256, the config, the version, the signing key's path and its public half's sha256, and the
extra build arguments. The fingerprint of the last build of a version is kept beside it as
``<artifacts>/<version>.build.json``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgeinfer_contract import FILES, ContractError, Manifest, sha256_file

from .checks import check_model_version, check_out
from .errors import InputError, ModelToolsError, SignatureError

VERSION_OPTION = "--model-version (edgeinfer_build_model_version)"
# What ensure keeps beside the releases in the artifacts directory: the role's signing key
# directory, each version's fingerprint and the demo checkpoints. A version of one of these names
# would build its release over them (``keys`` over the private key).
RESERVED = ("keys", "*.build.json", "demo-untrained-seed*.pt")


def _check_version(art: Path, model_version: str, inside: dict[str, str | None]) -> Path:
    """``<artifacts>/<version>``, refused (before any work) unless the version names a release
    directory by the contract's rule, and one that holds none of ensure's own files or inputs."""
    check_model_version(model_version, VERSION_OPTION)
    for pattern in RESERVED:
        if fnmatch.fnmatchcase(model_version, pattern):
            raise InputError(
                f"{VERSION_OPTION}: {model_version!r} is a name ensure keeps beside the releases "
                f"({', '.join(RESERVED)}); choose another version, such as '1.4.0'",
                field="model_version",
            )
    out = art / model_version
    for option, path in inside.items():
        # The build replaces the whole release directory: nothing it reads may live in it.
        if path and out.resolve() in (Path(path).resolve(), *Path(path).resolve().parents):
            raise InputError(
                f"{VERSION_OPTION}: the release directory {out} would replace {option} {path}; "
                "choose another version or move that file out of it",
                field="model_version",
            )
    return out


def _signing_key(key: Path, keygen: bool) -> bytes:
    """The signing key's public half (its ``.pub``, checked against the key), the key made first when
    asked and missing."""
    from .signing import keygen as make_key
    from .signing import read_signing_key

    if not key.exists() and keygen:
        check_out(key, "--signing-key")
        make_key(str(key), None, False)
    pub = Path(f"{key}.pub")
    missing = [str(p) for p in (key, pub) if not p.exists()]
    if missing:
        fix = (
            f"write the public half with: openssl pkey -in {key} -pubout -out {pub}"
            if key.exists()
            else "pass --keygen to create it (edgeinfer_build_keygen=true in the role), or point --signing-key at the key"
        )
        raise InputError(f"signing key: {' and '.join(missing)} missing: {fix}")
    public = read_signing_key(key)[1]
    published = pub.read_bytes()
    if public.strip() != published.strip():
        # The edges trust the .pub: a release signed by another key would be refused on every one.
        raise InputError(
            f"--signing-key {key}: {pub} is not its public half; write it again with: "
            f"openssl pkey -in {key} -pubout -out {pub}"
        )
    os.chmod(key, 0o600)  # only its owner reads it
    return published


def _unverified(out: Path, public_key: bytes | None) -> str | None:
    """Why the release at ``out`` does not verify (with the key, when the build signs), or None."""
    from .signing import verify_release

    try:
        if public_key is not None:
            verify_release(out, public_key)
            return None
        problems = Manifest.load(out / FILES["manifest"]).verify_files(out)
    except ModelToolsError as exc:
        return exc.message
    except (OSError, ContractError) as exc:
        return str(exc)
    return "; ".join(problems) or None


def describe(out: Path, source: Path, built: bool, signed: bool) -> dict[str, Any]:
    """What the edges need to know of a built release (the edgeinfer role's edgeinfer_release_source).

    ``signed``: its signature verified against the build's key, not merely that a .sig is there.
    """
    manifest = Manifest.load(out / FILES["manifest"])
    try:
        config = json.loads((out / FILES["config"]).read_text())
    except (OSError, ValueError):
        config = {}
    export_info = config.get("export_info") or {}
    return {
        "dir": str(out),
        "model_version": manifest.model_version,
        "digest": manifest.digest,
        "release": manifest.release_id,
        # What the build recorded of its source: a checkpoint made by ``init`` is untrained too.
        "untrained": bool(manifest.meta.get("untrained", export_info.get("untrained", False))),
        "source": str(source),
        "source_sha256": sha256_file(source),
        "files": [f.to_dict() for f in manifest.files],
        "size": sum(f.size for f in manifest.files),
        # Whether the build signed it, and the id of the key it names; no key travels with the
        # release: each edge checks the signature against its own trusted keys.
        "signed": signed,
        "key_id": manifest.meta.get("signing_key_id", "") if signed else "",
        "built": built,
        "model_accuracy": export_info.get("model_accuracy", ""),
        # Without a HEF (no Hailo Dataflow Compiler on GPUSRV) every edge serves ONNX Runtime on its CPU.
        "hef": manifest.entry("hef") is not None,
    }


def _source(art: Path, mode: str, given: str | None, demo_seed: int | None) -> Path:
    """The checkpoint or ONNX to build from; the demo checkpoint is made on first use."""
    if mode == "demo":
        source = art / f"demo-untrained-seed{demo_seed}.pt"
        if not source.exists():
            from .release import init_checkpoint  # torch: only when there is a model to make

            init_checkpoint(source, seed=int(demo_seed or 0))
    else:
        source = Path(given or "")
    if not source.exists():
        raise InputError(f"{mode} source {source} does not exist")
    return source


def _run(argv: list[str], extra: list[str]) -> None:
    """``build`` or ``adopt``, given as on the command line, with the extra arguments after."""
    from .cli import parser

    try:
        args = parser().parse_args(argv + extra)
    except SystemExit:  # argparse has said what it refused on stderr; callers of ensure() get an error
        raise InputError(f"--extra-args {json.dumps(extra)}: {argv[0]} refused them (see its message)") from None
    args.fn(args)


def ensure(
    artifacts: str | Path,
    model_version: str,
    checkpoint: str | None = None,
    onnx: str | None = None,
    demo_seed: int | None = None,
    config: str | None = None,
    signing_key: str | None = None,
    keygen: bool = False,
    extra_args: list[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    if sum(x is not None for x in (checkpoint, onnx, demo_seed)) != 1:
        raise InputError("source: expected exactly one of --checkpoint, --onnx and --demo-seed")
    art = check_out(artifacts, "--artifacts", directory=True)
    inputs = {"--signing-key": signing_key, "--checkpoint": checkpoint, "--onnx": onnx, "--config": config}
    out = _check_version(art, model_version, inputs)
    art.mkdir(parents=True, exist_ok=True)
    extra = list(extra_args or [])
    public_key = _signing_key(Path(signing_key), keygen) if signing_key else None
    pub_sha = hashlib.sha256(public_key).hexdigest() if public_key is not None else ""
    mode = "checkpoint" if checkpoint else ("adopt" if onnx else "demo")
    source = _source(art, mode, checkpoint or onnx, demo_seed)
    fingerprint = {
        "mode": mode,
        "source_sha256": sha256_file(source),
        "config": config or "",
        # The content too: normalization fixed in the same model_config.json is a new build.
        "config_sha256": sha256_file(config) if config and Path(config).is_file() else "",
        "model_version": model_version,
        "signing_key": signing_key or "",
        "signing_public_key_sha256": pub_sha,
        "extra_args": extra,
    }
    marker = art / f"{model_version}.build.json"
    try:
        last = json.loads(marker.read_text())
    except (OSError, ValueError):
        last = None
    built = force or last != fingerprint or not (out / FILES["manifest"]).exists()
    result: dict[str, Any] = {}
    if not built and (problem := _unverified(out, public_key)):
        # The same build, but the release no longer is what it built: built again, and said why.
        built = True
        result["note"] = f"{out} was built again: it did not verify ({problem})"
    if built:
        argv = (
            ["adopt", "--onnx", str(source)] if mode == "adopt" else ["build", "--checkpoint", str(source), "--force"]
        )
        argv += ["--config", config] if config else []
        argv += ["--out", str(out), "--model-version", model_version]
        _run(argv + (["--signing-key", signing_key] if signing_key else []), extra)
        marker.write_text(json.dumps(fingerprint, indent=4))
        if problem := _unverified(out, public_key):
            raise SignatureError(f"{out}: the release just built does not verify: {problem}", release=str(out))
    release = describe(out, source, built=built, signed=public_key is not None)
    return {"release": release, "changed": built, **result}
