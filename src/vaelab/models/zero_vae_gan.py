"""Zero-VAE-GAN (Gao, Hou, Qin, Chen, Liu, Zhu, Zhang & Shao, IEEE TIP 29, 2020): a conditional VAE
and a conditional GAN sharing one generator, with a categorizer that keeps the generated features
classifiable; in the transductive setting, self-training on pseudo-labelled unseen features
(docs/equations.md, "Zero-VAE-GAN"; the self-training rounds are run by :mod:`vaelab.zsl.run`).

The authors' code is not public and the paper's training details could not be checked here; this is
vaelab's reading of the method, and docs/equations.md marks what is our choice. Networks: encoder
E(x, a) → q(z|x, a); generator G(z, a) (the VAE's decoder); discriminator D(x, a) → P(real); and a
categorizer C(x) → P(y|x) over all classes. Per batch of labelled features x with attributes a and
labels y, z' ~ N(0, I), x̃ = G(z', a):

    D:    −E log D(x, a) − E log(1 − D(x̃, a))          (the seed's eq. 40 prints log(−D): a typo)
    C:    −E log C(y | x)                                 (real labelled features)
    E, G: KL(q ‖ N(0, I)) + BCE(x, G(z, a)) − γ E log D(x̃, a) − β E log C(y | x̃)

D and C update, then E and G, once per batch each. Unlabelled rows (label −1) are not used by the
model: the transductive setting reaches it as pseudo-labelled rows in a later round.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..config import check, check_range
from ..optim import update
from ..registry import register
from .base import Batch
from .zsl_base import ADAM_BETAS, FeatureConfig, FeatureVAE, mlp


@dataclass
class Config(FeatureConfig):
    gamma: float = 1.0  # γ, weight of the generator's adversarial loss
    cls_weight: float = 1.0  # β, weight of the categorizer's loss on generated features

    def validate(self) -> None:
        super().validate()
        check_range(self.gamma, "gamma", lo=0)
        check_range(self.cls_weight, "cls_weight", lo=0)
        # inherited from the WGAN generators' config; this discriminator is a standard GAN's, updated once per batch
        base = FeatureConfig()
        for key in ("gp_weight", "n_critic"):
            check(getattr(self, key) == getattr(base, key), key, f"zero-vae-gan does not use it (its discriminator is a "
                  f"standard GAN's, updated once per batch, without a gradient penalty); leave it at {getattr(base, key)}")


@register("zero-vae-gan")
class ZeroVAEGAN(FeatureVAE):
    """E(x, a), G(z, a), D(x, a) (standard GAN) and the categorizer C(x)."""

    Config = Config

    def __init__(self, config: Config):
        super().__init__(config)
        f, a, h = config.data_shape[0], config.attr_dim, config.hidden
        self.discriminator = mlp([f + a, h, 1])
        self.categorizer = torch.nn.Linear(f, config.n_classes)

    def d_logit(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.discriminator(torch.cat([x, a.to(x.dtype)], 1)).squeeze(1).float()

    def configure_optimizers(self, phase: str, make) -> dict[str, torch.optim.Optimizer]:
        vae = self.vae_parameters()
        judges = list(self.discriminator.parameters()) + list(self.categorizer.parameters())
        return {"model": make(vae, adam_betas=ADAM_BETAS), "judges": make(judges, adam_betas=ADAM_BETAS)}

    def train_step(self, batch: Batch, step: int, optimizers: dict[str, torch.optim.Optimizer], phase: str) -> dict[str, torch.Tensor]:
        c = self.config
        x, y, _ = self.split_batch(batch)
        if x.shape[0] == 0:  # no labelled row: nothing to learn from (every loss would be a mean over nothing)
            return dict.fromkeys(("loss", "recon", "kl", "d", "cat", "g_adv", "g_cls"), x.new_zeros((), dtype=torch.float32))
        a = self.condition(y)
        # discriminator and categorizer
        with torch.no_grad():
            fake = self.generate(self.noise(y.shape[0], y), y)
        real_logit, fake_logit = self.d_logit(x, a), self.d_logit(fake, a)
        d_loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) \
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
        c_loss = F.cross_entropy(self.categorizer(x).float(), y)
        update(d_loss + c_loss, optimizers["judges"])
        # encoder and generator
        vae, recon, kl = self.vae_loss(x, y)
        fake = self.generate(self.noise(y.shape[0], y), y)
        g_logit = self.d_logit(fake, a)
        g_adv = F.binary_cross_entropy_with_logits(g_logit, torch.ones_like(g_logit))  # −E log D(x̃, a)
        g_cls = F.cross_entropy(self.categorizer(fake).float(), y)
        update(vae + c.gamma * g_adv + c.cls_weight * g_cls, optimizers["model"],
               params=self.vae_parameters())
        return {"loss": vae.detach(), "recon": recon.detach(), "kl": kl.detach(), "d": d_loss.detach(), "cat": c_loss.detach(),
                "g_adv": g_adv.detach(), "g_cls": g_cls.detach()}
