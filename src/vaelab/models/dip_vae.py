"""DIP-VAE-I and DIP-VAE-II (Kumar, Sattigeri & Balakrishnan 2018, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations").

Both keep the ELBO and add a penalty that pushes a covariance C of the aggregate posterior
q(z) = E_p(x) q(z|x) towards the identity (their eq. 6 and 7; docs/equations.md, "DIP-VAE"):

    L = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)) − λ_od Σ_{i≠j} C_ij² − λ_d Σ_i (C_ii − 1)²,

minimised here as  recon + KL + dip,  dip = λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)², with

* ``mode="i"`` (DIP-VAE-I):  C = Cov_p(x)[μ(x)], the covariance of the encoder means;
* ``mode="ii"`` (DIP-VAE-II): C = Cov_q(z)[z] = E_p(x)[diag σ²(x)] + Cov_p(x)[μ(x)], the whole
  aggregate posterior's covariance (law of total covariance).

The expectations over p(x) are the batch's: Cov[μ] = mean(μ μᵀ) − mean(μ) mean(μ)ᵀ (the 1/M, maximum
likelihood form, as in disentanglement_lib), E[diag σ²] the mean of the batch's variances. Computed in
≥ fp32 whatever the autocast state (elementwise products, which CPU autocast leaves alone, not a matmul).

Hyperparameters: ``lambda_od`` (λ_od = 10) and ``lambda_d`` (λ_d; null = 10·λ_od for mode i, λ_od for
mode ii: the ratios of Locatello et al. 2019's study, disentanglement_lib's ``lambda_d_factor``; DIP-VAE-I
with λ_od = 10, λ_d = 100 is the setting Kumar et al. report for 2D shapes, as far as the brief and
Locatello et al.'s sweep {1, 2, 5, 10, 20, 50} go — not checked against the paper's PDF, nor is a
paper value for mode ii, so its λ_od = 10 is a value inside that sweep).

The penalty couples the examples of a batch (no data-parallel training). The generative model and
encoder are the VAE's, so ``log_weights`` gives the VAE's ELBO/IWAE bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import VariantConfig, check, check_choice, check_range, finite_number
from ..registry import register
from .vae import GaussianVAE

MODES = ("i", "ii")
#: λ_d / λ_od when ``lambda_d`` is null (disentanglement_lib's ``lambda_d_factor`` per DIP type)
DIAGONAL_FACTOR = {"i": 10.0, "ii": 1.0}


@dataclass
class DIPVAEConfig(VariantConfig):
    mode: str = "i"  # i: penalise Cov[μ(x)] | ii: penalise Cov_q(z) = E[diag σ²(x)] + Cov[μ(x)]
    lambda_od: float = 10.0  # weight of the squared off-diagonal entries of C
    lambda_d: float | None = None  # weight of Σ (C_ii − 1)²; null = 10·lambda_od (mode i) or lambda_od (mode ii)

    def validate(self) -> None:
        super().validate()
        check_choice(self.mode, "mode", MODES)
        check_range(self.lambda_od, "lambda_od", lo=0)
        check(self.lambda_d is None or (finite_number(self.lambda_d) and self.lambda_d >= 0), "lambda_d",
              f"must be a number >= 0 or null, got {self.lambda_d!r}")


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def aggregate_covariance(mu: torch.Tensor, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """(D, D): Cov[μ] over the batch (1/M form) for mu (M, D); with ``logvar`` (M, D) it adds the mean
    posterior variance on the diagonal, giving the aggregate posterior's covariance (DIP-VAE-II)."""
    mu = _f32(mu)
    centred = mu - mu.mean(0, keepdim=True)
    cov = (centred[:, :, None] * centred[:, None, :]).mean(0)  # elementwise: autocast never lowers it to bf16
    if logvar is not None:
        cov = cov + torch.diag_embed(_f32(logvar).exp().mean(0))
    return cov


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)² for a (D, D) matrix C: zero exactly at the identity."""
    diag = cov.diagonal()
    off = cov - torch.diag_embed(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


@register("dip-vae")
class DIPVAE(GaussianVAE):
    """DIP-VAE (Kumar et al. 2018): ELBO + λ_od·off-diagonal² + λ_d·(diagonal − 1)² of Cov[μ(x)] (mode=i) or Cov_q(z) (mode=ii)."""
    data_parallel = "its covariance penalty is computed over the whole batch, so one process's share of the batch would change the loss"

    loss_labels = {"train": "DIP-VAE objective: recon + KL + covariance penalty (not nats)"}

    Config = DIPVAEConfig

    def lambda_d(self) -> float:
        """λ_d: the configured one, else the mode's factor × λ_od."""
        c = self.config
        return float(c.lambda_d) if c.lambda_d is not None else DIAGONAL_FACTOR[c.mode] * float(c.lambda_od)

    def covariance(self, q) -> torch.Tensor:
        """The covariance the mode penalises, from the batch's posteriors q (loc, logvar (M, D))."""
        return aggregate_covariance(q.loc, q.logvar if self.config.mode == "ii" else None)

    def regularizer(self, q, z, batch, step):
        kl = q.kl(self.prior).mean()
        dip = dip_penalty(self.covariance(q), float(self.config.lambda_od), self.lambda_d())
        return kl + dip, {"kl": kl, "dip": dip}
