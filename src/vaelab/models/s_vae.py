"""Hyperspherical VAE, S-VAE (Davidson et al. 2018): a von Mises–Fisher posterior and a uniform prior
on the sphere S^{m−1}, m = ``latent_dim`` (the ambient dimension: latent_dim = 3 is the 2-sphere).

ELBO(x) = E_vMF(z|μ(x),κ(x))[log p(x|z)] − KL(vMF(μ, κ) ‖ U(S^{m−1})), the KL in closed form
(Davidson et al. 2018, eq. 12; docs/equations.md, "Hyperspherical VAE"), z drawn by Wood's
rejection sampler with the reparameterised gradient (see :mod:`vaelab.distributions.vmf`).

Encoder head: m + 1 outputs; μ = the first m normalised, κ = link(last) + ``kappa_min``. The
offset 1 is the authors' reference code's (it stops the posterior collapsing onto the uniform at the
start of training). ``kappa_link`` = "exp" (default) puts the head on the log scale, as the Gaussian's
log-variance head is: a trained posterior's κ is in the hundreds, and with the reference code's
"softplus" the head's output has to climb there linearly (the comparison of the two links is in
docs/results/hyperspherical.md). Everything else — backbones, likelihood, the loss
skeleton, sampling from the prior, the IWAE weights log p(x|z) + log U(z) − log vMF(z|x) — is the
plain VAE's (:class:`GaussianVAE`).

``kl_warmup_steps`` (default 600, one MNIST epoch at batch 100) weights the KL linearly from 1/n to
1 over the first n training updates (the KL annealing of Bowman et al. 2016 and Sønderby et al.
2016); evaluation, the IWAE weights and the reported "kl" term always use the full KL. Why: a vMF
with small κ in R^m tells the decoder almost nothing (E[μᵀz] ≈ κ/m), so at first the reconstruction
term barely rewards a larger κ while the KL penalises it, and training begins by fighting a collapse
onto the uniform (even a head started at a large κ collapsed to κ = kappa_min within the first
epoch). The warm-up improved the S-VAE's test IWAE bound at every size tried but did not help the
Gaussian VAE (docs/results/hyperspherical.md), so it is the S-VAE's setting only.

``g_cor`` (default off, as in the authors' reference code) adds the score-function term of the
κ-gradient of E_q log p(x|z) (Davidson et al. 2018, eq. 8; Naesseth et al. 2017), with the batch's
leave-one-out mean of log p(x|z) as baseline, so that the gradient in κ is unbiased; the pathwise
part alone is biased where κ is small (see :mod:`vaelab.distributions.vmf`). The loss value, the
draws and the decoder's gradient are unchanged. It brought no gain in the test IWAE bound
(docs/results/hyperspherical.md): a trained posterior's κ is in the hundreds, where the
pathwise gradient's bias is ≲ 2%.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VariantConfig, check, check_int, check_range
from ..distributions.vmf import HypersphericalUniform, VonMisesFisher
from ..registry import register
from ..optim import linear_warmup
from .vae import GaussianVAE


LINKS = ("exp", "softplus")


@dataclass
class Config(VariantConfig):
    kappa_min: float = 1.0  # κ = link(·) + kappa_min; the reference code's "+ 1" against collapse
    kappa_link: str = "exp"  # "exp": log-scale head; "softplus": the reference code's
    kappa_max: float = 1e5  # exp link only: κ capped here (the Bessel functions are tested up to 1e5)
    kl_warmup_steps: int = 600  # KL weight rises linearly to 1 over these training updates (0 = off)
    g_cor: bool = False  # add the rejection sampler's score-function gradient term (unbiased in κ)

    def validate(self) -> None:
        super().validate()
        check(self.latent_dim >= 2, "latent_dim", f"S-VAE lives on S^(m-1) and needs latent_dim m >= 2, got {self.latent_dim}")
        check_range(self.kappa_min, "kappa_min", lo=0)
        check(self.kappa_link in LINKS, "kappa_link", f"must be one of {', '.join(LINKS)}, got {self.kappa_link!r}")
        check_range(self.kappa_max, "kappa_max", lo=self.kappa_min, lo_open=True, unit=" (kappa_min)")
        check_int(self.kl_warmup_steps, "kl_warmup_steps", 0)
        check(isinstance(self.g_cor, bool), "g_cor", f"must be true or false, got {self.g_cor!r}")


@register("s-vae")
class SVAE(GaussianVAE):
    """S-VAE: vMF posterior, uniform prior on the hypersphere (Davidson et al. 2018)."""
    data_parallel = "the von Mises-Fisher rejection sampler's draws depend on the whole batch, so the processes' random streams would part"

    loss_labels = {"train": "−ELBO (nats/image; KL warmed up over the first updates)"}

    Config = Config
    latent_kind = "sphere"
    stored_defaults = {"kappa_link": "softplus", "kl_warmup_steps": 0}  # runs from before 2026-12-01

    def __init__(self, config: Config):
        super().__init__(config)
        self.head = nn.Linear(self.encoder.out_features, config.latent_dim + 1)  # (μ direction, κ)
        self.prior = HypersphericalUniform(config.latent_dim)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VonMisesFisher:
        h = self.head(self.encoder(x, self.condition(y))).float()
        direction, raw_kappa = h[:, :-1], h[:, -1]
        mu = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        c = self.config
        if c.kappa_link == "exp":  # capped in log space so the gradient is cut only beyond kappa_max
            kappa = raw_kappa.clamp(max=math.log(c.kappa_max - c.kappa_min)).exp() + c.kappa_min
        else:
            kappa = F.softplus(raw_kappa) + c.kappa_min
        return VonMisesFisher(mu, kappa)

    def draw(self, q: VonMisesFisher):
        """The reparameterised draw; with ``g_cor`` in training also log π(ε | κ) of the accepted
        proposals, so that the loss adds g_cor (the same draws either way)."""
        if self.config.g_cor and self.training:
            return q.rsample_with_eps_log_prob()
        return q.rsample(), None

    def regularizer(self, q: VonMisesFisher, z, batch, step):
        kl, terms = super().regularizer(q, z, batch, step)  # KL(vMF ‖ U(S^{m−1})), closed form
        return self.kl_weight(step) * kl, {**terms, "kappa": q.scale.mean()}

    def kl_weight(self, step: int) -> float:
        """The KL's weight at training update ``step`` (0-based): (step + 1) / kl_warmup_steps up to 1;
        always 1 in eval mode."""
        return linear_warmup(step, self.config.kl_warmup_steps) if self.training else 1.0

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded mode μ (the posterior mean A·μ lies inside the ball, off the decoder's domain)."""
        return torch.sigmoid(self.decode(self.encode(x, y).mode, y).float())

    @torch.no_grad()
    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean direction μ(x), a point on S^{m−1}."""
        return self.encode(x, y).mode
