"""Checkpoints: load the training code's and model_tools' checkpoints into :class:`TCNVAE`, write seeded untrained ones.

Accepted layouts: a raw state_dict, or ``{"model_state_dict": ...}`` (also ``state_dict``);
old-style weight norm (``weight_g``/``weight_v``), new-style parametrizations, or plain
``weight``; the ``net.0``/``net.4`` aliases of ``conv1``/``conv2``; a ``module.`` prefix.
Decoder and classifier heads (training only) are ignored and reported.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeinfer_contract import Normalization, sha256_file

from .errors import CheckpointError
from .model import TCNVAE, Architecture

TRAINING_ONLY_PREFIXES = ("decoder", "activity_classifier", "domain_classifier")
_G, _V = "parametrizations.weight.original0", "parametrizations.weight.original1"
_CONV = re.compile(
    r"^(tcn_encoder\.network\.\d+\.)(conv[12]|net\.0|net\.4)\.(weight_g|weight_v|weight|bias|"
    + re.escape(_G)
    + "|"
    + re.escape(_V)
    + r")$"
)


@dataclass
class LoadedModel:
    model: TCNVAE
    arch: Architecture
    path: Path
    sha256: str
    untrained: bool = False
    normalization: Normalization | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ignored_keys: list[str] = field(default_factory=list)

    @property
    def default_model_id(self) -> str:
        return f"tcn-vae-{self.sha256[:12]}"


def _read(path: Path, trust_pickle: bool) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist", path=str(path))
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04" and head[:1] != b"\x80":  # torch zip archive, or a legacy pickle
        raise CheckpointError(f"checkpoint {path} is not a PyTorch file (starts with {head!r})", path=str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} holds Python objects beyond tensors and plain containers ({reason}); "
            "re-save it as a plain state_dict, or pass --trust-pickle for a file you trust",
            path=str(path),
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a PyTorch file: {exc}", path=str(path)) from None


def split_checkpoint(obj: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, metadata) from either checkpoint layout."""
    meta: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                meta = {k: v for k, v in obj.items() if k != key}
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError("checkpoint is neither a state_dict nor {'model_state_dict': ...}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(obj):
        bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))[:5]
        raise CheckpointError(f"state_dict values must be tensors; not tensors: {bad}")
    return tensors, meta


def _norm_except_dim0(w: torch.Tensor) -> torch.Tensor:
    return w.flatten(1).norm(dim=1).reshape(-1, *([1] * (w.dim() - 1)))


def canonical_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map the training code's key variants onto :class:`TCNVAE`'s names; return (state_dict, ignored keys)."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if any(k.startswith("network.") for k in sd) and not any(k.startswith("tcn_encoder.") for k in sd):
        if not any(k.startswith("fc_mu.") for k in sd):
            raise CheckpointError(
                "this checkpoint holds the TCN encoder only (keys network.*): the latent head is missing "
                "(missing keys: fc_mu.weight, fc_mu.bias). Pass the full training checkpoint that has "
                "tcn_encoder.* and fc_mu.* (e.g. best_tcn_vae_72pct.pth), or wrap the exported ONNX with "
                "'model_tools adopt --onnx MODEL.onnx --config model_config.json'",
                missing_keys=["fc_mu.weight", "fc_mu.bias"],
            )
        sd = {("tcn_encoder." + k if k.startswith("network.") else k): v for k, v in sd.items()}
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in sd.items():
        if key.startswith(TRAINING_ONLY_PREFIXES):
            ignored.append(key)
            continue
        m = _CONV.match(key)
        if not m:
            out[key] = value
            continue
        prefix, conv, leaf = m.groups()
        name = {"net.0": "conv1", "net.4": "conv2"}.get(conv, conv)
        leaf = {"weight_g": _G, "weight_v": _V}.get(leaf, leaf)
        target = aliases if conv.startswith("net.") else out
        target[f"{prefix}{name}.{leaf}"] = value
    for key, value in aliases.items():
        if key in out:
            if out[key].shape != value.shape or not torch.equal(out[key], value):
                raise CheckpointError(f"{key} and its alias (net.0/net.4) hold different tensors", key=key)
        else:
            out[key] = value
    for key in [k for k in out if k.endswith(".weight") and _CONV.match(k)]:
        w = out.pop(key)  # weight norm already removed: rebuild g, v so that g * v / ||v|| == w
        base = key[: -len("weight")]
        out[base + _G], out[base + _V] = _norm_except_dim0(w), w
    return out, sorted(ignored)


def build_model(sd: dict[str, torch.Tensor], arch: Architecture) -> TCNVAE:
    model = TCNVAE.from_architecture(arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} != model {tuple(expected[k].shape)}"
        for k in sorted(set(sd) & set(expected))
        if sd[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {'; '.join(shapes)}")
        raise CheckpointError(
            f"checkpoint does not fit TCNVAE{arch.to_dict()}: " + " | ".join(parts),
            missing_keys=missing,
            unexpected_keys=unexpected,
            shape_mismatches=shapes,
        )
    model.load_state_dict(sd, strict=True)
    return model.eval()


def load_checkpoint(path: str | Path, config: dict[str, Any] | None = None, trust_pickle: bool = False) -> LoadedModel:
    """Load ``path``; architecture from ``config`` (a model_config dict), else from the checkpoint's metadata."""
    p = Path(path)
    sd, meta = split_checkpoint(_read(p, trust_pickle))
    info = meta.get("edgeinfer") if isinstance(meta.get("edgeinfer"), dict) else {}
    arch = Architecture.from_config(config) if config else Architecture.from_config(info)
    canonical, ignored = canonical_state_dict(sd)
    model = build_model(canonical, arch)
    norm = (
        Normalization.from_dict(info["normalization"], "checkpoint.edgeinfer.normalization")
        if "normalization" in info
        else None
    )
    return LoadedModel(
        model=model,
        arch=arch,
        path=p,
        sha256=sha256_file(p),
        untrained=bool(info.get("untrained", False)),
        normalization=norm,
        meta={k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, dict, list))},
        ignored_keys=ignored,
    )


def training_state_dict(model: TCNVAE) -> dict[str, torch.Tensor]:
    """The state_dict under the training code's names (old-style ``weight_g``/``weight_v``)."""
    return {
        k.replace(_G, "weight_g").replace(_V, "weight_v"): v.detach().clone() for k, v in model.state_dict().items()
    }
