"""Discriminators: image discriminators (real vs generated) whose hidden layers can be read out, and
the MLP discriminators of latent codes (:func:`code_discriminator`).

Used by VAE-GAN (Larsen et al. 2016), whose reconstruction error is measured in the features of
the discriminator's l-th layer. The body is the shared encoder backbone (``Encoder``: ConvTrunk → FC
for the conv backbones, a two-layer MLP for ``mlp``), so a discriminator has the same shape and
cost as the VAE's encoder; a linear head gives the real-vs-fake logit.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import Encoder

#: Which hidden layer ``Discriminator.forward`` returns as features.
#: "trunk": the output of the two stride-2 convolutions, (B, c2·H/4·W/4) — a late conv layer, as
#: Larsen et al. used (the 3rd of their 4 conv layers); "fc": the last hidden layer, (B, fc).
FEATURE_LAYERS = ("trunk", "fc")


class Discriminator(nn.Module):
    """x (B, *data_shape) [+ condition] → (logits (B,), features (B, F) of ``feature_layer``)."""

    def __init__(self, data_shape: tuple[int, ...], backbone: str = "paper", feature_layer: str = "trunk", cond_dim: int = 0):
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise ValueError(f"feature_layer must be one of {FEATURE_LAYERS}, got {feature_layer!r}")
        self.feature_layer = feature_layer
        self.body = Encoder(tuple(data_shape), backbone, cond_dim)
        self.head = nn.Linear(self.body.out_features, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        trunk = self.body.trunk(x).flatten(1)  # (B, c2·H/4·W/4), or the flat input for the mlp body
        h = trunk
        if self.body.cond_dim:
            h = torch.cat([h, cond.to(h.dtype)], dim=1)
        h = self.body.fc(h)  # (B, fc)
        logits = self.head(h).squeeze(-1)  # (B,)
        return logits, (trunk if self.feature_layer == "trunk" else h)


def code_discriminator(dim: int, hidden: int, layers: int, outputs: int, act: type[nn.Module] = nn.ReLU, **act_kw) -> nn.Sequential:
    """Codes z (B, dim) → ``outputs`` logits: ``layers`` hidden layers of width ``hidden`` with ``act``
    (e.g. WAE-GAN's ReLU critic of codes, FactorVAE's LeakyReLU(0.2) discriminator), then linear."""
    mods: list[nn.Module] = []
    d = dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), act(**act_kw)]
        d = hidden
    mods.append(nn.Linear(d, outputs))
    return nn.Sequential(*mods)
