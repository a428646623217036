"""``ensure``: the release GPUSRV serves for a deploy, built unless the same one is built already,
and described for the edges, in one call (the edgeinfer_build role runs this alone).

A build is the same when its fingerprint is: the mode (checkpoint, adopt, demo), the source's
sha256, the config, the version, the signing key's path and its public half's sha256, and the
extra build arguments. The fingerprint of the last build of a version is kept beside it as
``<artifacts>/<version>.build.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgeinfer_contract import FILES, Manifest, sha256_file

from .errors import InputError


def _signing_key(key: Path, keygen: bool) -> str:
    """The sha256 of the signing key's public half, the key made first when asked and missing."""
    from .signing import keygen as make_key

    if not key.exists() and keygen:
        make_key(str(key), None, False)
    pub = Path(f"{key}.pub")
    missing = [str(p) for p in (key, pub) if not p.exists()]
    if missing:
        fix = (
            f"write the public half with: openssl pkey -in {key} -pubout -out {pub}"
            if key.exists()
            else "set edgeinfer_build_keygen=true to create it, or point edgeinfer_build_signing_key at the key"
        )
        raise InputError(f"signing key: {' and '.join(missing)} missing: {fix}")
    os.chmod(key, 0o600)  # only its owner reads it
    return hashlib.sha256(pub.read_bytes()).hexdigest()


def describe(out: Path, source: Path, untrained: bool, built: bool) -> dict[str, Any]:
    """What the edges need to know of a built release (the edgeinfer role's edgeinfer_release_source)."""
    manifest = Manifest.load(out / FILES["manifest"])
    signed = (out / f"{FILES['manifest']}.sig").exists()
    try:
        config = json.loads((out / FILES["config"]).read_text())
    except (OSError, ValueError):
        config = {}
    return {
        "dir": str(out),
        "model_version": manifest.model_version,
        "digest": manifest.digest,
        "release": manifest.release_id,
        "untrained": untrained,
        "source": str(source),
        "source_sha256": sha256_file(source),
        "files": [f.to_dict() for f in manifest.files],
        "size": sum(f.size for f in manifest.files),
        # Whether the build signed it, and the id of the key it names; no key travels with the
        # release: each edge checks the signature against its own trusted keys.
        "signed": signed,
        "key_id": manifest.meta.get("signing_key_id", "") if signed else "",
        "built": built,
        "model_accuracy": (config.get("export_info") or {}).get("model_accuracy", ""),
        # Without a HEF (no Hailo Dataflow Compiler on GPUSRV) every edge serves ONNX Runtime on its CPU.
        "hef": manifest.entry("hef") is not None,
    }


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
    from .cli import parser

    if sum(x is not None for x in (checkpoint, onnx, demo_seed)) != 1:
        raise InputError("source: expected exactly one of --checkpoint, --onnx and --demo-seed")
    art = Path(artifacts)
    art.mkdir(parents=True, exist_ok=True)
    extra = list(extra_args or [])
    pub_sha = _signing_key(Path(signing_key), keygen) if signing_key else ""
    mode = "checkpoint" if checkpoint else ("adopt" if onnx else "demo")
    if mode == "demo":
        source = art / f"demo-untrained-seed{demo_seed}.pt"
        if not source.exists():
            from .release import init_checkpoint  # torch: only when there is a model to make

            init_checkpoint(source, seed=int(demo_seed or 0))
    else:
        source = Path(checkpoint or onnx or "")
    if not source.exists():
        raise InputError(f"{mode} source {source} does not exist")
    out = art / model_version
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
    if built:
        argv = (
            ["adopt", "--onnx", str(source)] if mode == "adopt" else ["build", "--checkpoint", str(source), "--force"]
        )
        argv += ["--config", config] if config else []
        argv += ["--out", str(out), "--model-version", model_version]
        argv += ["--signing-key", signing_key] if signing_key else []
        args = parser().parse_args(argv + extra)
        args.fn(args)
        marker.write_text(json.dumps(fingerprint, indent=4))
    return {"release": describe(out, source, untrained=mode == "demo", built=built), "changed": built}
