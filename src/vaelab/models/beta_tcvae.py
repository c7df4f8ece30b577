"""β-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in VAEs").

The KL term of the ELBO, averaged over the data (index n uniform over the N training points), splits
into three parts (their eq. 2; docs/equations.md, "β-TCVAE"):

    E_p(n) KL(q(z|n) ‖ p(z)) = I_q(z; n) + KL(q(z) ‖ Π_j q(z_j)) + Σ_j KL(q(z_j) ‖ p(z_j))
                               (index-code MI)  (total correlation)   (dimension-wise KL)

and β-TCVAE weights them (their eq. 4):

    L = E_q(z|n)[log p(n|z)] − α·I_q(z; n) − β·KL(q(z) ‖ Π_j q(z_j)) − γ·Σ_j KL(q(z_j) ‖ p(z_j)),

minimised here as  recon + α·mi + β·tc + γ·dwkl.  The aggregate posterior q(z) = (1/N) Σ_n q(z|n)
and its marginals are estimated from the batch's own posteriors and one draw z_i ~ q(z|n_i) per
example (:func:`vaelab.losses.divergences.kl_decomposition`), so the three terms telescope to the
Monte-Carlo KL E[log q(z|n) − log p(z)] of the batch whatever the estimator: α = β = γ = 1 is the
plain VAE with a sampled instead of an analytic KL.

Hyperparameters (defaults: the paper's dSprites setting, α = γ = 1 and β = 6; the paper's choice of
β = 6 is the brief's reading, not checked against the PDF):

* ``alpha``, ``beta``, ``gamma``: the weights α, β, γ (≥ 0).
* ``estimator``: how log q(z_i) and log q(z_i,j) are estimated from a batch of M out of N points.
  "mss" (default), minibatch stratified sampling (their appendix, the "improved" estimator of the
  authors' code): the own posterior weighs 1/N, the other M − 1 stand for the other N − 1 points;
  unbiased for the density over random batches, so the reported terms are in nats. "mws", minibatch
  weighted sampling (their Sec. 4.1): log q(z_i) ≈ logsumexp_j log q(z_i|n_j) − log(NM); its weights
  sum to 1/N, so mi is reported about log N too high, tc about (D − 1)·log N too high and dwkl
  D·log N too low (constants that carry no gradient; the sum is unaffected).

The training-set size N is the batch dict's ``"dataset_size"`` (the trainer's number of training
examples; in evaluation, the size of the evaluated set); a batch without it counts as the whole
dataset. The terms compare the examples of a batch with each other, so the loss is not a mean of
per-example terms (no data-parallel training).

The generative model and encoder are the VAE's, so ``log_weights`` gives the VAE's ELBO/IWAE bound
on log p(x) — a valid bound, though β-TCVAE did not maximise it unless α = β = γ = 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import VariantConfig, check_choice, check_range
from ..losses.divergences import kl_decomposition
from ..registry import register
from .vae import GaussianVAE

ESTIMATORS = ("mss", "mws")


@dataclass
class BetaTCVAEConfig(VariantConfig):
    alpha: float = 1.0  # weight of the index-code mutual information I(z; n) (paper: 1)
    beta: float = 6.0  # weight of the total correlation (paper's dSprites runs: 6)
    gamma: float = 1.0  # weight of the dimension-wise KL Σ_j KL(q(z_j) ‖ p(z_j)) (paper: 1)
    estimator: str = "mss"  # mss: minibatch stratified sampling (unbiased) | mws: minibatch weighted sampling

    def validate(self) -> None:
        super().validate()
        check_range(self.alpha, "alpha", lo=0)
        check_range(self.beta, "beta", lo=0)
        check_range(self.gamma, "gamma", lo=0)
        check_choice(self.estimator, "estimator", ESTIMATORS)


@register("beta-tcvae")
class BetaTCVAE(GaussianVAE):
    """β-TCVAE (Chen et al. 2018): recon + α·MI + β·TC + γ·dimension-wise KL, minibatch estimators (mss | mws)."""
    data_parallel = "its aggregate-posterior estimates compare the examples of a batch with each other, so one process's share of the batch would change the loss"

    loss_labels = {"train": "β-TCVAE objective: recon + α·MI + β·TC + γ·dim-KL (nats/image)"}

    Config = BetaTCVAEConfig

    def decomposition(self, q, z: torch.Tensor, dataset_size: int) -> dict[str, torch.Tensor]:
        """{"mi", "tc", "dwkl"}: the batch estimates of the three KL terms (scalars, ≥ fp32)."""
        m = z.shape[0]
        if self.config.estimator == "mss" and m < 2:
            raise ValueError("beta-tcvae: the stratified estimator needs a batch of at least 2")
        return kl_decomposition(z, q.loc, q.logvar, max(int(dataset_size), m), self.config.estimator)

    def regularizer(self, q, z, batch, step):
        c = self.config
        parts = self.decomposition(q, z, batch.get("dataset_size", z.shape[0]))
        reg = c.alpha * parts["mi"] + c.beta * parts["tc"] + c.gamma * parts["dwkl"]
        with torch.no_grad():
            kl = q.kl(self.prior).mean()  # the analytic KL, comparable with the other variants' "kl"
        return reg, {"kl": kl, **parts}
