"""Load one release directory, pick its backend and run its golden self-check."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
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


class ReleaseError(RuntimeError):
    """The release cannot be served; the message says why."""


@dataclass(frozen=True)
class Choice:
    """Which backend the loader picked and why: ``code`` for metrics, ``reason`` for people."""

    hailo: bool
    code: str
    reason: str


@dataclass
class Model:
    """A release that has passed its self-check and can serve."""

    directory: Path
    version: str
    sha256: str
    onnx_file: str
    hef_file: str
    config: ModelConfig
    backend: Backend
    mean: np.ndarray
    std: np.ndarray
    channel_order: tuple[str, ...]
    self_check: dict[str, Any]
    choice: Choice
    motif_prototypes: np.ndarray | None = None
    hailo_fallback: str | None = None
    hailo_fallback_status: int | None = None
    build_quality: dict[str, Any] | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def served_file(self) -> str:
        return self.hef_file if self.backend_name == "hailo" else self.onnx_file

    @property
    def ran_out_of_hailo(self) -> bool:
        return isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason is not None

    @property
    def backend_reason(self) -> str:
        """Why this backend serves now: the loader's choice, or the fallback that overrode it since."""
        if isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason:
            return f"hailo fell back at run time: {self.backend.fallback_reason}"
        return self.choice.reason

    @property
    def backend_reason_code(self) -> str:
        return "hailo_fallback_run_time" if self.ran_out_of_hailo else self.choice.code

    @property
    def fallback_status(self) -> int | None:
        if isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason:
            return self.backend.fallback_status
        return self.hailo_fallback_status

    # Computed once: each is a sha256 over the canonical JSON of the normalization, and
    # every response names the stamp.
    @cached_property
    def stamp(self) -> dict[str, Any]:
        return self.config.stamp

    @cached_property
    def normalization_hash(self) -> str:
        return self.config.normalization_hash

    @property
    def fallback_reason(self) -> str | None:
        if isinstance(self.backend, FallbackBackend) and self.backend.fallback_reason:
            return self.backend.fallback_reason
        return self.hailo_fallback

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.mean) / self.std).astype(np.float32, copy=False)

    def motif_scores(self, emb: np.ndarray) -> np.ndarray | None:
        """Cosine of each embedding with each shipped prototype; None when the release has none."""
        if self.motif_prototypes is None:
            return None
        e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return e @ self.motif_prototypes.T

    def info(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "model_sha256": self.sha256,
            "model_dir": str(self.directory),
            "served_file": self.served_file,
            "backend": self.backend_name,
            "backend_detail": self.backend.detail,
            "backend_reason": self.backend_reason,
            "backend_reason_code": self.backend_reason_code,
            "hailo_fallback": self.fallback_reason,
            "hailo_status": self.fallback_status,
            "build_quality": self.build_quality,
            "normalization_hash": self.normalization_hash,
            "embedding_stamp": self.stamp,
            "untrained": self.config.untrained,
            "self_check": self.self_check,
        }


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


def load_release(settings: Settings, hailo_device: HailoDevice | None, last_good: bool = False) -> Model:
    """Resolve EDGEINFER_MODEL_DIR now (the ``current`` symlink may have moved), load and self-check it;
    with ``last_good``, EDGEINFER_LAST_GOOD_DIR instead.

    Every file read is one that manifest.json lists, checked against its size and sha256 first.
    """
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
    manifest = _manifest(directory)
    listed = {f.name for f in manifest.files}
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

    onnx_path = _pick_onnx(directory, cfg, settings, listed)
    used = [onnx_path.name]

    hef = Path(os.path.realpath(directory / settings.hef_path))  # an absolute path stays as it is
    # A HEF inside the release is read only when the manifest lists it; one outside it is the
    # operator's explicit EDGEINFER_HEF_PATH.
    hef_name = hef.relative_to(directory).as_posix() if hef.is_relative_to(directory) else None
    choice = choose_backend(settings, hef, hef_name, listed)
    want_hailo = choice.hailo
    metadata = directory / FILES["hailo_metadata"]
    if want_hailo:
        if hailo_device is None:
            hp = import_hailo()
            if hp is None:
                raise ReleaseError("EDGEINFER_BACKEND=hailo but the hailo_platform module (HailoRT) is not installed")
            raise ReleaseError("hailo backend requested but no HailoRT device owner was created")
        if not hef.is_file():
            raise ReleaseError(f"EDGEINFER_HEF_PATH: {hef} does not exist")
        if hef_name is not None:
            used.append(hef_name)
        if metadata.name in listed:
            used.append(metadata.name)
    motifs = directory / MOTIF_PROTOTYPES
    if motifs.name in listed:
        used.append(motifs.name)
    elif motifs.is_file():
        log.warning("%s: ignoring %s, which manifest.json does not list", directory, motifs.name)
    _verify(directory, manifest, used)
    prototypes = _motifs(motifs, cfg) if motifs.name in used else None

    norm = cfg.normalization
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    backend: Backend | None = None
    fallback: HailoUnavailable | None = None
    if want_hailo and hailo_device is not None:
        raw = metadata.name in used and _hailo_input_units(metadata) == "raw"
        try:
            primary = HailoBackend(hailo_device, hef, settings.hailo_timeout_ms, (mean, std) if raw else None)
            backend = FallbackBackend(primary, lambda: OrtBackend(onnx_path, settings.threads))
        except HailoUnavailable as exc:
            fallback = exc
            choice = Choice(False, "hailo_fallback_load", f"hailo fell back at load: {exc}")
        except BackendError as exc:
            raise ReleaseError(str(exc)) from None

    if backend is None:
        try:
            backend = OrtBackend(onnx_path, settings.threads)
        except BackendError as exc:
            raise ReleaseError(str(exc)) from None

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
