"""The TCN-VAE encoder of the model in production, and its weight-norm-free export forms.

``TCNVAE`` keeps the training code's parameter names (``tcn_encoder.network.{i}.conv{1,2}``,
``downsample``, ``fc_mu``, ``fc_logvar``) so its state_dict loads the checkpoints the
training code writes after the key mapping in :mod:`model_tools.checkpoint`. The decoder
and the classifier heads exist in training only and are not rebuilt here.

``ExportEncoder`` is what gets exported: weight norm folded into plain weights,
causal padding on the left (no chomp), global average pool, Flatten, Gemm. With
``layout="nchw"`` it uses Conv2d with kernel ``(1, k)`` on a ``[B, 9, 1, 100]``
input, the form the Hailo-8 parser accepts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations


@dataclass(frozen=True)
class Architecture:
    input_dim: int = 9
    hidden_dims: tuple[int, ...] = (64, 128, 256)
    latent_dim: int = 64
    num_activities: int = 13
    kernel_size: int = 3
    sequence_length: int = 100
    dropout: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> Architecture:
        """Architecture fields from a model_config (new ``architecture`` block or the older top-level keys)."""
        if not data:
            return cls()
        src: dict[str, Any] = dict(data.get("architecture") or {})
        specs = data.get("model_specs") or {}
        for key in ("input_dim", "hidden_dims", "latent_dim", "num_activities", "kernel_size", "sequence_length"):
            if key not in src and key in data:
                src[key] = data[key]
        if "latent_dim" not in src and "latent_dimension" in specs:
            src["latent_dim"] = specs["latent_dimension"]
        if "sequence_length" not in src and "sequence_length" in specs:
            src["sequence_length"] = specs["sequence_length"]
        base = cls()
        hidden = tuple(int(h) for h in src.get("hidden_dims", base.hidden_dims))
        return cls(
            input_dim=int(src.get("input_dim", base.input_dim)),
            hidden_dims=hidden,
            latent_dim=int(src.get("latent_dim", base.latent_dim)),
            num_activities=int(src.get("num_activities", base.num_activities)),
            kernel_size=int(src.get("kernel_size", base.kernel_size)),
            sequence_length=int(src.get("sequence_length", base.sequence_length)),
        )


class TemporalBlock(nn.Module):
    """Two weight-normed dilated causal Conv1d (+chomp, ReLU, Dropout), 1x1 residual, ReLU."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.padding = (kernel_size - 1) * dilation
        self.conv1 = parametrizations.weight_norm(
            nn.Conv1d(n_in, n_out, kernel_size, padding=self.padding, dilation=dilation)
        )
        self.conv2 = parametrizations.weight_norm(
            nn.Conv1d(n_out, n_out, kernel_size, padding=self.padding, dilation=dilation)
        )
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None

    def _chomp(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.padding].contiguous() if self.padding else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout1(F.relu(self._chomp(self.conv1(x))))
        out = self.dropout2(F.relu(self._chomp(self.conv2(out))))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class TemporalConvNet(nn.Module):
    def __init__(self, num_inputs: int, channels: tuple[int, ...], kernel_size: int, dropout: float) -> None:
        super().__init__()
        layers = []
        for i, n_out in enumerate(channels):
            n_in = num_inputs if i == 0 else channels[i - 1]
            layers.append(TemporalBlock(n_in, n_out, kernel_size, 2**i, dropout))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class TCNVAE(nn.Module):
    """The encoder side of the production TCN-VAE: TCN, global average pool, ``fc_mu`` / ``fc_logvar``."""

    def __init__(
        self,
        input_dim: int = 9,
        hidden_dims: list[int] | tuple[int, ...] = (64, 128, 256),
        latent_dim: int = 64,
        num_activities: int = 13,
        kernel_size: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.arch = Architecture(input_dim, tuple(hidden_dims), latent_dim, num_activities, kernel_size)
        self.tcn_encoder = TemporalConvNet(input_dim, tuple(hidden_dims), kernel_size, dropout)
        self.fc_mu = nn.Linear(hidden_dims[-1], latent_dim)
        self.fc_logvar = nn.Linear(hidden_dims[-1], latent_dim)

    @classmethod
    def from_architecture(cls, arch: Architecture) -> TCNVAE:
        return cls(arch.input_dim, arch.hidden_dims, arch.latent_dim, arch.num_activities, arch.kernel_size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: [B, T, C] normalized windows -> (mu, logvar), each [B, latent]."""
        h = self.tcn_encoder(x.transpose(1, 2))
        h = F.adaptive_avg_pool1d(h, 1).squeeze(-1)
        return self.fc_mu(h), self.fc_logvar(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]


class _CausalConv(torch.autograd.Function):
    """Left-padded dilated conv that exports as ONE ONNX Conv with asymmetric ``pads``.

    PyTorch's ``padding`` is symmetric, so a causal conv is normally exported as
    Conv + Slice (the chomp) or Pad + Conv; the Hailo parser wants neither.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dilation: int, pad: int) -> torch.Tensor:
        if w.dim() == 4:
            return F.conv2d(F.pad(x, (pad, 0)), w, b, dilation=(1, dilation))
        return F.conv1d(F.pad(x, (pad, 0)), w, b, dilation=dilation)

    @staticmethod
    def symbolic(g: Any, x: Any, w: Any, b: Any, dilation: int, pad: int) -> Any:
        rank = len(w.type().sizes())
        k = w.type().sizes()[-1]
        if rank == 4:
            return g.op(
                "Conv",
                x,
                w,
                b,
                kernel_shape_i=[1, k],
                dilations_i=[1, dilation],
                pads_i=[0, pad, 0, 0],
                strides_i=[1, 1],
            )
        return g.op("Conv", x, w, b, kernel_shape_i=[k], dilations_i=[dilation], pads_i=[pad, 0], strides_i=[1])


def causal_conv(conv: nn.Module, x: torch.Tensor, pad: int) -> torch.Tensor:
    dilation = conv.dilation[-1]  # type: ignore[index]
    out: torch.Tensor = _CausalConv.apply(x, conv.weight, conv.bias, int(dilation), int(pad))
    return out


def folded_weight(conv: nn.Module) -> torch.Tensor:
    """The effective weight of a (possibly weight-normed) conv, ``g * v / ||v||``."""
    return conv.weight.detach().clone()


@dataclass
class _FoldedBlock:
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    dilation: int
    padding: int
    wd: torch.Tensor | None = None
    bd: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ExportEncoder(nn.Module):
    """Weight norm folded, causal padding on the left, no chomp; returns mu.

    ``layout="nlc"``: input [B, 100, 9] (the production model's interface), Conv1d.
    ``layout="nchw"``: input [B, 9, 1, 100], Conv2d kernel (1, k) (Hailo form).
    """

    def __init__(self, model: TCNVAE, layout: Literal["nlc", "nchw"] = "nlc") -> None:
        super().__init__()
        self.layout = layout
        two_d = layout == "nchw"
        self.paddings: list[int] = []
        self.convs1 = nn.ModuleList()
        self.convs2 = nn.ModuleList()
        self.downs = nn.ModuleList()
        for block in model.tcn_encoder.network:
            assert isinstance(block, TemporalBlock)
            self.paddings.append(block.padding)
            self.convs1.append(self._plain(block.conv1, two_d))
            self.convs2.append(self._plain(block.conv2, two_d))
            self.downs.append(self._plain(block.downsample, two_d) if block.downsample is not None else nn.Identity())
        self.fc = nn.Linear(model.fc_mu.in_features, model.fc_mu.out_features)
        self.fc.weight.data.copy_(model.fc_mu.weight.detach())
        self.fc.bias.data.copy_(model.fc_mu.bias.detach())
        self.eval()

    @staticmethod
    def _plain(conv: nn.Conv1d, two_d: bool) -> nn.Module:
        w = folded_weight(conv)
        out_c, in_c, k = w.shape
        dil = conv.dilation[0]
        plain: nn.Module
        if two_d:
            plain = nn.Conv2d(in_c, out_c, (1, k), dilation=(1, dil))
            plain.weight.data.copy_(w.unsqueeze(2))
        else:
            plain = nn.Conv1d(in_c, out_c, k, dilation=dil)
            plain.weight.data.copy_(w)
        assert conv.bias is not None
        plain.bias.data.copy_(conv.bias.detach())  # type: ignore[union-attr]
        return plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2) if self.layout == "nlc" else x
        for pad, c1, c2, down in zip(self.paddings, self.convs1, self.convs2, self.downs, strict=True):
            out = F.relu(causal_conv(c1, h, pad))
            out = F.relu(causal_conv(c2, out, pad))
            h = F.relu(out + down(h))
        pooled = F.adaptive_avg_pool1d(h, 1) if self.layout == "nlc" else F.adaptive_avg_pool2d(h, 1)
        return self.fc(torch.flatten(pooled, 1))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
