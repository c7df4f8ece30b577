"""The shared base of the zero-shot feature generators (f-CLSWGAN, f-VAEGAN-D2, Zero-VAE-GAN).

They model CNN *feature vectors* x (data_shape (F,), values in [0, 1]) of a class from the class's
attribute vector a(y), not images. The attribute table (n_classes × A) is part of the config, so a
label y is mapped to its condition a(y) inside the model (``condition``) and float vectors pass as
attributes. Labels of −1 mark unlabelled examples (the transductive setting): ``split_batch`` keeps
them apart, and only a method's unlabelled terms read them.

Shared pieces: MLPs with LeakyReLU(0.2) hidden layers, a generator G(z, a) with z ~ N(0, I) whose
output layer is a sigmoid (``output="sigmoid"``, the default) or a ReLU (``output="relu"``, f-CLSWGAN's
published generator: features in [0, ∞)), ``sample(n, y)`` (features of classes y), and the optimizers'
Adam betas (0.5, 0.999) of the WGAN literature, and the WGAN generators' turn (``generator_turn``: every
``n_critic``-th update of the phase, counted by the trainer in ``Variant.phase_steps``). Trained and
evaluated by ``vaelab zsl`` (:mod:`vaelab.zsl.run`), not by the image study.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from torch.nn import functional as F

from .. import rng
from ..config import VariantConfig, check, check_choice, check_int, check_range
from ..errors import ConfigError
from ..distributions import DiagonalGaussian, StandardNormal
from ..nn import GaussianHead
from .base import Batch, NotAvailable, Variant

ADAM_BETAS = (0.5, 0.999)
#: The generator's output layers: ``sigmoid`` (features in (0, 1)) or ``relu`` (f-CLSWGAN's, in [0, ∞)).
OUTPUTS = ("sigmoid", "relu")


def mlp(widths: list[int], out_act: nn.Module | None = None, last_bias: bool = True) -> nn.Sequential:
    """Linear layers through ``widths`` with LeakyReLU(0.2) between them (and ``out_act`` after the
    last). A Wasserstein critic's last layer has no bias (its loss does not depend on one)."""
    layers: list[nn.Module] = []
    n = len(widths) - 1
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=last_bias or i < n - 1))
        if i < len(widths) - 2:
            layers.append(nn.LeakyReLU(0.2))
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


@dataclass
class FeatureConfig(VariantConfig):
    """Fields every feature generator has. ``attributes``: one vector per class (n_classes rows)."""

    latent_dim: int = 16
    backbone: str = "mlp"  # unused: the networks are MLPs of width ``hidden``
    data_shape: tuple[int, ...] = (128,)
    attributes: list = field(default_factory=list)  # required: vaelab zsl fills it from its benchmark or --splits file
    hidden: int = 512
    output: str = "sigmoid"  # the generator's output layer (OUTPUTS)
    gp_weight: float = 10.0  # λ of the gradient penalty
    n_critic: int = 5  # critic updates per generator update
    transductive: bool = False  # learn from unlabelled features (label −1) of the ``unseen`` classes too
    unseen: list = field(default_factory=list)  # the classes with no labelled training features

    def validate(self) -> None:
        super().validate()
        check(len(self.data_shape) == 1, "data_shape", f"feature generators take feature vectors (F,), got {self.data_shape!r}")
        rows = self.attributes
        check(isinstance(rows, list) and (not rows or (len(rows) == self.n_classes and all(isinstance(r, list) and r for r in rows)
                                                       and len({len(r) for r in rows}) == 1)), "attributes",
              f"must be {self.n_classes} equally long lists of numbers (one per class)")
        check(len({tuple(r) for r in rows}) == len(rows), "attributes", "two classes share an attribute vector")
        # an empty table passes here (a config may be filled in later) and is refused when a model is built
        check_int(self.hidden, "hidden", 1)
        check_choice(self.output, "output", OUTPUTS)
        check_range(self.gp_weight, "gp_weight", lo=0)
        check_int(self.n_critic, "n_critic", 1)
        check(isinstance(self.transductive, bool), "transductive", f"must be true or false, got {self.transductive!r}")
        check(isinstance(self.unseen, list) and all(isinstance(c, int) and 0 <= c < self.n_classes for c in self.unseen)
              and len(set(self.unseen)) == len(self.unseen), "unseen", f"must be distinct class numbers < {self.n_classes}")
        check(not self.transductive or bool(self.unseen), "unseen", "the transductive setting needs the unseen classes")

    @property
    def attr_dim(self) -> int:
        return len(self.attributes[0])


class FeatureGenerator(Variant):
    """G(z, a): z ~ N(0, I) (latent_dim) and the attribute vector → a feature vector (in [0, 1] with the
    sigmoid output, in [0, ∞) with the ReLU one)."""
    data_parallel = "it is trained on cached features by `vaelab zsl`, not by `vaelab train`"

    Config = FeatureConfig
    conditional = True
    data_kind = "features"
    retired_progress = {"critic_updates": ("phase_steps", 0)}  # its own count of the adversarial phase's updates before Variant.progress

    def __init__(self, config: FeatureConfig):
        if not config.attributes:
            raise ConfigError("attributes: required, one attribute vector per class (vaelab zsl fills it in from "
                              "its benchmark or the --splits file)")
        super().__init__(config)
        self.register_buffer("class_attributes", torch.tensor(config.attributes, dtype=torch.float32), persistent=False)
        self.register_buffer("unseen_classes", torch.tensor(config.unseen, dtype=torch.int64), persistent=False)
        f, a, h = config.data_shape[0], config.attr_dim, config.hidden
        self.generator = mlp([config.latent_dim + a, h, f])  # pre-activations; ``activate`` gives the features

    def condition(self, y: torch.Tensor | None) -> torch.Tensor:
        """Labels → their classes' attribute vectors; float (B, A) vectors are attributes already."""
        if y is None:
            raise ValueError(f"{self.name}: needs class labels or attribute vectors")
        if y.dtype in (torch.int64, torch.int32):
            if (y < 0).any():
                raise ValueError(f"{self.name}: unlabelled examples (label −1) have no attribute vector")
            return self.class_attributes[y]
        return y.float()

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activations (logits with the sigmoid output) of the features of G(z, a(y))."""
        return self.generator(torch.cat([z, self.condition(y).to(z.dtype)], 1))

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        """The generator's output layer applied to ``decode``'s pre-activations (float32)."""
        h = h.float()
        return torch.relu(h) if self.config.output == "relu" else torch.sigmoid(h)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, a(y)): features."""
        return self.activate(self.decode(z, y))

    @staticmethod
    def split_batch(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(labelled x, their labels, unlabelled x) of a batch; label −1 marks unlabelled examples."""
        x, y = batch["x"], batch["y"]
        lab = y >= 0
        return x[lab], y[lab], x[~lab]

    def noise(self, n: int, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return rng.randn((n, self.config.latent_dim), generator, like.device)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n feature vectors of classes ``y`` (n,) (uniform over all classes when not given)."""
        y = self.sample_labels(n, y, generator)
        z = self.noise(n, self.class_attributes, generator)
        return self.generate(z, y)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotAvailable(f"{self.name}: has no encoder")

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Without an encoder: a fresh draw of the same classes' features."""
        return self.sample(x.shape[0], y)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return x.flatten(1)

    def generator_turn(self) -> bool:
        """Whether this update of the phase is the generator's: the 1st, (n_critic + 1)-th, ... (the
        trainer counts the phase's updates, ``phase_steps``; a refinement round is a new run that
        counts from 0 again)."""
        return self.phase_steps % self.config.n_critic == 0

    def unseen_labels(self, n: int) -> torch.Tensor:
        """n labels drawn uniformly from the unseen classes (the run's RNG stream)."""
        return self.unseen_classes[torch.randint(len(self.unseen_classes), (n,), device=self.unseen_classes.device)]


class FeatureVAE(FeatureGenerator):
    """A feature generator whose G is also the decoder of a conditional VAE: encoder E(x, a) →
    q(z|x, a) = N(μ, diag σ²), L_VAE = KL(q ‖ N(0, I)) + BCE(x; G(z, a)) summed over dimensions,
    z ~ q (f-VAEGAN-D2, Zero-VAE-GAN)."""

    loss_labels = {"train": "VAE loss: KL + BCE over feature dimensions (per example)"}

    def __init__(self, config: FeatureConfig):
        if config.output != "sigmoid":
            raise ConfigError(f"output: {config.output!r} does not fit {self.name}'s BCE reconstruction, which needs "
                              f"the sigmoid output (f-VAEGAN-D2's published decoder); use output=sigmoid")
        super().__init__(config)
        f, a, h, d = config.data_shape[0], config.attr_dim, config.hidden, config.latent_dim
        self.encoder = mlp([f + a, h])
        self.head = GaussianHead(h, d)
        self.prior = StandardNormal(d)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        return self.head(F.leaky_relu(self.encoder(torch.cat([x, self.condition(y).to(x.dtype)], 1)), 0.2))

    def vae_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.encoder, self.head, self.generator) for p in m.parameters()]

    def vae_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(KL + BCE, BCE, KL), means over the batch of sums over dimensions."""
        q = self.encode(x, y)
        recon = F.binary_cross_entropy_with_logits(self.decode(q.rsample(), y).float(), x.float(), reduction="none").sum(1).mean()
        kl = q.kl(self.prior).mean()
        return recon + kl, recon, kl

    def loss(self, batch: Batch, step: int):
        x, y, _ = self.split_batch(batch)
        total, recon, kl = self.vae_loss(x, y)
        return total, {"loss": total.detach(), "recon": recon.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(self.encode(x, y).mean, y)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, y).mean
