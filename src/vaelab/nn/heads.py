"""Heads from features to distribution objects."""
from __future__ import annotations

import torch
from torch import nn

from ..distributions.gaussian import DiagonalGaussian


class GaussianHead(nn.Linear):
    """features (..., in_features) → N(μ, diag σ²) with batch shape (...,) and event shape (latent_dim,).

    One linear map to (μ, log σ²) = chunk(Wh + b, 2), computed in float32 (``.float()`` after the
    layer, so under bf16 autocast only the matmul is lowered). It *is* an ``nn.Linear(in_features,
    2 · latent_dim)``: the same parameters, initialisation (the same RNG draws) and state-dict keys
    (``weight``, ``bias``) as the hand-written layer it replaces, so checkpoints load unchanged.
    ``linear(h)`` gives the raw (..., 2 · latent_dim) output."""

    def __init__(self, in_features: int, latent_dim: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, 2 * latent_dim, bias=bias, device=device, dtype=dtype)
        self.latent_dim = latent_dim

    def linear(self, h: torch.Tensor) -> torch.Tensor:
        """The layer's raw output Wh + b, (..., 2 · latent_dim), in the autocast dtype."""
        return super().forward(h)

    def forward(self, h: torch.Tensor) -> DiagonalGaussian:
        mu, logvar = self.linear(h).float().chunk(2, dim=-1)
        return DiagonalGaussian(mu, logvar)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, latent_dim={self.latent_dim}"
