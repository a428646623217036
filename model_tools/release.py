"""``init`` and ``build``: a demo checkpoint, and a whole release from a checkpoint.

``build`` stages everything in a temp dir beside ``--out``, verifies the staged
release, and renames it into place at the end: a failure writes nothing. ``adopt``,
the same for an existing ONNX, lives in :mod:`model_tools.adopt`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeinfer_contract import FILES, ContractError, GoldenSet, Manifest, Normalization, sha256_file

from ._io import progress, staging_dir
from .adopt import adopt
from .checkpoint import LoadedModel, load_checkpoint, training_state_dict
from .checks import check_floor, check_out, check_release_arguments
from .compile_hef import compile_hef, dfc_available
from .config import DEMO_NORMALIZATION, normalization_of, provenance, read_config
from .errors import InputError, ModelToolsError
from .export import DEFAULT_OPSET, check_opset, export, reference_embeddings
from .golden import make_golden
from .model import TCNVAE, Architecture
from .release_steps import NO_HEF, edge_serving, int8_stage, seal, stage_calibration, write_model_config
from .signing import read_signing_key, verify_release

__all__ = ["NO_HEF", "adopt", "build", "init_checkpoint"]


def init_checkpoint(
    out: str | Path, seed: int = 0, config: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """A seeded, UNTRAINED checkpoint (marked so in its metadata) for demos and tests."""
    p = check_out(out, "--out")
    if p.exists() and not force:
        raise InputError(f"--out {p}: exists; pass --force to overwrite")
    cfg = read_config(config) if config else None
    arch = Architecture.from_config(cfg)
    norm = normalization_of(cfg) or DEMO_NORMALIZATION
    torch.manual_seed(seed)
    model = TCNVAE.from_architecture(arch)
    payload = {
        "model_state_dict": training_state_dict(model),
        "edgeinfer": {
            "untrained": True,
            "note": "seeded random weights for demos and tests; not a trained model",
            "seed": seed,
            "architecture": arch.to_dict(),
            "normalization": norm.to_dict(),
        },
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    # Saved to memory first: torch's archive records the name of the file it is saved to, so a
    # temp file's name would make the same seed give other bytes (and another model id).
    buf = io.BytesIO()
    torch.save(payload, buf)
    # Whole or not at all: a checkpoint cut short by a kill would be found next time and never remade.
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a checkpoint is no secret
        os.replace(tmp, p)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {
        "checkpoint": str(p),
        "sha256": sha256_file(p),
        "untrained": True,
        "seed": seed,
        "architecture": arch.to_dict(),
    }


def _build_inputs(config: str | Path | None, **flags: Any) -> str:
    """The sha256 of what a build makes its release from besides the checkpoint and version: the
    config's content and the options (counts, floors, calibration source, target, compile)."""
    # A file's content by its sha256; a path that is not a file stays as given (the build names it).
    for key, path in (("calibration_source", flags.get("calibration_source")), ("config_sha256", config)):
        flags[key] = sha256_file(path) if path and Path(path).is_file() else (str(path) if path else None)
    return hashlib.sha256(json.dumps(flags, sort_keys=True, default=str).encode()).hexdigest()


def _existing(
    out: Path, checkpoint_sha: str, model_version: str, signing_key: str | Path | None, inputs: str, want_hef: bool
) -> dict[str, Any] | None:
    """The result of a previous build of the same checkpoint, version and inputs, if it still verifies."""
    man = out / FILES["manifest"]
    if not man.is_file():
        return None
    try:
        manifest = Manifest.load(man)
    except ContractError:
        return None
    if manifest.meta.get("source_sha256") != checkpoint_sha or manifest.model_version != model_version:
        return None
    if manifest.meta.get("build_inputs_sha256") != inputs:
        return None
    if want_hef and manifest.entry("hef") is None:  # built where the Hailo DFC was missing, here now
        return None
    if signing_key is not None:
        try:
            verify_release(out, read_signing_key(signing_key)[1])
        except (ModelToolsError, OSError, ValueError):
            return None
    elif manifest.verify_files(out):
        return None
    return {"digest": manifest.digest, "files": [f.name for f in manifest.files], "signed": signing_key is not None}


def _normalization(cfg_in: dict[str, Any] | None, loaded: LoadedModel) -> Normalization:
    """The config's z-score parameters, else the checkpoint's; a release cannot be built without."""
    norm = normalization_of(cfg_in) or loaded.normalization
    if norm is None:
        raise InputError(
            "normalization: the checkpoint carries no z-score parameters; pass --config model_config.json "
            "(its normalization block: mean[9], std[9], channel_order)"
        )
    return norm


def _stage_golden(stage: Path, loaded: LoadedModel, norm: Normalization, model_id: str, count: int) -> GoldenSet:
    """golden.json: fixed windows and the PyTorch model's embeddings of them, the references of every check."""
    progress(f"golden: {count} windows")
    golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, model_id, count)
    golden.save(stage / FILES["golden"])
    return golden


def _hailo_stage(
    stage: Path,
    calib: np.ndarray,
    golden: GoldenSet,
    norm: Normalization,
    hw_arch: str,
    floor: float | None,
    compile: bool | None,
    calibration_sha256: str,
) -> dict[str, Any]:
    """The HEF, compiled when asked (``compile``) or, by default, when the Hailo DFC is importable."""
    want_compile = dfc_available() if compile is None else compile
    if want_compile:
        return compile_hef(
            stage / FILES["onnx_hailo"],
            calib,
            golden,
            norm,
            stage,
            hw_arch,
            floor=floor,
            calibration_sha256=calibration_sha256,
        )
    return {
        "skipped": True,
        "note": f"hailo_sdk_client (Hailo DFC) is not importable here: {NO_HEF}",
    }


def _built_config(
    stage: Path,
    loaded: LoadedModel,
    cfg_in: dict[str, Any] | None,
    norm: Normalization,
    model_id: str,
    model_version: str,
    opset: int,
) -> dict[str, Any]:
    """model_config.json: the checkpoint's architecture and provenance, over the given config if any."""
    prov = provenance(opset, loaded.sha256, loaded.path.name, source_kind="checkpoint")
    files = {
        "onnx_model": FILES["onnx"],
        "pytorch_checkpoint": loaded.path.name,
        "size_mb": round((stage / FILES["onnx"]).stat().st_size / 2**20, 2),
    }
    return write_model_config(
        stage,
        files,
        norm=norm,
        model_id=model_id,
        model_version=model_version,
        arch=loaded.arch,
        prov=prov,
        untrained=loaded.untrained,
        base=cfg_in,
    )


def _check_arguments(
    model_version: str,
    out: str | Path,
    signing_key: str | Path | None,
    golden_count: int,
    calibration_count: int,
    int8_floor: float | None,
    hailo_floor: float | None,
    opset: int,
) -> Path:
    """Every argument of ``build``, checked before the first model is loaded: a mistake costs no
    export. Returns the release directory."""
    out_dir = check_release_arguments(model_version, out, signing_key, golden_count, calibration_count, int8_floor)
    check_floor(hailo_floor, "--hailo-floor")
    check_opset(opset, ("cpu", "batch", "hailo"))
    return out_dir


def build(
    checkpoint: str | Path,
    out: str | Path,
    model_version: str,
    signing_key: str | Path | None = None,
    config: str | Path | None = None,
    model_id: str | None = None,
    golden_count: int = 64,
    calibration_count: int = 2000,
    calibration_source: str | Path | None = None,
    int8_floor: float | None = None,
    require_int8: bool = False,
    hailo_floor: float | None = None,
    hw_arch: str = "hailo8",
    opset: int = DEFAULT_OPSET,
    compile: bool | None = None,
    force: bool = False,
    trust_pickle: bool = False,
) -> dict[str, Any]:
    """Checkpoint -> a verified (and signed, with a key) release directory at ``out``.

    ``int8_floor`` / ``hailo_floor``: None for edgeinfer_contract's QUALITY_FLOORS.
    """
    out_dir = _check_arguments(
        model_version, out, signing_key, golden_count, calibration_count, int8_floor, hailo_floor, opset
    )
    cfg_in = read_config(config) if config else None
    loaded = load_checkpoint(checkpoint, cfg_in, trust_pickle=trust_pickle)
    norm = _normalization(cfg_in, loaded)
    mid = model_id or loaded.default_model_id
    result: dict[str, Any] = {
        "changed": True,
        "release": str(out_dir),
        "checkpoint_sha256": loaded.sha256,
        "model_version": model_version,
        "model_id": mid,
    }
    inputs = _build_inputs(
        config, model_id=mid, golden_count=golden_count, calibration_count=calibration_count,
        calibration_source=calibration_source, int8_floor=int8_floor, require_int8=require_int8,
        hailo_floor=hailo_floor, hw_arch=hw_arch, opset=opset, compile=compile,
    )  # fmt: skip
    want_hef = dfc_available() if compile is None else compile
    if not force and (prev := _existing(out_dir, loaded.sha256, model_version, signing_key, inputs, want_hef)):
        note = "a verified release of this checkpoint, version and options already exists; pass --force to rebuild"
        return {**result, "changed": False, **prev, "note": note}
    result["untrained"] = loaded.untrained
    with staging_dir(out_dir) as stage:
        result["export"] = export(loaded, norm, stage, ("cpu", "batch", "hailo"), opset, mid)
        golden = _stage_golden(stage, loaded, norm, mid, golden_count)
        calib, result["calibration"] = stage_calibration(stage, norm, calibration_count, calibration_source)
        calib_sha = sha256_file(stage / FILES["calibration"])
        result["calibration"]["sha256"] = calib_sha
        result["int8"] = int8_stage(stage, calib, golden, norm, int8_floor, require_int8)
        result["hailo"] = _hailo_stage(stage, calib, golden, norm, hw_arch, hailo_floor, compile, calib_sha)
        result["edge_serving"] = edge_serving(result["hailo"])
        cfg = _built_config(stage, loaded, cfg_in, norm, mid, model_version, opset)
        source = {"source_sha256": loaded.sha256, "source_kind": "checkpoint", "untrained": loaded.untrained}
        seal(stage, out_dir, model_version, signing_key, result, cfg, dict(source, build_inputs_sha256=inputs))
    return result
