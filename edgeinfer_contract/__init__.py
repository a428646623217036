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

One module per concept, each re-exported here (``from edgeinfer_contract import GoldenSet``):

    layout         tensor names and shape, the release's file names, ContractError
    normalization  per-channel z-score parameters and the embedding stamp
    config         model_config.json
    golden         golden.json and the cosine every golden check uses
    quality        the quality floor of each way of serving (QUALITY_FLOORS)
    identity       the release id, file digests, safe member names
    manifest       manifest.json and the build's measured quality
    signing        ed25519 signatures and key ids
    architecture   Docker's names of machine architectures
"""

from __future__ import annotations

from .architecture import DOCKER_ARCH, docker_arch
from .config import ModelConfig
from .golden import GoldenSet, cosine
from .identity import (
    RELEASE_NAME_RULE,
    check_member_name,
    check_model_version,
    release_id,
    sha256_file,
    symlink_problem,
)
from .layout import CHANNEL_ORDER, CHANNELS, FILES, INPUT_NAME, LATENT_DIM, OUTPUT_NAME, WINDOW, ContractError
from .manifest import BuildQuality, Manifest, ManifestEntry
from .normalization import GUIDE_NORMALIZATION, Normalization, embedding_stamp
from .quality import QUALITY_FLOORS, quality_floor, serving_precision
from .signing import KEY_ID_LENGTH, ed25519_public_pem, ed25519_public_raw, key_id, sign, verify_signature

__all__ = [
    "BuildQuality",
    "CHANNELS",
    "CHANNEL_ORDER",
    "ContractError",
    "DOCKER_ARCH",
    "FILES",
    "GUIDE_NORMALIZATION",
    "GoldenSet",
    "INPUT_NAME",
    "KEY_ID_LENGTH",
    "LATENT_DIM",
    "Manifest",
    "ManifestEntry",
    "ModelConfig",
    "Normalization",
    "OUTPUT_NAME",
    "QUALITY_FLOORS",
    "RELEASE_NAME_RULE",
    "WINDOW",
    "check_member_name",
    "check_model_version",
    "cosine",
    "docker_arch",
    "ed25519_public_pem",
    "ed25519_public_raw",
    "embedding_stamp",
    "key_id",
    "quality_floor",
    "release_id",
    "serving_precision",
    "sha256_file",
    "sign",
    "symlink_problem",
    "verify_signature",
]
