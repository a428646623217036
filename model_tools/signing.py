"""``keygen``, ``manifest``, ``verify``: a signed list of every artifact of a release."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeinfer_contract import FILES, BuildQuality, ContractError, Manifest, key_id, sha256_file, sign, verify_signature

from .checks import check_model_version, check_out
from .errors import InputError, SignatureError

ROLE_OF = {name: role for role, name in FILES.items() if role not in ("manifest", "signature")}
UNSIGNED = {FILES["manifest"], FILES["signature"]}


def keygen(private_path: str | Path, public_path: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv = check_out(private_path, "--out")
    pub = check_out(public_path, "--public") if public_path else check_out(f"{priv}.pub", "--out")
    for p in (priv, pub):
        if p.exists() and not force:
            raise InputError(f"{p} exists; pass --force to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # A directory made for the key is its owner's alone; an existing one is left as it is.
    priv.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A new file, 0600 from its creation, then renamed over any old key: O_CREAT's mode does not
    # apply to a file that exists, so writing into an old 0644 key file would expose the new key.
    tmp = priv.with_name(f".{priv.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, priv)
    pub.write_bytes(pub_pem)
    return {"private_key": str(priv), "public_key": str(pub), "algorithm": "ed25519", "key_id": key_id(pub_pem)}


def public_key_of(private_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_signing_key(path: str | Path, option: str = "--signing-key") -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of an ed25519 private key, read before any work that it would sign."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    p = Path(path)
    expected = "expected an ed25519 private key in PEM form (model_tools keygen writes one)"
    if not p.is_file():
        raise InputError(f"{option} {p}: does not exist; {expected}", field="signing_key")
    try:
        private_pem = p.read_bytes()
        key = load_pem_private_key(private_pem, password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{option} {p}: {expected} ({exc})", field="signing_key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{option} {p}: a {type(key).__name__}; {expected}", field="signing_key")
    return private_pem, public_key_of(private_pem)


def _read_key(path: str | Path, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what}: {p} does not exist")
    return p.read_bytes()


def write_manifest(
    release_dir: str | Path,
    model_version: str,
    private_key: str | Path | None = None,
    roles: dict[str, str] | None = None,
    quality: dict[str, BuildQuality] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """Write ``manifest.json`` (and ``manifest.json.sig`` when a key is given) for ``release_dir``.

    A signed manifest names its key (``signing_key_id``), so that an edge that does not
    trust it can say which key it was. Without ``quality``, the measured figures of the
    manifest it replaces are kept for each file that is still the one measured; without
    ``meta``, its metadata (model id, source, embedding stamp, ``untrained``, build inputs).
    """
    d = Path(release_dir)
    check_model_version(model_version)
    if not d.is_dir():
        raise InputError(
            f"release: {d} is not a directory; expected the release directory that model_tools build wrote"
        )
    private_pem = read_signing_key(private_key)[0] if private_key is not None else None
    # The manifest command re-signs a release (no meta given): what its build recorded stays.
    meta = dict(meta) if meta else _kept_meta(d)
    meta.pop("signing_key_id", None)
    if private_pem is not None:
        meta["signing_key_id"] = key_id(public_key_of(private_pem))
    if roles is None:
        roles = {p.name: ROLE_OF[p.name] for p in sorted(d.iterdir()) if p.is_file() and p.name in ROLE_OF}
    if not roles:
        raise InputError(f"{d}: no release artifacts found (expected e.g. {FILES['onnx']})")
    if quality is None:
        quality = _kept_quality(d, roles)
    try:
        manifest = Manifest.build(d, roles, model_version, quality=quality, **meta)
    except ContractError as exc:
        raise InputError(f"manifest: {exc}", field=exc.field) from None
    blob = manifest.to_bytes()
    (d / FILES["manifest"]).write_bytes(blob)
    sig = d / FILES["signature"]
    if private_pem is not None:
        try:
            sig.write_bytes(sign(blob, private_pem))
        except (ContractError, ValueError) as exc:
            raise InputError(f"signing_key {private_key}: {exc}") from None
    else:
        sig.unlink(missing_ok=True)
    listed = {f.name for f in manifest.files}
    unlisted = sorted(p.name for p in d.iterdir() if p.is_file() and p.name not in listed | UNSIGNED)
    return {
        "manifest": str(d / FILES["manifest"]),
        "signed": private_pem is not None,
        "key_id": meta.get("signing_key_id"),
        "digest": manifest.digest,
        "files": [f.to_dict() for f in manifest.files],
        "unlisted": unlisted,
    }


def _kept_meta(d: Path) -> dict[str, Any]:
    try:
        return dict(Manifest.load(d / FILES["manifest"]).meta)
    except (OSError, ContractError):
        return {}


def _kept_quality(d: Path, roles: dict[str, str]) -> dict[str, BuildQuality]:
    try:
        old = Manifest.load(d / FILES["manifest"])
    except (OSError, ContractError):
        return {}
    return {
        precision: record
        for precision, record in old.quality.items()
        if record.file in roles and (d / record.file).is_file() and sha256_file(d / record.file) == record.sha256
    }


def verify_release(release_dir: str | Path, public_key: str | Path | bytes) -> dict[str, Any]:
    """Refuse a wrong key, a tampered manifest, an escaping name, a symbolic link, a tampered or missing file."""
    d = Path(release_dir)
    man, sig = d / FILES["manifest"], d / FILES["signature"]
    if not man.is_file():
        raise SignatureError(f"{man} does not exist", release=str(d))
    if not sig.is_file():
        raise SignatureError(f"{sig} does not exist: the release is not signed", release=str(d))
    pub = public_key if isinstance(public_key, bytes) else _read_key(public_key, "public_key")
    blob = man.read_bytes()
    try:
        verify_signature(blob, sig.read_bytes(), pub)
        manifest = Manifest.from_bytes(blob)
    except ContractError as exc:
        raise SignatureError(f"{d}: {exc}", field=exc.field, release=str(d)) from None
    # A symbolic link among the listed files is refused there, as the edge refuses it.
    problems = manifest.verify_files(d)
    if problems:
        raise SignatureError(f"{d}: " + "; ".join(problems), problems=problems, release=str(d))
    listed = {f.name for f in manifest.files}
    return {
        "release": str(d),
        "verified": True,
        "key_id": key_id(pub),
        "model_version": manifest.model_version,
        "digest": manifest.digest,
        # The id the edges stage it under (edgeinfer_contract.release_id).
        "release_id": manifest.release_id,
        "files": len(manifest.files),
        "unlisted": sorted(p.name for p in d.iterdir() if p.is_file() and p.name not in listed | UNSIGNED),
        "meta": manifest.meta,
    }
