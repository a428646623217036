"""The release format shared by the GPU-server tools and the edge runtime.

Both halves of the pipeline depend on this package and on nothing of each
other: ``model_tools`` (torch, on GPUSRV) writes releases in this format, the
``sidecar`` (no torch, on the edge) reads them. It uses the standard library
only, so the sidecar image and a bare edge Python can import it; signing needs
the ``cryptography`` package and imports it only when asked to sign or verify.

A release directory holds (see ``docs/artifacts.md``)::

    model.onnx            CPU graph, imu_window [1,100,9] -> latent_embeddings [1,64]
    model_batch.onnx      the same graph with a dynamic batch axis
    model_hailo.onnx      Hailo-8 friendly graph, [1,9,1,100] NCHW input
    model_int8.onnx       optional, INT8 static quantization of model.onnx
    model.hef             optional, compiled by the Hailo Dataflow Compiler
    model_config.json     normalization, embedding stamp, provenance
    golden.json           reference windows (raw sensor units) and embeddings
    motif_prototypes.json optional, motif prototype embeddings for /infer's motif_scores
    manifest.json         every file above with size, sha256 and role
    manifest.json.sig     ed25519 signature of manifest.json's exact bytes

A signing key is named by its key id (``key_id``): the first 16 hex digits of the
sha256 of its 32 raw public key bytes. The manifest names the key that signed it
(``signing_key_id``), the edge keeps the keys it trusts as ``trust/<key id>.pub``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "BuildQuality",
    "CHANNELS",
    "CHANNEL_ORDER",
    "ContractError",
    "FILES",
    "GoldenSet",
    "INPUT_NAME",
    "LATENT_DIM",
    "Manifest",
    "ManifestEntry",
    "ModelConfig",
    "Normalization",
    "OUTPUT_NAME",
    "QUALITY_FLOORS",
    "WINDOW",
    "embedding_stamp",
    "quality_floor",
    "serving_precision",
    "sha256_file",
    "symlink_problem",
]

INPUT_NAME = "imu_window"
OUTPUT_NAME = "latent_embeddings"
WINDOW = 100
CHANNELS = 9
LATENT_DIM = 64
CHANNEL_ORDER = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")

FILES = {
    "onnx": "model.onnx",
    "onnx_batch": "model_batch.onnx",
    "onnx_hailo": "model_hailo.onnx",
    "onnx_int8": "model_int8.onnx",
    "hef": "model.hef",
    "config": "model_config.json",
    "golden": "golden.json",
    "manifest": "manifest.json",
    "signature": "manifest.json.sig",
    "calibration": "calibration.npy",
    "hailo_metadata": "deployment_metadata.json",
    "motif_prototypes": "motif_prototypes.json",
}


class ContractError(ValueError):
    """An artifact does not follow the release format.

    ``field`` names the offending key (dotted path) so that callers can tell
    the user exactly what to fix.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _finite_floats(value: Any, field: str, length: int) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ContractError(field, f"expected a list of {length} numbers, got {type(value).__name__}")
    if len(value) != length:
        raise ContractError(field, f"expected {length} numbers, got {len(value)}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ContractError(f"{field}[{i}]", f"expected a finite number, got {v!r}")
        out.append(float(v))
    return tuple(out)


@dataclass(frozen=True)
class Normalization:
    """Per-channel z-score parameters; they travel with the model as data."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: tuple[str, ...] = CHANNEL_ORDER
    method: str = "z_score_per_channel"

    @classmethod
    def from_dict(cls, data: Any, field: str = "normalization") -> Normalization:
        if not isinstance(data, Mapping):
            raise ContractError(field, "expected an object with method, mean, std, channel_order")
        method = data.get("method", "z_score_per_channel")
        if method != "z_score_per_channel":
            raise ContractError(f"{field}.method", f"expected 'z_score_per_channel', got {method!r}")
        for key in ("mean", "std"):
            if key not in data:
                raise ContractError(f"{field}.{key}", f"missing; expected a list of {CHANNELS} numbers")
        mean = _finite_floats(data["mean"], f"{field}.mean", CHANNELS)
        std = _finite_floats(data["std"], f"{field}.std", CHANNELS)
        for i, s in enumerate(std):
            if s <= 0:
                raise ContractError(f"{field}.std[{i}]", f"expected a positive number, got {s!r}")
        order = data.get("channel_order", list(CHANNEL_ORDER))
        if (
            not isinstance(order, Sequence)
            or isinstance(order, str)
            or len(order) != CHANNELS
            or not all(isinstance(c, str) for c in order)
            or len(set(order)) != CHANNELS
        ):
            raise ContractError(f"{field}.channel_order", f"expected {CHANNELS} distinct channel names, got {order!r}")
        return cls(mean=mean, std=std, channel_order=tuple(order), method=method)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": list(self.channel_order),
        }

    def hash(self) -> str:
        """sha256 of the canonical JSON of the parameters (full hex).

        Floats are written with ``repr`` (shortest round-trip form), so the
        same float32 values read from any config give the same hash.
        """
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def embedding_stamp(model_id: str, latent_dim: int, normalization_hash: str) -> dict[str, Any]:
    """What makes two models' embeddings comparable: a silent same-dimension
    swap changes the stamp even when the shapes still match."""
    return {
        "model_id": model_id,
        "latent_dim": int(latent_dim),
        "normalization_hash": normalization_hash,
        "stamp": f"{model_id}/{int(latent_dim)}/{normalization_hash[:12]}",
    }


@dataclass(frozen=True)
class ModelConfig:
    """``model_config.json``: the origin schema, plus our additions.

    Reads the origin fixture (no hash, no stamp) as well as what model_tools
    writes; missing derived fields are computed, never invented.
    """

    raw: dict[str, Any]
    normalization: Normalization
    model_id: str
    latent_dim: int
    sequence_length: int
    input_dim: int
    untrained: bool

    @property
    def normalization_hash(self) -> str:
        return self.normalization.hash()

    @property
    def stamp(self) -> dict[str, Any]:
        return embedding_stamp(self.model_id, self.latent_dim, self.normalization_hash)

    @classmethod
    def from_dict(cls, data: Any, default_model_id: str = "unknown") -> ModelConfig:
        if not isinstance(data, Mapping):
            raise ContractError("model_config", "expected a JSON object")
        if "normalization" not in data:
            raise ContractError("normalization", "missing; model_config.json must carry the z-score parameters")
        norm = Normalization.from_dict(data["normalization"])
        declared = data.get("normalization_hash")
        if declared is not None and declared != norm.hash():
            raise ContractError(
                "normalization_hash",
                f"does not match the normalization parameters (declared {declared}, computed {norm.hash()})",
            )
        specs = data.get("model_specs", {})
        if not isinstance(specs, Mapping):
            raise ContractError("model_specs", "expected an object")
        # Older origin schema kept the architecture at the top level.
        latent = specs.get("latent_dimension", data.get("latent_dim", LATENT_DIM))
        seq = specs.get("sequence_length", data.get("sequence_length", WINDOW))
        input_dim = data.get("input_dim", CHANNELS)
        for name, value in (
            ("model_specs.latent_dimension", latent),
            ("model_specs.sequence_length", seq),
            ("input_dim", input_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ContractError(name, f"expected a positive integer, got {value!r}")
        stamp = data.get("embedding_stamp") or {}
        model_id = stamp.get("model_id") if isinstance(stamp, Mapping) else None
        if not model_id:
            export = data.get("export_info", {})
            model_id = (
                data.get("model_id")
                or (export.get("model_id") if isinstance(export, Mapping) else None)
                or default_model_id
            )
        untrained = bool((data.get("export_info") or {}).get("untrained", False))
        return cls(
            raw=dict(data),
            normalization=norm,
            model_id=str(model_id),
            latent_dim=latent,
            sequence_length=seq,
            input_dim=input_dim,
            untrained=untrained,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], default_model_id: str | None = None) -> ModelConfig:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ContractError("model_config", f"{p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ContractError("model_config", f"{p} is not valid JSON: {exc}") from None
        return cls.from_dict(data, default_model_id or p.parent.name or "unknown")


@dataclass(frozen=True)
class GoldenSet:
    """Reference windows in raw sensor units and their fp32 reference embeddings.

    Stored as JSON so that anything on the edge, even a Python without numpy,
    can replay it against ``/encode``.
    """

    windows: list[list[list[float]]]
    embeddings: list[list[float]]
    model_id: str = "unknown"
    normalization_hash: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.windows)

    @classmethod
    def from_dict(cls, data: Any) -> GoldenSet:
        if not isinstance(data, Mapping):
            raise ContractError("golden", "expected a JSON object")
        if data.get("input_units", "raw") != "raw":
            raise ContractError("golden.input_units", f"expected 'raw', got {data.get('input_units')!r}")
        windows, embs = data.get("windows"), data.get("embeddings")
        if not isinstance(windows, list) or not windows:
            raise ContractError("golden.windows", "expected a non-empty list of 100x9 windows")
        if not isinstance(embs, list) or len(embs) != len(windows):
            raise ContractError("golden.embeddings", f"expected {len(windows)} embeddings, one per window")
        for i, w in enumerate(windows):
            if (
                not isinstance(w, list)
                or len(w) != WINDOW
                or any(not isinstance(r, list) or len(r) != CHANNELS for r in w)
            ):
                raise ContractError(f"golden.windows[{i}]", f"expected {WINDOW}x{CHANNELS} numbers")
        dim = len(embs[0]) if isinstance(embs[0], list) else -1
        for i, e in enumerate(embs):
            if not isinstance(e, list) or len(e) != dim or dim <= 0:
                raise ContractError(f"golden.embeddings[{i}]", f"expected {dim if dim > 0 else LATENT_DIM} numbers")
        return cls(
            windows=windows,
            embeddings=embs,
            model_id=str(data.get("model_id", "unknown")),
            normalization_hash=str(data.get("normalization_hash", "")),
            meta={k: v for k, v in data.items() if k not in ("windows", "embeddings")},
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.meta)
        out.update(
            schema=1,
            input_units="raw",
            model_id=self.model_id,
            normalization_hash=self.normalization_hash,
            windows=self.windows,
            embeddings=self.embeddings,
        )
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GoldenSet:
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise ContractError("golden", f"{p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ContractError("golden", f"{p} is not valid JSON: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in plain Python; NaN or a zero vector gives -1 (a miss)."""
    if len(a) != len(b):
        return -1.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if not (math.isfinite(dot) and math.isfinite(na) and math.isfinite(nb)) or na == 0 or nb == 0:
        return -1.0
    return dot / (na * nb)


# The quality floor of each way of serving: the least cosine similarity, on every golden
# window, between what the edge computes and golden.json's reference embeddings. The
# sidecar's self-check, the deploy's golden gate and the build's INT8 checks all ask here.
# INT8 (ONNX Runtime's static quantization or the Hailo-8) carries a quantization error
# that fp32 does not, so its floor is lower.
QUALITY_FLOORS: Mapping[str, float] = {"fp32": 0.999, "int8": 0.98, "hailo": 0.98}


def serving_precision(backend: str, served_file: str = "") -> str:
    """The row of QUALITY_FLOORS for a backend (``onnxruntime`` or ``hailo``) serving ``served_file``."""
    if backend == "hailo":
        return "hailo"
    if backend != "onnxruntime":
        raise ContractError("backend", f"expected onnxruntime or hailo, got {backend!r}")
    return "int8" if "int8" in PurePosixPath(served_file).name else "fp32"


def _check_precision(precision: Any, where: str) -> None:
    if precision not in QUALITY_FLOORS or precision == "fp32":
        measured = ", ".join(k for k in QUALITY_FLOORS if k != "fp32")
        raise ContractError(where, f"expected one of {measured} (a quantized way of serving), got {precision!r}")


def quality_floor(backend: str, served_file: str = "") -> float:
    """The golden-set floor of a backend serving ``served_file`` (see QUALITY_FLOORS)."""
    return QUALITY_FLOORS[serving_precision(backend, served_file)]


def release_id(model_version: str, digest: str) -> str:
    """The id of a release: ``<version>-<sha8>``, the name of its directory on every edge.

    The version with any character other than ASCII letters, digits and ``._-`` replaced by ``_``,
    then the first 8 hex digits of the release's digest (``Manifest.digest``).
    """
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in str(model_version))
    if not safe or safe.startswith("."):
        raise ContractError(
            "model_version", f"{model_version!r} cannot name a release directory; use letters, digits, '._-'"
        )
    return f"{safe}-{digest[:8]}"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Streamed, so a large artifact is never read whole into memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_member_name(name: Any, field: str = "name") -> str:
    """A manifest entry must name a plain file inside its release directory."""
    if not isinstance(name, str) or not name:
        raise ContractError(field, f"expected a file name, got {name!r}")
    norm = posixpath.normpath(name)
    if (
        name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or norm != name
        or norm in (".", "..")
        or norm.startswith("../")
    ):
        raise ContractError(
            field, f"{name!r} escapes the release directory; expected a relative name such as 'model.onnx'"
        )
    return name


def symlink_problem(directory: str | os.PathLike[str], name: str) -> str | None:
    """Why ``name`` may not be read from the release ``directory``: a component of it is a
    symbolic link; None when every component is a plain entry.

    A release holds regular files only. A link would make what is verified depend on
    where it points at the time it is read, and a copy (the edge's staging) would take
    the target's bytes while a check of the directory (``model_tools verify``) sees the
    link: every reader refuses it with this one message.
    """
    d = Path(directory)
    parts = PurePosixPath(name).parts
    for i in range(1, len(parts) + 1):
        part = "/".join(parts[:i])
        if os.path.islink(d / part):
            what = "a symbolic link" if i == len(parts) else f"under {part}, a symbolic link"
            return (
                f"{what} (to {os.readlink(d / part)}); a release holds regular files only: "
                "put the file itself in the release, then write the manifest again"
            )
    return None


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    size: int
    sha256: str
    role: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "role": self.role}


@dataclass(frozen=True)
class BuildQuality:
    """What the build measured for one serving precision (a row of QUALITY_FLOORS other than
    fp32): the least cosine similarity over the golden windows between the quantized model
    (``file``, by its sha256) and ``reference``, and the floor it was held to.

    The edge can compare its own golden self-check with it: a Hailo-8 far below the
    emulator's figure points at the device or the runtime, not at the model.
    """

    min_cosine: float
    floor: float
    windows: int
    file: str
    sha256: str
    reference: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_cosine": self.min_cosine,
            "floor": self.floor,
            "windows": self.windows,
            "file": self.file,
            "sha256": self.sha256,
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BuildQuality:
        if not isinstance(data, Mapping):
            raise ContractError(where, "expected an object with min_cosine, floor, windows, file, sha256, reference")
        values: dict[str, Any] = {}
        for key in ("min_cosine", "floor"):
            v = data.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not -1.0 <= v <= 1.0:
                raise ContractError(f"{where}.{key}", f"expected a cosine similarity in [-1, 1], got {v!r}")
            values[key] = float(v)
        windows = data.get("windows")
        if isinstance(windows, bool) or not isinstance(windows, int) or windows <= 0:
            raise ContractError(f"{where}.windows", f"expected a positive window count, got {windows!r}")
        digest = data.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ContractError(f"{where}.sha256", f"expected 64 lowercase hex digits, got {digest!r}")
        reference = data.get("reference")
        if not isinstance(reference, str) or not reference:
            raise ContractError(f"{where}.reference", "expected what the model was compared with, e.g. 'golden.json'")
        return cls(
            windows=windows,
            file=check_member_name(data.get("file"), f"{where}.file"),
            sha256=digest,
            reference=reference,
            **values,
        )


@dataclass(frozen=True)
class Manifest:
    """Every artifact of a release, with its size, digest and role.

    ``quality`` (optional; absent from older manifests) maps a serving precision, ``int8``
    or ``hailo``, to what the build measured for it (BuildQuality).
    """

    model_version: str
    files: tuple[ManifestEntry, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    quality: Mapping[str, BuildQuality] = field(default_factory=dict)

    def entry(self, role: str) -> ManifestEntry | None:
        return next((f for f in self.files if f.role == role), None)

    @property
    def digest(self) -> str:
        """Identifies the release: the sha256 of its primary model, else of the manifest's files."""
        primary = self.entry("onnx") or self.entry("hef")
        if primary is not None:
            return primary.sha256
        return hashlib.sha256("".join(f.sha256 for f in self.files).encode()).hexdigest()

    @property
    def release_id(self) -> str:
        """``<version>-<sha8>``: see ``release_id``."""
        return release_id(self.model_version, self.digest)

    @classmethod
    def build(
        cls,
        directory: str | os.PathLike[str],
        roles: Mapping[str, str],
        model_version: str,
        quality: Mapping[str, BuildQuality] | None = None,
        **meta: Any,
    ) -> Manifest:
        """``roles`` maps file name to role; sizes and digests are computed here.

        A ``quality`` record must name a listed file with its present sha256.
        """
        d = Path(directory)
        entries = []
        for name, role in sorted(roles.items()):
            check_member_name(name)
            p = d / name
            link = symlink_problem(d, name)
            if link:
                raise ContractError(f"files.{name}", link)
            if not p.is_file():
                raise ContractError(f"files.{name}", f"{p} does not exist")
            entries.append(ManifestEntry(name, p.stat().st_size, sha256_file(p), role))
        digests = {e.name: e.sha256 for e in entries}
        for precision, record in (quality or {}).items():
            _check_precision(precision, f"quality.{precision}")
            if digests.get(record.file) != record.sha256:
                raise ContractError(
                    f"quality.{precision}.file",
                    f"{record.file} is not listed with sha256 {record.sha256[:12]}: measure the file the release ships",
                )
        return cls(model_version=model_version, files=tuple(entries), meta=dict(meta), quality=dict(quality or {}))

    def to_bytes(self) -> bytes:
        data = dict(self.meta)
        data.update(schema=1, model_version=self.model_version, files=[f.to_dict() for f in self.files])
        if self.quality:
            data["quality"] = {k: v.to_dict() for k, v in sorted(self.quality.items())}
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Manifest:
        try:
            data = json.loads(blob)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContractError("manifest", f"not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ContractError("manifest", "expected a JSON object")
        version = data.get("model_version")
        if not isinstance(version, str) or not version:
            raise ContractError("manifest.model_version", "expected a non-empty string")
        files = data.get("files")
        if not isinstance(files, list) or not files:
            raise ContractError("manifest.files", "expected a non-empty list")
        entries, seen = [], set()
        for i, f in enumerate(files):
            where = f"manifest.files[{i}]"
            if not isinstance(f, Mapping):
                raise ContractError(where, "expected an object with name, size, sha256, role")
            name = check_member_name(f.get("name"), f"{where}.name")
            if name in seen:
                raise ContractError(f"{where}.name", f"{name!r} listed twice")
            seen.add(name)
            size, digest, role = f.get("size"), f.get("sha256"), f.get("role")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ContractError(f"{where}.size", f"expected a byte count, got {size!r}")
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ContractError(f"{where}.sha256", f"expected 64 lowercase hex digits, got {digest!r}")
            if not isinstance(role, str) or not role:
                raise ContractError(f"{where}.role", "expected a non-empty string")
            entries.append(ManifestEntry(name, size, digest, role))
        quality: dict[str, BuildQuality] = {}
        raw_quality = data.get("quality", {})
        if not isinstance(raw_quality, Mapping):
            raise ContractError("manifest.quality", "expected an object: serving precision -> measured figures")
        for precision, record in raw_quality.items():
            where = f"manifest.quality.{precision}"
            _check_precision(precision, where)
            quality[precision] = BuildQuality.from_dict(record, where)
        meta = {k: v for k, v in data.items() if k not in ("schema", "model_version", "files", "quality")}
        return cls(model_version=version, files=tuple(entries), meta=meta, quality=quality)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        return cls.from_bytes(Path(path).read_bytes())

    def verify_files(self, directory: str | os.PathLike[str], names: Iterable[str] | None = None) -> list[str]:
        """Return one problem per file that is missing, a symbolic link, or differs; empty when all match."""
        d = Path(directory)
        wanted = set(names) if names is not None else None
        problems = []
        for f in self.files:
            if wanted is not None and f.name not in wanted:
                continue
            p = d / f.name
            link = symlink_problem(d, f.name)
            if link:
                problems.append(f"{f.name}: {link}")
                continue
            if not p.is_file():
                problems.append(f"{f.name}: missing")
                continue
            size = p.stat().st_size
            if size != f.size:
                problems.append(f"{f.name}: size {size} != manifest {f.size}")
                continue
            digest = sha256_file(p)
            if digest != f.sha256:
                problems.append(f"{f.name}: sha256 {digest} != manifest {f.sha256}")
        return problems


def sign(manifest_bytes: bytes, private_key_pem: bytes) -> bytes:
    """Detached ed25519 signature (raw 64 bytes) of the manifest's exact bytes."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ContractError("private_key", "expected an ed25519 private key in PEM form")
    return key.sign(manifest_bytes)


def verify_signature(manifest_bytes: bytes, signature: bytes, public_key_pem: bytes) -> None:
    """Raise ContractError unless ``signature`` is the key's signature of the bytes."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise ContractError("public_key", f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ContractError("public_key", "expected an ed25519 public key in PEM form")
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise ContractError(
            "signature", "does not match the manifest for this public key (tampered manifest or wrong key)"
        ) from None


# DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the PEM body of every ed25519
# public key is these 12 bytes and then the 32 raw key bytes.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_BEGIN, _PEM_END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
KEY_ID_LENGTH = 16


def ed25519_public_raw(public_key_pem: bytes | str) -> bytes:
    """The 32 raw bytes of an ed25519 public key in PEM form (what ``<key>.pub`` holds).

    Standard library only, so that a key id is computed where ``cryptography`` is not
    installed; surrounding whitespace and CRLF line ends are accepted.
    """
    text = public_key_pem.decode("ascii", "replace") if isinstance(public_key_pem, bytes) else str(public_key_pem)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
        raise ContractError(
            "public_key", f"expected a PEM public key, the whole <key>.pub from {_PEM_BEGIN} to {_PEM_END}"
        )
    if any(line.startswith("-----") for line in lines[1:-1]):
        raise ContractError("public_key", "expected one PEM public key, found several: give one key per entry")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise ContractError("public_key", "the PEM body is not valid base64") from None
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        raise ContractError("public_key", "expected an ed25519 public key (model_tools keygen writes one)")
    return der[len(_ED25519_SPKI_PREFIX) :]


def ed25519_public_pem(raw: bytes) -> bytes:
    """The canonical PEM text of a raw ed25519 public key (as ``cryptography`` writes it)."""
    if len(raw) != 32:
        raise ContractError("public_key", f"expected 32 raw ed25519 public key bytes, got {len(raw)}")
    body = base64.b64encode(_ED25519_SPKI_PREFIX + raw).decode()
    return f"{_PEM_BEGIN}\n{body}\n{_PEM_END}\n".encode()


def key_id(public_key_pem: bytes | str) -> str:
    """Names a signing key: the first 16 hex digits of the sha256 of its raw public key bytes.

    The same id names the key in a manifest (``signing_key_id``), in an edge's trust
    directory (``trust/<key id>.pub``), in records and in refusals.
    """
    return hashlib.sha256(ed25519_public_raw(public_key_pem)).hexdigest()[:KEY_ID_LENGTH]
