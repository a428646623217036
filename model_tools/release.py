"""``init``, ``build`` and ``adopt``: whole releases in the contract layout.

``build`` and ``adopt`` stage everything in a temp dir beside ``--out``, verify the
staged release, and rename it into place at the end: a failure writes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from edgeinfer_contract import (
    FILES,
    INPUT_NAME,
    OUTPUT_NAME,
    BuildQuality,
    ContractError,
    GoldenSet,
    Manifest,
    sha256_file,
)

from ._io import progress, replace_dir, staging_dir, write_json
from .calibrate import make_calibration, save_calibration
from .checkpoint import load_checkpoint, training_state_dict
from .compile_hef import compile_hef, dfc_available
from .config import DEMO_NORMALIZATION, build_model_config, normalization_of, provenance, read_config
from .errors import InputError, ModelToolsError, QuantizationError
from .export import DEFAULT_OPSET, export, reference_embeddings
from .golden import make_golden
from .model import TCNVAE, Architecture
from .parity import check_parity, session
from .quantize import quantize_check
from .signing import ROLE_OF, public_key_of, verify_release, write_manifest
from .windows import parity_windows


def init_checkpoint(
    out: str | Path, seed: int = 0, config: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """A seeded, UNTRAINED checkpoint (marked so in its metadata) for demos and tests."""
    p = Path(out)
    if p.exists() and not force:
        raise InputError(f"{p} exists; pass --force to overwrite")
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
    torch.save(payload, p)
    return {
        "checkpoint": str(p),
        "sha256": sha256_file(p),
        "untrained": True,
        "seed": seed,
        "architecture": arch.to_dict(),
    }


def _existing(
    out: Path, checkpoint_sha: str, model_version: str, signing_key: str | Path | None
) -> dict[str, Any] | None:
    """The result of a previous build of the same checkpoint and version, if it still verifies."""
    man = out / FILES["manifest"]
    if not man.is_file():
        return None
    try:
        manifest = Manifest.load(man)
    except ContractError:
        return None
    if manifest.meta.get("source_sha256") != checkpoint_sha or manifest.model_version != model_version:
        return None
    if signing_key is not None:
        try:
            verify_release(out, public_key_of(Path(signing_key).read_bytes()))
        except (ModelToolsError, OSError, ValueError):
            return None
    elif manifest.verify_files(out):
        return None
    return {"digest": manifest.digest, "files": [f.name for f in manifest.files], "signed": signing_key is not None}


# What a build says about how its edges will serve, in its output and its --json
# (``edge_serving``), so that the deploy's summary can repeat it.
NO_HEF = "no HEF: edges will serve ONNX Runtime on CPU"


def _edge_serving(hailo: dict[str, Any]) -> str:
    if hailo.get("skipped"):
        return NO_HEF
    return (
        f"{FILES['hef']} for {hailo['hw_arch']} (HailoRT {hailo.get('hailort_version') or 'unknown'}): edges with "
        "a Hailo-8 serve it; the others, and any whose HailoRT refuses it, serve ONNX Runtime on CPU"
    )


def _quality(stage: Path, result: dict[str, Any]) -> dict[str, BuildQuality]:
    """The measured minimum cosines the manifest records: INT8 (vs golden.json) and the Hailo emulator."""

    def record(file: str, fig: dict[str, Any], floor: float, reference: str) -> BuildQuality:
        return BuildQuality(
            min_cosine=round(fig["cosine_min"], 6),
            floor=floor,
            windows=fig["windows"],
            file=file,
            sha256=sha256_file(stage / file),
            reference=reference,
        )

    quality: dict[str, BuildQuality] = {}
    int8 = result.get("int8") or {}
    if int8.get("passed") and (stage / FILES["onnx_int8"]).is_file():
        fig = int8["int8_vs_reference"]
        quality["int8"] = record(FILES["onnx_int8"], fig, int8["floor"], f"{FILES['golden']} (fp32 references)")
    hailo = result.get("hailo") or {}
    if not hailo.get("skipped") and (stage / FILES["hef"]).is_file():
        fig = hailo["fidelity"]["emulator_vs_onnxruntime"]
        reference = f"ONNX Runtime on {FILES['onnx_hailo']} (Hailo emulator, SDK_QUANTIZED)"
        quality["hailo"] = record(FILES["hef"], fig, fig["floor"], reference)
    return quality


def _finish(
    stage: Path,
    out: Path,
    model_version: str,
    signing_key: str | Path | None,
    meta: dict[str, Any],
    quality: dict[str, BuildQuality],
) -> dict[str, Any]:
    roles = {p.name: ROLE_OF[p.name] for p in sorted(stage.iterdir()) if p.is_file() and p.name in ROLE_OF}
    man = write_manifest(stage, model_version, signing_key, roles=roles, quality=quality, **meta)
    if signing_key is not None:
        verify_release(stage, public_key_of(Path(signing_key).read_bytes()))
    else:
        problems = Manifest.load(stage / FILES["manifest"]).verify_files(stage)
        if problems:
            raise ModelToolsError("staged release does not match its manifest: " + "; ".join(problems))
    replace_dir(stage, out)
    return man


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
    out_dir = Path(out)
    if not model_version:
        raise InputError("model_version: expected a non-empty string such as '1.2.0'")
    cfg_in = read_config(config) if config else None
    loaded = load_checkpoint(checkpoint, cfg_in, trust_pickle=trust_pickle)
    norm = normalization_of(cfg_in) or loaded.normalization
    if norm is None:
        raise InputError(
            "normalization: the checkpoint carries no z-score parameters; pass --config model_config.json "
            "(its normalization block: mean[9], std[9], channel_order)"
        )
    mid = model_id or loaded.default_model_id
    if not force and (prev := _existing(out_dir, loaded.sha256, model_version, signing_key)):
        return {
            "changed": False,
            "release": str(out_dir),
            "checkpoint_sha256": loaded.sha256,
            "model_version": model_version,
            "model_id": mid,
            **prev,
            "note": "a verified release of this checkpoint and version already exists; pass --force to rebuild",
        }
    result: dict[str, Any] = {
        "changed": True,
        "release": str(out_dir),
        "checkpoint_sha256": loaded.sha256,
        "model_version": model_version,
        "model_id": mid,
        "untrained": loaded.untrained,
    }
    with staging_dir(out_dir) as stage:
        result["export"] = export(loaded, norm, stage, ("cpu", "batch", "hailo"), opset, mid)
        progress(f"golden: {golden_count} windows")
        golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, mid, golden_count)
        golden.save(stage / FILES["golden"])
        calib, calib_report = make_calibration(norm, calibration_count, source=calibration_source)
        save_calibration(stage / FILES["calibration"], calib)
        calib_report["sha256"] = sha256_file(stage / FILES["calibration"])
        result["calibration"] = {k: v for k, v in calib_report.items() if k != "channels"}
        result["int8"] = _int8_stage(stage, calib, golden, norm, int8_floor, require_int8)
        want_compile = dfc_available() if compile is None else compile
        if want_compile:
            result["hailo"] = compile_hef(
                stage / FILES["onnx_hailo"],
                calib,
                golden,
                norm,
                stage,
                hw_arch,
                floor=hailo_floor,
                calibration_sha256=calib_report["sha256"],
            )
        else:
            result["hailo"] = {
                "skipped": True,
                "note": f"hailo_sdk_client (Hailo DFC) is not importable here: {NO_HEF}",
            }
        result["edge_serving"] = _edge_serving(result["hailo"])
        prov = provenance(opset, loaded.sha256, loaded.path.name, source_kind="checkpoint")
        files = {
            "onnx_model": FILES["onnx"],
            "pytorch_checkpoint": loaded.path.name,
            "size_mb": round((stage / FILES["onnx"]).stat().st_size / 2**20, 2),
        }
        files.update({role: name for name, role in ROLE_OF.items() if (stage / name).is_file()})
        cfg = build_model_config(
            norm=norm,
            model_id=mid,
            model_version=model_version,
            arch=loaded.arch,
            prov=prov,
            untrained=loaded.untrained,
            files=files,
            base=cfg_in,
        )
        write_json(stage / FILES["config"], cfg)
        meta = {
            "model_id": mid,
            "source_sha256": loaded.sha256,
            "source_kind": "checkpoint",
            "embedding_stamp": cfg["embedding_stamp"],
            "untrained": loaded.untrained,
        }
        man = _finish(stage, out_dir, model_version, signing_key, meta, _quality(stage, result))
    result.update(
        digest=man["digest"],
        signed=man["signed"],
        files=[f["name"] for f in man["files"]],
        embedding_stamp=cfg["embedding_stamp"]["stamp"],
    )
    return result


def _int8_stage(
    stage: Path, calib: np.ndarray, golden: GoldenSet, norm: Any, floor: float | None, required: bool
) -> dict[str, Any]:
    """INT8 is optional in a release: below the floor it is left out (and said so) unless required."""
    try:
        return {
            "passed": True,
            **quantize_check(stage / FILES["onnx"], calib, golden, norm, stage / FILES["onnx_int8"], floor),
        }
    except QuantizationError as exc:
        if required:
            raise
        progress(f"quantize-check: {exc.message}")
        return {
            "passed": False,
            "skipped": True,
            "note": f"{FILES['onnx_int8']} left out: {exc.message}",
            **exc.details.get("result", {}),
        }


def _check_production_interface(proto: onnx.ModelProto, path: Path) -> None:
    inits = {i.name for i in proto.graph.initializer}
    ins = [i for i in proto.graph.input if i.name not in inits]
    dims = lambda vi: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    if [i.name for i in ins] != [INPUT_NAME] or dims(ins[0]) != [1, 100, 9]:
        raise InputError(f"onnx {path}: inputs {[(i.name, dims(i)) for i in ins]}; expected {INPUT_NAME} [1,100,9]")
    outs = list(proto.graph.output)
    if [o.name for o in outs] != [OUTPUT_NAME] or len(dims(outs[0])) != 2 or dims(outs[0])[0] != 1:
        raise InputError(f"onnx {path}: outputs {[(o.name, dims(o)) for o in outs]}; expected {OUTPUT_NAME} [1,64]")


def _batch_variant(proto: onnx.ModelProto, norm: Any) -> tuple[bytes | None, dict[str, Any]]:
    """The same graph with batch axis ``N``, kept only if it reproduces the batch-1 graph."""
    batch = onnx.ModelProto()
    batch.CopyFrom(proto)
    for vi in (batch.graph.input[0], batch.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    del batch.graph.value_info[:]
    names, windows = parity_windows(norm)
    sess = session(proto)
    ref = np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: windows[i : i + 1]})[0] for i in range(len(windows))])
    latent = ref.shape[1]
    try:
        report = check_parity(
            batch, "batch", INPUT_NAME, ["N", 100, 9], OUTPUT_NAME, ["N", latent], names, windows, ref, batched=True
        )
    except Exception as exc:  # onnxruntime refuses the graph: no batch variant
        return None, {"skipped": True, "note": f"dynamic batch not possible for this graph: {exc}"}
    if not report.passed:
        return None, {"skipped": True, "note": "; ".join(report.problems)}
    return batch.SerializeToString(), report.to_dict()


def adopt(
    onnx_path: str | Path,
    config: str | Path,
    out: str | Path,
    model_version: str,
    signing_key: str | Path | None = None,
    model_id: str | None = None,
    golden_count: int = 64,
    calibration_count: int = 2000,
    calibration_source: str | Path | None = None,
    int8_floor: float | None = None,
    require_int8: bool = False,
) -> dict[str, Any]:
    """Wrap an existing ONNX with the production model's interface (``imu_window`` [1,100,9] ->
    ``latent_embeddings`` [1,64]) into a release; references come from ONNX Runtime."""
    src, out_dir = Path(onnx_path), Path(out)
    if not model_version:
        raise InputError("model_version: expected a non-empty string such as '1.2.0'")
    if not src.is_file():
        raise InputError(f"onnx: {src} does not exist")
    cfg_in = read_config(config)
    norm = normalization_of(cfg_in)
    assert norm is not None  # read_config checked it
    proto = onnx.load(str(src))
    _check_production_interface(proto, src)
    onnx_sha = sha256_file(src)
    mid = model_id or f"tcn-vae-onnx-{onnx_sha[:12]}"
    sess = session(proto)

    def reference(x: np.ndarray) -> np.ndarray:
        return np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + 1]})[0] for i in range(len(x))])

    result: dict[str, Any] = {
        "changed": True,
        "release": str(out_dir),
        "source_onnx_sha256": onnx_sha,
        "model_version": model_version,
        "model_id": mid,
    }
    with staging_dir(out_dir) as stage:
        shutil.copyfile(src, stage / FILES["onnx"])
        blob, batch_report = _batch_variant(proto, norm)
        if blob is not None:
            (stage / FILES["onnx_batch"]).write_bytes(blob)
        result["batch"] = batch_report
        golden: GoldenSet = make_golden(
            reference, norm, mid, golden_count, reference_name="onnxruntime", source_onnx_sha256=onnx_sha
        )
        golden.save(stage / FILES["golden"])
        calib, calib_report = make_calibration(norm, calibration_count, source=calibration_source)
        save_calibration(stage / FILES["calibration"], calib)
        result["calibration"] = {k: v for k, v in calib_report.items() if k != "channels"}
        result["int8"] = _int8_stage(stage, calib, golden, norm, int8_floor, require_int8)
        result["hailo"] = {
            "skipped": True,
            "note": f"adopt has no checkpoint to export the Hailo graph from ('lint-hailo' on this ONNX lists why it cannot be compiled as is): {NO_HEF}",
        }
        result["edge_serving"] = _edge_serving(result["hailo"])
        arch = Architecture.from_config(cfg_in)
        prov = provenance(
            next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
            None,
            None,
            source_kind="onnx",
            source_onnx=src.name,
            source_onnx_sha256=onnx_sha,
        )
        files = dict(cfg_in.get("files") or {})
        files.update(onnx_model=FILES["onnx"], adopted_from=src.name)
        files.update({role: name for name, role in ROLE_OF.items() if (stage / name).is_file()})
        cfg = build_model_config(
            norm=norm,
            model_id=mid,
            model_version=model_version,
            arch=arch,
            prov=prov,
            untrained=False,
            files=files,
            base=cfg_in,
        )
        write_json(stage / FILES["config"], cfg)
        meta = {
            "model_id": mid,
            "source_sha256": onnx_sha,
            "source_kind": "onnx",
            "embedding_stamp": cfg["embedding_stamp"],
            "untrained": False,
        }
        man = _finish(stage, out_dir, model_version, signing_key, meta, _quality(stage, result))
    result.update(
        digest=man["digest"],
        signed=man["signed"],
        files=[f["name"] for f in man["files"]],
        embedding_stamp=cfg["embedding_stamp"]["stamp"],
    )
    return result
