"""manifest.json: every file of a release with size, sha256 and role, and what the build measured."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .identity import check_member_name, release_id, sha256_file, symlink_problem
from .layout import ContractError
from .quality import _check_precision


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
