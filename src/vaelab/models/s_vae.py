"""Hyperspherical VAE, S-VAE (Davidson et al. 2018): a von Mises–Fisher posterior and a uniform prior
on the sphere S^{m−1}, m = ``latent_dim`` (the ambient dimension: latent_dim = 3 is the 2-sphere).

ELBO(x) = E_vMF(z|μ(x),κ(x))[log p(x|z)] − KL(vMF(μ, κ) ‖ U(S^{m−1})), the KL in closed form
(Davidson et al. 2018, eq. 12; EQUATIONS.md "Hyperspherical VAE"), z drawn by Wood's rejection sampler
with the reparameterised gradient (see :mod:`vaelab.distributions.vmf`).

Encoder head: m + 1 outputs; μ = the first m normalised, κ = softplus(last) + ``kappa_min``. The
offset 1 is the authors' reference code's (it stops the posterior collapsing onto the uniform at the
start of training). Everything else — backbones, likelihood, the loss skeleton, sampling from the prior,
the IWAE weights log p(x|z) + log U(z) − log vMF(z|x) — is the plain VAE's (:class:`GaussianVAE`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VariantConfig, check
from ..distributions.vmf import HypersphericalUniform, VonMisesFisher
from ..registry import register
from .vae import GaussianVAE


@dataclass
class Config(VariantConfig):
    kappa_min: float = 1.0  # κ = softplus(·) + kappa_min; the reference code's "+ 1" against collapse

    def validate(self) -> None:
        super().validate()
        check(self.latent_dim >= 2, "latent_dim", f"S-VAE lives on S^(m-1) and needs latent_dim m >= 2, got {self.latent_dim}")
        check(isinstance(self.kappa_min, (int, float)) and self.kappa_min >= 0, "kappa_min", f"must be >= 0, got {self.kappa_min!r}")


@register("s-vae")
class SVAE(GaussianVAE):
    """S-VAE: vMF posterior, uniform prior on the hypersphere (Davidson et al. 2018)."""

    Config = Config
    latent_kind = "sphere"

    def __init__(self, config: Config):
        super().__init__(config)
        self.head = nn.Linear(self.encoder.out_features, config.latent_dim + 1)  # (μ direction, κ)
        self.prior = HypersphericalUniform(config.latent_dim)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VonMisesFisher:
        h = self.head(self.encoder(x, self.condition(y))).float()
        direction, raw_kappa = h[:, :-1], h[:, -1]
        mu = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        kappa = F.softplus(raw_kappa) + self.config.kappa_min
        return VonMisesFisher(mu, kappa)

    def regularizer(self, q: VonMisesFisher, z, batch, step):
        kl, terms = super().regularizer(q, z, batch, step)  # KL(vMF ‖ U(S^{m−1})), closed form
        return kl, {**terms, "kappa": q.scale.mean()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded mode μ (the posterior mean A·μ lies inside the ball, off the decoder's domain)."""
        return torch.sigmoid(self.decode(self.encode(x, y).mode, y).float())

    @torch.no_grad()
    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean direction μ(x), a point on S^{m−1}."""
        return self.encode(x, y).mode
