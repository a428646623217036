"""Load one release directory, pick its backend and run its golden self-check."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer_contract import (
    FILES,
    ContractError,
    GoldenSet,
    Manifest,
    ModelConfig,
    cosine,
    quality_floor,
    serving_precision,
)

from .backends import (
    Backend,
    BackendError,
    FallbackBackend,
    HailoBackend,
    HailoDevice,
    HailoUnavailable,
    OrtBackend,
    import_hailo,
)
from .config import Settings
from .model import Choice, Model


class ReleaseError(RuntimeError):
    """The release cannot be served; the message says why."""


MOTIF_PROTOTYPES = FILES["motif_prototypes"]

log = logging.getLogger("sidecar.release")


def _manifest(directory: Path) -> Manifest:
    """The release's manifest: the list of the only files the sidecar reads, with their sha256."""
    path = directory / FILES["manifest"]
    fix = f"write it with `model-tools manifest --release {directory} --model-version <version>`, then reload"
    if not path.is_file():
        raise ReleaseError(
            f"{directory} has no manifest.json: the sidecar serves only files that a manifest lists with "
            f"their sha256; {fix}"
        )
    try:
        return Manifest.load(path)
    except ContractError as exc:
        raise ReleaseError(f"manifest.json: {exc}; {fix}") from None


def _verify(directory: Path, manifest: Manifest, names: list[str]) -> None:
    """Refuse a file the manifest does not list, or one whose size or sha256 differs from it."""
    listed = {f.name for f in manifest.files}
    unlisted = [n for n in names if n not in listed]
    if unlisted:
        raise ReleaseError(
            f"manifest.json does not list {', '.join(unlisted)}: the sidecar reads only the files it lists; "
            "rebuild the release's manifest with them (model-tools manifest)"
        )
    problems = manifest.verify_files(directory, names)
    if problems:
        raise ReleaseError("release files do not match manifest.json: " + "; ".join(problems))


def _pick_onnx(directory: Path, cfg: ModelConfig, settings: Settings, listed: set[str]) -> Path:
    if settings.onnx_file != "auto":
        p = directory / settings.onnx_file
        if settings.onnx_file not in listed:
            raise ReleaseError(f"EDGEINFER_ONNX_FILE={settings.onnx_file}: manifest.json does not list it")
        if not p.is_file():
            raise ReleaseError(f"EDGEINFER_ONNX_FILE={settings.onnx_file}: {p} does not exist in the release")
        return p
    names = [FILES["onnx_batch"], FILES["onnx"]] if settings.max_batch > 1 else [FILES["onnx"], FILES["onnx_batch"]]
    declared = (cfg.raw.get("files") or {}).get("onnx_model")
    if isinstance(declared, str) and "/" not in declared:
        names.append(declared)
    for name in names:
        if name in listed and (directory / name).is_file():
            return directory / name
    raise ReleaseError(f"{directory}: no ONNX model that manifest.json lists (looked for {', '.join(names)})")


def _motifs(path: Path, cfg: ModelConfig) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
        protos = np.asarray(data["prototypes"] if isinstance(data, dict) else data, dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"{MOTIF_PROTOTYPES}: expected {{'prototypes': [K][{cfg.latent_dim}]}}: {exc}") from None
    if protos.ndim != 2 or protos.shape[1] != cfg.latent_dim or not np.isfinite(protos).all():
        raise ReleaseError(
            f"{MOTIF_PROTOTYPES}: expected [K][{cfg.latent_dim}] finite numbers, got shape {list(protos.shape)}"
        )
    return protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)


def _hailo_input_units(path: Path) -> str:
    """``raw`` when deployment_metadata.json says the HEF normalizes on chip, else ``normalized``."""
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        return "normalized"
    if isinstance(meta, dict) and meta.get("input_units") == "raw":
        return "raw"
    return "normalized"


def choose_backend(settings: Settings, hef: Path, hef_name: str | None, listed: set[str]) -> Choice:
    """EDGEINFER_BACKEND, and for ``auto`` the first missing piece of the Hailo path.

    Whether the HEF loads is known only once HailoRT has opened it: a fallback then
    replaces the choice (``hailo_fallback_load``).
    """
    if settings.backend == "onnxruntime":
        return Choice(False, "configured", "EDGEINFER_BACKEND=onnxruntime")
    if settings.backend == "hailo":
        return Choice(True, "configured", f"EDGEINFER_BACKEND=hailo: {hef.name} on {settings.hailo_device}")
    device = settings.hailo_device
    if not device.exists():
        return Choice(False, "auto_no_device", f"EDGEINFER_BACKEND=auto: no {device}")
    if import_hailo() is None:
        return Choice(False, "auto_no_hailort", "EDGEINFER_BACKEND=auto: hailo_platform (HailoRT) is not installed")
    if not hef.is_file():
        return Choice(False, "auto_no_hef", f"EDGEINFER_BACKEND=auto: the release has no HEF ({hef.name})")
    if hef_name is not None and hef_name not in listed:
        return Choice(False, "auto_no_hef", f"EDGEINFER_BACKEND=auto: manifest.json does not list {hef_name}")
    return Choice(True, "auto_hailo", f"EDGEINFER_BACKEND=auto: {device} and a loadable HEF ({hef.name})")


def _build_quality(manifest: Manifest, backend: str, served_file: str) -> dict[str, Any] | None:
    """What the build measured for the way this release now serves (int8 or hailo); None for fp32."""
    record = manifest.quality.get(serving_precision(backend, served_file))
    return record.to_dict() if record is not None else None


def _release_directory(settings: Settings, last_good: bool) -> Path:
    """EDGEINFER_MODEL_DIR (or EDGEINFER_LAST_GOOD_DIR) resolved now: ``current`` may have moved."""
    variable, where = (
        ("EDGEINFER_LAST_GOOD_DIR", settings.last_good_dir)
        if last_good
        else ("EDGEINFER_MODEL_DIR", settings.model_dir)
    )
    if where is None:
        raise ReleaseError(f"{variable} is not set")
    directory = Path(os.path.realpath(where))
    if not directory.is_dir():
        raise ReleaseError(f"{variable}={where}: {directory} is not a directory")
    return directory


def _config_and_golden(directory: Path, manifest: Manifest) -> tuple[ModelConfig, GoldenSet]:
    """model_config.json and golden.json, verified against the manifest, and made with the same normalization."""
    if not (directory / FILES["golden"]).is_file():
        raise ReleaseError("golden.json is missing: the release cannot pass its self-check without a golden set")
    _verify(directory, manifest, [FILES["config"], FILES["golden"]])
    try:
        cfg = ModelConfig.load(directory / FILES["config"], default_model_id=directory.name)
    except ContractError as exc:
        raise ReleaseError(f"model_config.json: {exc}") from None
    try:
        golden = GoldenSet.load(directory / FILES["golden"])
    except ContractError as exc:
        raise ReleaseError(f"golden.json: {exc}") from None
    if golden.normalization_hash and golden.normalization_hash != cfg.normalization_hash:
        raise ReleaseError(
            f"golden.json was made with normalization {golden.normalization_hash[:12]}, the model config has {cfg.normalization_hash[:12]}"
        )
    return cfg, golden


def _hailo_files(hef: Path, hef_name: str | None, listed: set[str], hailo_device: HailoDevice | None) -> list[str]:
    """The release's files that the Hailo backend reads (the HEF when inside it, the deployment
    metadata when listed), once the device owner and the HEF are known to exist."""
    if hailo_device is None:
        hp = import_hailo()
        if hp is None:
            raise ReleaseError("EDGEINFER_BACKEND=hailo but the hailo_platform module (HailoRT) is not installed")
        raise ReleaseError("hailo backend requested but no HailoRT device owner was created")
    if not hef.is_file():
        raise ReleaseError(f"EDGEINFER_HEF_PATH: {hef} does not exist")
    names: list[str] = [] if hef_name is None else [hef_name]
    if FILES["hailo_metadata"] in listed:
        names.append(FILES["hailo_metadata"])
    return names


def _listed_motifs(motifs: Path, listed: set[str]) -> list[str]:
    """The motif prototypes' file when the manifest lists it; an unlisted one is ignored, with a warning."""
    if motifs.name in listed:
        return [motifs.name]
    if motifs.is_file():
        log.warning("%s: ignoring %s, which manifest.json does not list", motifs.parent, motifs.name)
    return []


def _open_backend(
    settings: Settings,
    hailo_device: HailoDevice | None,
    choice: Choice,
    onnx_path: Path,
    hef: Path,
    on_chip_normalization: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[Backend, Choice, HailoUnavailable | None]:
    """The backend the choice asks for: Hailo (with ONNX Runtime behind it for a run-time fallback),
    or ONNX Runtime, also when the HEF does not load; then the choice says so and the HailoRT
    error is returned."""
    fallback: HailoUnavailable | None = None
    if choice.hailo and hailo_device is not None:
        try:
            primary = HailoBackend(hailo_device, hef, settings.hailo_timeout_ms, on_chip_normalization)
            return FallbackBackend(primary, lambda: OrtBackend(onnx_path, settings.threads)), choice, None
        except HailoUnavailable as exc:
            fallback = exc
            choice = Choice(False, "hailo_fallback_load", f"hailo fell back at load: {exc}")
        except BackendError as exc:
            raise ReleaseError(str(exc)) from None
    try:
        return OrtBackend(onnx_path, settings.threads), choice, fallback
    except BackendError as exc:
        raise ReleaseError(str(exc)) from None


def load_release(settings: Settings, hailo_device: HailoDevice | None, last_good: bool = False) -> Model:
    """Resolve EDGEINFER_MODEL_DIR now (the ``current`` symlink may have moved), load and self-check it;
    with ``last_good``, EDGEINFER_LAST_GOOD_DIR instead.

    Every file read is one that manifest.json lists, checked against its size and sha256 first.
    """
    directory = _release_directory(settings, last_good)
    manifest = _manifest(directory)
    listed = {f.name for f in manifest.files}
    cfg, golden = _config_and_golden(directory, manifest)
    onnx_path = _pick_onnx(directory, cfg, settings, listed)
    used = [onnx_path.name]

    hef = Path(os.path.realpath(directory / settings.hef_path))  # an absolute path stays as it is
    # A HEF inside the release is read only when the manifest lists it; one outside it is the
    # operator's explicit EDGEINFER_HEF_PATH.
    hef_name = hef.relative_to(directory).as_posix() if hef.is_relative_to(directory) else None
    choice = choose_backend(settings, hef, hef_name, listed)
    if choice.hailo:
        used += _hailo_files(hef, hef_name, listed, hailo_device)
    motifs = directory / MOTIF_PROTOTYPES
    used += _listed_motifs(motifs, listed)
    _verify(directory, manifest, used)
    prototypes = _motifs(motifs, cfg) if motifs.name in used else None

    norm = cfg.normalization
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    metadata = directory / FILES["hailo_metadata"]
    raw = choice.hailo and metadata.name in used and _hailo_input_units(metadata) == "raw"
    backend, choice, fallback = _open_backend(
        settings, hailo_device, choice, onnx_path, hef, (mean, std) if raw else None
    )
    model = Model(
        directory=directory,
        version=settings.model_version or manifest.model_version,
        sha256=manifest.digest,
        onnx_file=onnx_path.name,
        hef_file=hef.name,
        config=cfg,
        backend=backend,
        mean=mean,
        std=std,
        channel_order=norm.channel_order,
        self_check={},
        choice=choice,
        motif_prototypes=prototypes,
        hailo_fallback=str(fallback) if fallback is not None else None,
        hailo_fallback_status=fallback.status if fallback is not None else None,
    )
    try:
        model.self_check = self_check(model, golden, settings, onnx_path.name)
    except Exception:
        backend.close()
        raise
    model.build_quality = _build_quality(manifest, model.backend_name, model.served_file)
    return model


def self_check(model: Model, golden: GoldenSet, settings: Settings, onnx_name: str) -> dict[str, Any]:
    """Run every golden window through the backend; refuse the model below the cosine floor.

    The floor is the one of the backend that answered: when Hailo fell back to the CPU
    during the check, the CPU's answers are held to the CPU's floor.
    """
    raw = np.asarray(golden.windows, dtype=np.float32)
    t0 = time.perf_counter()
    try:
        out = model.backend.run(model.normalize(raw))
    except Exception as exc:
        raise ReleaseError(f"self-check: the backend failed on the golden windows: {exc}") from exc
    elapsed = (time.perf_counter() - t0) * 1000
    if settings.golden_min_cosine is not None:
        floor = settings.golden_min_cosine
    else:
        floor = quality_floor(model.backend_name, onnx_name)
    if out.shape != (len(golden), len(golden.embeddings[0])):
        raise ReleaseError(
            f"self-check: the model returned shape {list(out.shape)}, golden.json has {len(golden)}x{len(golden.embeddings[0])}"
        )
    if out.shape[1] != model.config.latent_dim:
        raise ReleaseError(
            f"self-check: the model returns {out.shape[1]} dims, model_config.json says {model.config.latent_dim}"
        )
    # cosine() counts a NaN or Infinity as -1; the count of such windows is named in the refusal.
    non_finite = int((~np.isfinite(out)).any(axis=1).sum())
    cosines = [cosine(a.tolist(), b) for a, b in zip(out, golden.embeddings, strict=True)]
    worst = -1.0 if non_finite else min(cosines)
    result = {
        "passed": worst >= floor,
        "windows": len(golden),
        "min_cosine": round(worst, 6),
        "floor": floor,
        "backend": model.backend_name,
        "ms": round(elapsed, 2),
    }
    if worst < floor:
        reason = f"self-check failed: min cosine {worst:.6f} over {len(golden)} golden windows is below {floor}"
        if non_finite:
            reason += f": the model returned non-finite values (NaN or Infinity) for {non_finite} of them"
        raise ReleaseError(reason)
    return result
