"""f-CLSWGAN (Xian, Lorenz, Schiele & Akata, CVPR 2018): a conditional WGAN-GP that generates CNN
features of a class from its attribute vector, kept discriminative by a classification loss
(docs/equations.md, "f-CLSWGAN"). A baseline of ``vaelab zsl``: f-VAEGAN-D2 without the VAE and D2.

Phase ``classifier``: a softmax classifier P(y|x) is trained on the labelled real features (cross-
entropy). Phase ``train``, with that classifier frozen:
    critic:    E D(G(z, a), a) − E D(x, a) + λ GP(D)                  every step
    generator: −E D(G(z, a), a) − β E log P(y | G(z, a))             every ``n_critic``-th step
with z ~ N(0, I). ``loss`` (the epoch curves) is the critic's Wasserstein estimate in ``train``
and the classifier's cross-entropy in ``classifier``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..config import check_int, check_range
from ..losses.adversarial import critic_loss
from ..optim import update
from ..registry import register
from .base import Batch, Phase
from .zsl_base import ADAM_BETAS, FeatureConfig, FeatureGenerator, mlp


@dataclass
class Config(FeatureConfig):
    cls_weight: float = 0.01  # β, weight of the classification loss on generated features
    classifier_epochs: int = 10  # epochs of the frozen classifier's training (phase "classifier")

    def validate(self) -> None:
        super().validate()
        check_range(self.cls_weight, "cls_weight", lo=0)
        check_int(self.classifier_epochs, "classifier_epochs", 1)


@register("f-clswgan")
class FCLSWGAN(FeatureGenerator):
    """G(z, a), D(x, a) and a softmax classifier over all classes trained on the labelled features."""

    Config = Config
    loss_labels = {"classifier": "classifier cross-entropy (nats/example)",
                   "train": "critic's Wasserstein estimate E D(real) − E D(fake)"}

    def __init__(self, config: Config):
        super().__init__(config)
        f, a, h = config.data_shape[0], config.attr_dim, config.hidden
        self.critic = mlp([f + a, h, 1], last_bias=False)
        self.classifier = torch.nn.Linear(f, config.n_classes)

    def d(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.critic(torch.cat([x, a.to(x.dtype)], 1)).squeeze(1)

    def phases(self) -> list[Phase]:
        return [Phase("classifier", self.config.classifier_epochs), Phase("train")]

    def configure_optimizers(self, phase: str, make) -> dict[str, torch.optim.Optimizer]:
        if phase == "classifier":
            return {"classifier": make(self.classifier.parameters())}
        return {"generator": make(self.generator.parameters(), adam_betas=ADAM_BETAS),
                "critic": make(self.critic.parameters(), adam_betas=ADAM_BETAS)}

    def loss(self, batch: Batch, step: int):
        x, y, _ = self.split_batch(batch)
        ce = F.cross_entropy(self.classifier(x).float(), y)
        return ce, {"loss": ce.detach()}

    def _fake(self, y: torch.Tensor) -> torch.Tensor:
        return self.generate(self.noise(y.shape[0], y), y)

    def train_step(self, batch: Batch, step: int, optimizers: dict[str, torch.optim.Optimizer], phase: str) -> dict[str, torch.Tensor]:
        c = self.config
        if not (batch["y"] >= 0).any():  # no labelled row: nothing to learn from (every loss would be a mean over nothing)
            zero = batch["x"].new_zeros((), dtype=torch.float32)
            return {"loss": zero} if phase == "classifier" else {"loss": zero, "gp": zero}
        if phase == "classifier":
            ce, terms = self.loss(batch, step)
            update(ce, optimizers["classifier"])
            return terms
        x, y, _ = self.split_batch(batch)
        a = self.condition(y)
        with torch.no_grad():
            fake = self._fake(y)
        objective, w, gp = critic_loss(lambda t: self.d(t, a), x, fake, c.gp_weight)
        update(objective, optimizers["critic"])
        terms = {"loss": w, "gp": gp}
        if self.generator_turn():
            fake = self._fake(y)
            adv = -self.d(fake, a).float().mean()
            cls = F.cross_entropy(self.classifier(fake).float(), y)
            update(adv + c.cls_weight * cls, optimizers["generator"], params=list(self.generator.parameters()))
            terms["cls"] = cls.detach()
        return terms

