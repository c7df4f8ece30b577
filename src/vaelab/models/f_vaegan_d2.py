"""f-VAEGAN-D2 (Xian, Sharma, Schiele & Akata, CVPR 2019): a conditional VAE and a conditional
WGAN-GP that share one generator, plus an unconditional critic on unlabelled features
(docs/equations.md, "f-VAEGAN-D2").

Networks: encoder E(x, a) → q(z|x, a) = N(μ, diag σ²); generator (the VAE's decoder) G(z, a);
conditional critic D1(x, a) on labelled features; and, in the transductive setting, critic D2(x)
that sees the unlabelled features of the unseen classes.

Losses per batch (labelled x with attributes a; unlabelled features x_u):
    VAE:  L_VAE = KL(q(z|x,a) ‖ N(0, I)) + BCE(x, G(z, a)),  z ~ q   (summed over feature dimensions)
    WGAN: L_D1 = E D1(G(z', a), a) − E D1(x, a) + λ GP(D1),     z' ~ N(0, I)
    D2:   L_D2 = E D2(G(z'', a_u)) − E D2(x_u) + λ GP(D2),       a_u: attributes of random unseen classes
The critics minimise L_D1 (+ L_D2) every step; every ``n_critic``-th step the encoder and generator
minimise L_VAE − γ E D1(G(z', a), a) (− γ' E D2(G(z'', a_u)) transductive, γ' = ``gamma_unlabelled``,
by default γ).

``loss`` (the epoch curves) is L_VAE of the labelled batch; the critics' Wasserstein estimates are
the terms ``w1`` and ``w2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import check_range
from ..losses.adversarial import critic_loss
from ..optim import update
from ..registry import register
from .base import Batch
from .zsl_base import ADAM_BETAS, FeatureConfig, FeatureVAE, mlp


@dataclass
class Config(FeatureConfig):
    gamma: float = 10.0  # γ, weight of the generator's adversarial loss against the VAE loss
    gamma_unlabelled: float | None = None  # weight of the D2 term (None: γ, vaelab's reading; docs/equations.md)

    def validate(self) -> None:
        super().validate()
        check_range(self.gamma, "gamma", lo=0)
        if self.gamma_unlabelled is not None:
            check_range(self.gamma_unlabelled, "gamma_unlabelled", lo=0)


@register("f-vaegan-d2")
class FVAEGAND2(FeatureVAE):
    """E(x, a), G(z, a), D1(x, a), and D2(x) when transductive."""

    Config = Config

    def __init__(self, config: Config):
        super().__init__(config)
        f, a, h = config.data_shape[0], config.attr_dim, config.hidden
        self.critic1 = mlp([f + a, h, 1], last_bias=False)
        self.critic2 = mlp([f, h, 1], last_bias=False) if config.transductive else None

    def d1(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.critic1(torch.cat([x, a.to(x.dtype)], 1)).squeeze(1)

    def d2(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic2(x).squeeze(1)

    def configure_optimizers(self, phase: str, make) -> dict[str, torch.optim.Optimizer]:
        critics = list(self.critic1.parameters()) + (list(self.critic2.parameters()) if self.critic2 is not None else [])
        vae = self.vae_parameters()
        return {"model": make(vae, adam_betas=ADAM_BETAS), "critic": make(critics, adam_betas=ADAM_BETAS)}

    def _fakes(self, y: torch.Tensor, n_unlabelled: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G(z', a(y)) and, transductive, G(z'', a_u) for ``n_unlabelled`` random unseen classes (feature probabilities)."""
        fake = self.generate(self.noise(y.shape[0], y), y)
        fake_u = None
        if self.critic2 is not None and n_unlabelled:
            yu = self.unseen_labels(n_unlabelled)
            fake_u = self.generate(self.noise(n_unlabelled, yu), yu)
        return fake, fake_u

    def train_step(self, batch: Batch, step: int, optimizers: dict[str, torch.optim.Optimizer], phase: str) -> dict[str, torch.Tensor]:
        c = self.config
        x, y, xu = self.split_batch(batch)
        a = self.condition(y)
        labelled = x.shape[0] > 0  # a batch may hold no labelled row (transductive, small batches): its terms are left out
        zero = x.new_zeros((), dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        # the critics: one update each step
        with torch.no_grad():
            fake, fake_u = self._fakes(y, xu.shape[0])
        objective = None
        if labelled:
            objective, w1, gp1 = critic_loss(lambda t: self.d1(t, a), x, fake, c.gp_weight)
            terms.update(w1=w1, gp1=gp1)
        else:
            terms.update(w1=zero, gp1=zero)
        if fake_u is not None:
            l2, w2, gp2 = critic_loss(self.d2, xu, fake_u, c.gp_weight)
            objective = l2 if objective is None else objective + l2
            terms.update(w2=w2, gp2=gp2)
        if objective is not None:
            update(objective, optimizers["critic"])
        # encoder and generator: every n_critic-th step (the VAE loss is reported every step, its graph
        # built only when it is used)
        turn = self.generator_turn()
        vae = recon = kl = zero
        if labelled:
            with torch.set_grad_enabled(turn and torch.is_grad_enabled()):
                vae, recon, kl = self.vae_loss(x, y)
        if turn and (labelled or fake_u is not None):
            fake, fake_u = self._fakes(y, xu.shape[0])
            adv = -self.d1(fake, a).float().mean() if labelled else zero
            if fake_u is not None and c.gamma_unlabelled is not None:  # D2's own weight
                objective = vae + c.gamma * adv - c.gamma_unlabelled * self.d2(fake_u).float().mean()
            else:  # γ weighs both terms
                if fake_u is not None:
                    adv = adv - self.d2(fake_u).float().mean()
                objective = vae + c.gamma * adv
            update(objective, optimizers["model"],
                   params=self.vae_parameters() if labelled else list(self.generator.parameters()))
        return {"loss": vae.detach(), "recon": recon.detach(), "kl": kl.detach(), **terms}
