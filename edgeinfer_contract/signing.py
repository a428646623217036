"""ed25519 signatures of manifest.json and the key ids that name signing keys."""

from __future__ import annotations

import base64
import binascii
import hashlib

from .layout import ContractError


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
