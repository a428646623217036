"""Make the collection importable as ansible_collections.edgeinfer.deploy for unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeinfer_contract import Manifest, key_id, sign


def make_release(
    directory: Path,
    version: str = "v1",
    payload: bytes = b"model-one",
    private_pem: bytes | None = None,
    declare: bool = True,
):
    """A release directory in the contract layout whose contents are opaque bytes (the release
    manager never loads a model, it only moves and verifies files). Signed with ``private_pem``,
    its manifest names the key (``signing_key_id``) as model_tools writes it, unless ``declare``
    is false (a release signed by an older model_tools)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(payload * 1000)
    (directory / "golden.json").write_text('{"windows": []}')
    (directory / "model_config.json").write_text("{}")
    roles = {"model.onnx": "onnx", "golden.json": "golden", "model_config.json": "config"}
    meta = {"signing_key_id": key_id(public_of(private_pem))} if private_pem is not None and declare else {}
    manifest = Manifest.build(directory, roles, version, **meta)
    blob = manifest.to_bytes()
    (directory / "manifest.json").write_bytes(blob)
    if private_pem is not None:
        (directory / "manifest.json.sig").write_bytes(sign(blob, private_pem))
    return manifest


def new_keypair() -> tuple[bytes, bytes]:
    """An ed25519 key pair in PEM form, as model_tools keygen writes it: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def public_of(private_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="session")
def signing_keys() -> tuple[bytes, bytes]:
    return new_keypair()
