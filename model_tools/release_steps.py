"""The steps ``build`` and ``adopt`` share inside a release's staging directory.

Calibration, the optional INT8 graph, ``model_config.json``, and at the end the
manifest: written, signed with a key, verified, and only then renamed into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer_contract import FILES, BuildQuality, GoldenSet, Manifest, Normalization, sha256_file

from ._io import progress, replace_dir, write_json
from .calibrate import make_calibration, save_calibration
from .config import build_model_config
from .errors import ModelToolsError, QuantizationError
from .quantize import quantize_check
from .signing import ROLE_OF, read_signing_key, verify_release, write_manifest

# What a build says about how its edges will serve, in its output and its --json
# (``edge_serving``), so that the deploy's summary can repeat it.
NO_HEF = "no HEF: edges will serve ONNX Runtime on CPU"


def edge_serving(hailo: dict[str, Any]) -> str:
    if hailo.get("skipped"):
        return NO_HEF
    return (
        f"{FILES['hef']} for {hailo['hw_arch']} (HailoRT {hailo.get('hailort_version') or 'unknown'}): edges with "
        "a Hailo-8 serve it; the others, and any whose HailoRT refuses it, serve ONNX Runtime on CPU"
    )


def stage_calibration(
    stage: Path, norm: Normalization, count: int, source: str | Path | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The calibration set, saved in the stage; with its report less the per-channel figures."""
    calib, report = make_calibration(norm, count, source=source)
    save_calibration(stage / FILES["calibration"], calib)
    return calib, {k: v for k, v in report.items() if k != "channels"}


def int8_stage(
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


def write_model_config(stage: Path, files: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """model_config.json, whose ``files`` block also names, by role, every release file in the stage."""
    files.update({role: name for name, role in ROLE_OF.items() if (stage / name).is_file()})
    cfg = build_model_config(files=files, **fields)
    write_json(stage / FILES["config"], cfg)
    return cfg


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
        verify_release(stage, read_signing_key(signing_key)[1])
    else:
        problems = Manifest.load(stage / FILES["manifest"]).verify_files(stage)
        if problems:
            raise ModelToolsError("staged release does not match its manifest: " + "; ".join(problems))
    replace_dir(stage, out)
    return man


def seal(
    stage: Path,
    out: Path,
    model_version: str,
    signing_key: str | Path | None,
    result: dict[str, Any],
    cfg: dict[str, Any],
    source: dict[str, Any],
) -> None:
    """Manifest, signature and verification of the stage, then the rename to ``out``; ``result``
    gains what the manifest says (digest, signed, files, embedding stamp).

    ``source``: what the release was made from, for the manifest: ``source_sha256``,
    ``source_kind`` ("checkpoint" or "onnx"), ``untrained`` and, from a build, ``build_inputs_sha256``.
    """
    meta = {
        "model_id": result["model_id"],
        "source_sha256": source["source_sha256"],
        "source_kind": source["source_kind"],
        "embedding_stamp": cfg["embedding_stamp"],
        "untrained": source["untrained"],
    }
    if source.get("build_inputs_sha256"):  # a build's options; an adopted ONNX has none
        meta["build_inputs_sha256"] = source["build_inputs_sha256"]
    man = _finish(stage, out, model_version, signing_key, meta, _quality(stage, result))
    result.update(
        digest=man["digest"],
        signed=man["signed"],
        files=[f["name"] for f in man["files"]],
        embedding_stamp=cfg["embedding_stamp"]["stamp"],
    )
