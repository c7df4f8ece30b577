"""Wasserstein auto-encoders (Tolstikhin, Bousquet, Gelly & Schölkopf 2018): WAE-MMD and WAE-GAN.

    min  E_PX E_Q(Z|X) c(X, G(Z)) + λ D_Z(Q_Z, P_Z)          (their eq. 4; docs/equations.md, "WAE")

Q_Z is the aggregate posterior (the batch of codes), P_Z = N(0, I). Unlike the VAE, the penalty acts
on the *aggregate* posterior only, so the encoder may be deterministic (their experiments' choice).

* ``mode="mmd"`` (their Algorithm 1): D_Z = MMD² with the multi-scale inverse-multiquadratic kernel
  C/(C + ‖z − z'‖²), C = 2·D·σ_p²·s, s ∈ {.1, .2, .5, 1, 2, 5, 10}, U-statistic (as in their code).
* ``mode="gan"`` (their Algorithm 2): a latent discriminator d(z) (an MLP, 4 × 512 ReLU on MNIST)
  learns to tell prior draws from codes by ascending λ·[log d(z_prior) + log(1 − d(z̃))]; then the
  encoder/decoder descend c(x, G(z̃)) − λ·log d(z̃) (the non-saturating form). The discriminator has
  its own optimizer (``disc_lr``, 5e-4 = half the auto-encoder's rate, as in their MNIST config).

Hyperparameters (defaults = the authors' MNIST configuration, ``configs.py`` of tolstikhin/wae):

* ``lam`` (λ = 10): weight of D_Z.
* ``cost`` + ``cost_scale``: the reconstruction cost c. "l2sq" (default) is the paper's squared
  Euclidean ‖x − G(z)‖² with G(z) = sigmoid(decoder logits), scaled by 0.05 as in their code (their λ is
  relative to that scale). "bce" is the Bernoulli negative log-likelihood in nats (the repo's other
  variants' reconstruction term; common in practice): with it use ``cost_scale=1`` and a λ ~20× larger
  (BCE in nats ≈ 20× the scaled L2 on MNIST) to keep the same balance.
* ``encoder``: "deterministic" (default; z = f(x), as in their experiments) or "gaussian"
  (z ~ N(μ(x), σ²(x)); Rubenstein et al. 2018 note σ then tends to collapse).
* ``kernel`` (mmd mode): "imq" (default) or "rbf"; ``mmd_unbiased`` (True: U-statistic).
* ``disc_hidden``, ``disc_layers``, ``disc_lr`` (gan mode): the discriminator's width, depth and rate.
  The paper's latent size on MNIST is 8; vaelab keeps the shared default (16) for comparability.

Likelihood: a WAE is not trained on a likelihood and a deterministic encoder has no density, so
``log_weights`` raises NotAvailable. With ``encoder="gaussian"`` it returns the importance weights of
the Bernoulli model p(z)·Bern(x | sigmoid(G(z))) — a valid lower bound on that model's log p(x), but
of a model the WAE objective never fitted (least of all with the L2 cost): read it with care.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VariantConfig, check, check_choice, check_int, check_range
from ..distributions.base import Located, SampleShape, as_sample_shape
from ..losses.divergences import mmd
from ..nn.discriminators import code_discriminator
from ..optim import update
from ..registry import register
from .base import NotAvailable
from .vae import GaussianVAE


class PointMass(Located):
    """δ(z − loc): the "distribution" of a deterministic encoder; batch shape (B,), event shape (D,)."""

    def __init__(self, loc: torch.Tensor):
        self.loc = loc

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """loc expanded to sample_shape + (B, D) (an int n means (n,)); the gradient reaches loc."""
        return self.loc.expand(*as_sample_shape(sample_shape), *self.loc.shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotAvailable("a deterministic encoder (point mass) has no density")


@dataclass
class WAEConfig(VariantConfig):
    mode: str = "mmd"  # mmd: WAE-MMD (Algorithm 1) | gan: WAE-GAN with a latent discriminator (Algorithm 2)
    lam: float = 10.0  # λ, weight of the latent penalty (authors' MNIST value, relative to cost_scale·L2²)
    cost: str = "l2sq"  # l2sq: ‖x − sigmoid(logits)‖² (paper) | bce: Bernoulli NLL in nats
    cost_scale: float = 0.05  # multiplies the cost; 0.05 is the authors' code for l2sq; use 1 with bce
    encoder: str = "deterministic"  # deterministic (paper's experiments) | gaussian
    kernel: str = "imq"  # mmd mode: imq (multi-scale, paper) | rbf
    mmd_unbiased: bool = True  # mmd mode: U-statistic as in the authors' code
    disc_hidden: int = 512  # gan mode: discriminator width (paper, MNIST: 512)
    disc_layers: int = 4  # gan mode: hidden layers of the discriminator (paper, MNIST: 4)
    disc_lr: float = 5e-4  # gan mode: discriminator learning rate (authors' MNIST lr_adv)

    def validate(self) -> None:
        super().validate()
        check_choice(self.mode, "mode", ("mmd", "gan"))
        check_range(self.lam, "lam", lo=0)
        check_choice(self.cost, "cost", ("l2sq", "bce"))
        check_range(self.cost_scale, "cost_scale", lo=0, lo_open=True)
        check_choice(self.encoder, "encoder", ("deterministic", "gaussian"))
        check_choice(self.kernel, "kernel", ("imq", "rbf"))
        check(isinstance(self.mmd_unbiased, bool), "mmd_unbiased", f"must be true or false, got {self.mmd_unbiased!r}")
        check_int(self.disc_hidden, "disc_hidden", 1)
        check_int(self.disc_layers, "disc_layers", 1)
        check_range(self.disc_lr, "disc_lr", lo=0, lo_open=True)



@register("wae")
class WAE(GaussianVAE):
    """Wasserstein auto-encoder (Tolstikhin et al. 2018): cost + λ·D_Z(aggregate posterior, prior); mode=mmd|gan."""
    data_parallel = "its MMD penalty compares the examples of a batch with each other, so one process's share of the batch would change the loss"

    loss_labels = {"train": "WAE objective: cost + λ·penalty (not nats)"}

    Config = WAEConfig

    def __init__(self, config: WAEConfig):
        super().__init__(config)
        if config.encoder == "deterministic":
            self.head = nn.Linear(self.encoder.out_features, config.latent_dim)  # z = f(x): no variance half
        if config.mode == "gan":
            self.discriminator = code_discriminator(config.latent_dim, config.disc_hidden, config.disc_layers, 1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        if self.config.encoder == "gaussian":
            return super().encode(x, y)
        return PointMass(self.head(self.encoder(x, self.condition(y))).float())

    # ----- pieces of the objective -----------------------------------------------------------------
    def cost(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """cost_scale · c(x, G(z)) per example (B,), in fp32."""
        if self.config.cost == "bce":
            c = -self.log_lik(logits, x)
        else:
            c = (torch.sigmoid(logits.float()) - x.float()).pow(2).flatten(1).sum(-1)
        return self.config.cost_scale * c

    def _disc_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(z).float().squeeze(-1)  # (B,)

    def _disc_loss(self, z_fake: torch.Tensor) -> torch.Tensor:
        """λ·[−log d(z_prior) − log(1 − d(z̃))]: the discriminator's loss (minimised)."""
        z_real = self.prior.sample(z_fake.shape[0], device=z_fake.device)
        real, fake = self._disc_logits(z_real), self._disc_logits(z_fake)
        bce = F.binary_cross_entropy_with_logits
        return self.config.lam * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))

    def _objective(self, x, y, z):
        """Encoder/decoder objective cost + λ·penalty for codes z = z̃(x), and its (detached) terms."""
        c = self.config
        logits = self.decode(z, y)
        cost = self.cost(logits, x).mean()
        if c.mode == "mmd":
            prior_z = self.prior.sample(z.shape[0], device=z.device)
            penalty = mmd(z, prior_z, kernel=c.kernel, unbiased=c.mmd_unbiased)
        else:
            fake = self._disc_logits(z)
            penalty = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # −log d(z̃), non-saturating
        total = cost + c.lam * penalty
        with torch.no_grad():
            recon = -self.log_lik(logits, x).mean()  # nats, comparable with the other variants' "recon"
        return total, {"loss": total.detach(), "cost": cost.detach(), "recon": recon, c.mode: penalty.detach()}

    # ----- the Variant contract --------------------------------------------------------------------
    def loss(self, batch, step):
        x, y = batch["x"], batch.get("y")
        z = self.encode(x, y).rsample()  # (B, D)
        total, terms = self._objective(x, y, z)
        if self.config.mode == "gan":
            with torch.no_grad():
                terms["disc"] = self._disc_loss(z.detach())
        return total, terms

    def configure_optimizers(self, phase, make):
        if self.config.mode != "gan":
            return super().configure_optimizers(phase, make)
        model = [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]
        return {"model": make(model), "disc": make(self.discriminator.parameters(), lr=self.config.disc_lr)}

    def train_step(self, batch, step, optimizers, phase):
        """mmd: one update of everything. gan: Algorithm 2 — a discriminator step on (prior draws, codes),
        then an encoder/decoder step against the updated discriminator, on the same batch and codes."""
        if self.config.mode != "gan":
            return super().train_step(batch, step, optimizers, phase)
        x, y = batch["x"], batch.get("y")
        z = self.encode(x, y).rsample()  # (B, D)
        d_loss = self._disc_loss(z.detach())
        update(d_loss, optimizers["disc"])
        total, terms = self._objective(x, y, z)
        update(total, optimizers["model"])  # also leaves gradients on the discriminator; its next update clears them
        return {**terms, "disc": d_loss.detach()}

    def log_weights(self, x, k, y=None):
        if self.config.encoder == "deterministic":
            raise NotAvailable("wae: a deterministic encoder has no density q(z|x), so there is no ELBO/IWAE bound "
                               "(the WAE objective is not a likelihood bound); train with --set encoder=gaussian for one")
        return super().log_weights(x, k, y)
