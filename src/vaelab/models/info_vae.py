"""InfoVAE / MMD-VAE (Zhao, Song & Ermon 2017/2019; the seed's eq. 18, corrected in EQUATIONS.md).

    L = E_pD E_q(z|x)[log p(x|z)] − (1 − α) E_pD KL(q(z|x) ‖ p(z)) − (α + λ − 1) D(q(z) ‖ p(z)),

minimised here as  recon + (1 − α)·KL + (α + λ − 1)·MMD²(q(z), p(z)).  q(z) is the aggregate
posterior: the divergence compares the batch of codes z_i ~ q(z|x_i) (one reparameterised draw per
example, so the encoder is *stochastic*: the seed's own code fed the deterministic encoder mean, a
known bug, see ShengjiaZhao/MMD-Variational-Autoencoder issue #3) with as many fresh prior draws.
D = MMD² (the "MMD-VAE" member of the family), Gaussian kernel by default as in the authors' code.

Hyperparameters:

* ``alpha`` (α): information preference. α = 1 removes the per-example KL entirely (the MMD-VAE of the
  authors' tutorial and code, whose default is ``mi = 1.0``); α < 1 adds (1 − α)·KL; α = 0, λ = 1 is
  the plain VAE. Needs α ≤ 1 (else the KL is rewarded and diverges).
* ``lam`` (λ): with α, sets the divergence weight α + λ − 1 (needs ≥ 0). MMD² between minibatches is a
  small number (≈ 1e-3–1e-1) next to a reconstruction term of ~100 nats summed over pixels, so λ has
  to be large for the prior match to matter; the authors' experiment code uses λ of tens to thousands
  (``reg_size`` 50 in their likelihood script; their Lagrangian-VAE code multiplies MMD by 10⁴).
  Default 1000; see the README for the smoke-run check of this value.
* ``kernel``: "rbf" (default; bandwidth s² = D unless ``bandwidth`` is set) or "imq" (WAE's multi-scale
  inverse multiquadratic). ``mmd_unbiased``: False (default) is the biased V-statistic the authors use;
  True the U-statistic.

The generative model (prior, decoder) and Gaussian encoder are the VAE's, so ``log_weights`` gives a
valid ELBO/IWAE bound on log p(x) — though InfoVAE did not maximise that bound.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import VariantConfig, check, check_choice
from ..losses.divergences import mmd
from ..registry import register
from .beta_vae import finite_number
from .vae import GaussianVAE


@dataclass
class InfoVAEConfig(VariantConfig):
    alpha: float = 1.0  # information preference; 1 = no per-example KL (MMD-VAE as in the authors' code)
    lam: float = 1000.0  # λ; MMD weight is alpha + lam − 1 (MMD is tiny next to ~100 nats of recon)
    kernel: str = "rbf"  # rbf (authors' choice) | imq (WAE's multi-scale inverse multiquadratic)
    bandwidth: float | None = None  # rbf: kernel width s; None = sqrt(latent_dim)
    mmd_unbiased: bool = False  # False: biased V-statistic as in the authors' code; True: U-statistic

    def validate(self) -> None:
        super().validate()
        check(finite_number(self.alpha) and self.alpha <= 1, "alpha", f"must be a number <= 1 (KL weight is 1 − alpha), got {self.alpha!r}")
        check(finite_number(self.lam) and self.lam >= 0, "lam", f"must be a number >= 0, got {self.lam!r}")
        check(self.alpha + self.lam - 1 >= 0, "lam", f"alpha + lam − 1 (the MMD weight) must be >= 0, got {self.alpha + self.lam - 1!r}")
        check_choice(self.kernel, "kernel", ("rbf", "imq"))
        check(self.bandwidth is None or (finite_number(self.bandwidth) and self.bandwidth > 0), "bandwidth",
              f"must be a positive number or null, got {self.bandwidth!r}")
        check(isinstance(self.mmd_unbiased, bool), "mmd_unbiased", f"must be true or false, got {self.mmd_unbiased!r}")


@register("info-vae")
class InfoVAE(GaussianVAE):
    """InfoVAE / MMD-VAE (Zhao et al. 2017): recon + (1−α) KL + (α+λ−1) MMD(aggregate posterior, prior)."""

    Config = InfoVAEConfig

    def regularizer(self, q, z, batch, step):
        c = self.config
        kl = q.kl(self.prior).mean()
        prior_z = self.prior.sample(z.shape[0], device=z.device)  # (B, D), global RNG stream
        kw = {"bandwidth": c.bandwidth} if c.kernel == "rbf" else {}
        div = mmd(z, prior_z, kernel=c.kernel, unbiased=c.mmd_unbiased, **kw)
        reg = (c.alpha + c.lam - 1.0) * div
        if c.alpha != 1:
            reg = reg + (1.0 - c.alpha) * kl
        return reg, {"kl": kl, "mmd": div}
