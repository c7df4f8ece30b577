"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising").

The ELBO minus γ times the total correlation of the aggregate posterior (their eq. 2; docs/equations.md,
"FactorVAE"):

    L = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)) − γ·KL(q(z) ‖ q̄(z)),   q̄(z) = Π_j q(z_j),

minimised here as  recon + KL + γ·tc.  The total correlation is estimated by the density-ratio trick:
a discriminator D(z) with two logits (class 0: a code of q(z); class 1: a code of q̄(z)) trained by
logistic loss on as many codes of each class has, at its optimum, logit_0(z) − logit_1(z) =
log q(z) / q̄(z), so

    TC ≈ E_q(z)[logit_0(z) − logit_1(z)]

over the batch's codes z_i ~ q(z|x_i) (differentiable in the codes: the encoder's penalty). Codes of
q̄(z) come from :func:`vaelab.losses.density_ratio.permute_dims`: each latent dimension shuffled
across codes on its own (their Algorithm 1).

Batches. Their Algorithm 1 trains the VAE on one batch and the discriminator on its codes (class 0)
and on the permuted codes of a *second*, independent batch (class 1). vaelab's trainer hands a
variant one batch per step, so the batch is split: the VAE (and its TC term) uses the whole batch; the
discriminator takes the first half's codes as class 0 and the permuted codes of the second half as
class 1 (the halves are independent draws, as the two batches are; each update sees half as many
codes as the paper's). Order as in Algorithm 1: the VAE's update, then the discriminator's, from one
forward pass (the discriminator sees detached codes; the VAE's update does not move the
discriminator).

Hyperparameters (defaults: the paper's dSprites setting, as far as the brief goes; γ = 35 is not
checked against the PDF — Locatello et al. 2019 sweep γ ∈ {10, 20, 30, 40, 50, 100}):

* ``gamma`` (γ = 35): weight of the TC estimate.
* ``disc_hidden``, ``disc_layers`` (1000, 6): the discriminator MLP, LeakyReLU(0.2) after each hidden
  layer, two output logits (their appendix).
* ``disc_lr`` (1e-4), ``disc_betas`` ((0.5, 0.9)): the discriminator's own Adam (their appendix;
  ignored betas under RMSprop). The VAE's optimizer is the run's (their VAE: Adam, lr 1e-4).

The generative model and encoder are the VAE's, so ``log_weights`` gives the VAE's ELBO/IWAE bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VariantConfig, check, check_int, check_range, finite_number
from ..losses.density_ratio import permute_dims
from ..nn.discriminators import code_discriminator
from ..optim import update
from ..registry import register
from .vae import GaussianVAE


@dataclass
class FactorVAEConfig(VariantConfig):
    gamma: float = 35.0  # weight of the total-correlation estimate (paper's dSprites value, per the brief)
    disc_hidden: int = 1000  # discriminator width (paper: 1000)
    disc_layers: int = 6  # discriminator hidden layers (paper: 6), LeakyReLU 0.2
    disc_lr: float = 1e-4  # discriminator Adam learning rate (paper: 1e-4)
    disc_betas: tuple[float, float] = (0.5, 0.9)  # discriminator Adam betas (paper: 0.5, 0.9)

    def validate(self) -> None:
        super().validate()
        check_range(self.gamma, "gamma", lo=0)
        check_int(self.disc_hidden, "disc_hidden", 1)
        check_int(self.disc_layers, "disc_layers", 1)
        check_range(self.disc_lr, "disc_lr", lo=0, lo_open=True)
        b = self.disc_betas
        check(isinstance(b, (tuple, list)) and len(b) == 2 and all(finite_number(v) and 0 <= v < 1 for v in b),
              "disc_betas", f"must be two numbers in [0, 1), got {b!r}")



@register("factor-vae")
class FactorVAE(GaussianVAE):
    """FactorVAE (Kim & Mnih 2018): ELBO − γ·TC, the TC from a discriminator of codes vs dimension-wise permuted codes."""
    data_parallel = "its discriminator compares codes permuted across the whole batch, so one process's share of the batch would change the loss"

    loss_labels = {"train": "FactorVAE objective: recon + KL + γ·TC estimate (not nats)"}

    Config = FactorVAEConfig

    def __init__(self, config: FactorVAEConfig):
        super().__init__(config)
        # z → two logits (0: from q(z), 1: from Π_j q(z_j))
        self.discriminator = code_discriminator(config.latent_dim, config.disc_hidden, config.disc_layers, 2,
                                                nn.LeakyReLU, negative_slope=0.2)

    def _logits(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.discriminator(z)  # (B, 2)
        return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits  # ≥ fp32 under autocast

    def tc_estimate(self, z: torch.Tensor) -> torch.Tensor:
        """E[logit_0(z) − logit_1(z)] over codes z (B, D) of q(z): the density-ratio estimate of the TC."""
        logits = self._logits(z)
        return (logits[:, 0] - logits[:, 1]).mean()

    def discriminator_loss(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """½[CE(D(z_a), 0) + CE(D(permute_dims(z_b)), 1)] on detached codes, z_a the first half of the batch,
        z_b the second (a batch of one is both halves)."""
        z = z.detach()
        h = max(z.shape[0] // 2, 1)
        real, apart = z[:h], z[h:] if z.shape[0] > h else z
        real_logits, fake_logits = self._logits(real), self._logits(permute_dims(apart, generator))
        zeros = torch.zeros(real_logits.shape[0], dtype=torch.int64, device=z.device)
        ones = torch.ones(fake_logits.shape[0], dtype=torch.int64, device=z.device)
        return 0.5 * (F.cross_entropy(real_logits, zeros) + F.cross_entropy(fake_logits, ones))

    def regularizer(self, q, z, batch, step):
        kl = q.kl(self.prior).mean()
        tc = self.tc_estimate(z)
        return kl + self.config.gamma * tc, {"kl": kl, "tc": tc}

    def _objectives(self, batch, step):
        """(VAE objective, its detached terms with the discriminator's loss, discriminator objective)."""
        x, y = batch["x"], batch.get("y")
        q = self.encode(x, y)
        z = q.rsample()
        recon = -self.log_lik(self.decode(z, y), x).mean()
        reg, terms = self.regularizer(q, z, batch, step)
        total = recon + reg
        d_loss = self.discriminator_loss(z)
        return total, {"loss": total.detach(), "recon": recon.detach(), **{k: v.detach() for k, v in terms.items()},
                       "disc": d_loss.detach()}, d_loss

    def loss(self, batch, step):
        total, terms, _ = self._objectives(batch, step)
        return total, terms

    def _model_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def configure_optimizers(self, phase, make):
        return {"model": make(self._model_parameters()),
                "disc": make(self.discriminator.parameters(), lr=self.config.disc_lr, adam_betas=tuple(self.config.disc_betas))}

    def train_step(self, batch, step, optimizers, phase):
        """Algorithm 1 of Kim & Mnih: the VAE's update (ELBO − γ·TC, the discriminator held), then the
        discriminator's (codes of the first half vs permuted codes of the second), from one forward pass."""
        total, terms, d_loss = self._objectives(batch, step)
        update(total, optimizers["model"], params=self._model_parameters())
        update(d_loss, optimizers["disc"], params=list(self.discriminator.parameters()))
        return terms
