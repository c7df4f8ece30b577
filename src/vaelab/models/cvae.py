"""Conditional VAE (Sohn, Lee & Yan 2015) for label-conditional generation (docs/equations.md, "CVAE").

Sohn et al. bound a conditional likelihood with a recognition network q(z|x,y), a prior network
p(z|x) and a generation network p(y|x,z) (their eq. 4):
    log p(y|x) ≥ E_q(z|x,y) log p(y|x,z) − KL(q(z|x,y) ‖ p(z|x)).
Label-conditional image generation is the special case "x = the class label, y = the image". In this
library's names (image x, label y):

    ELBO(x|y) = E_q(z|x,y) log p(x|z,y) − KL(q(z|x,y) ‖ p(z|y)),

with ``prior="learned"``: p(z|y) = N(μ_y, diag σ_y²) from Sohn et al.'s prior network — here the
one-hot label through one hidden layer of ``prior_hidden`` ReLU units (0: a single linear map),
with its output layer initialised at zero so that it starts as N(0, I) — or ``prior="standard"``:
p(z|y) = N(0, I), the common simplification.

Why a learned prior with a hidden layer. The encoder sees y, but from the first steps it also reads
the class off the image and puts it into z, and the decoder then takes the class from z rather than
from y (decoding test codes with a different label keeps the original digit most of the time). So
sampling for label y only works if p(z|y) sits where the encoder puts class y. With N(0, I) it does
not (samples mix classes). A prior that is one linear map of the one-hot has one parameter per
(class, coordinate), and an adaptive optimiser moves each parameter by about the learning rate per
step: after the quick study's 400 steps at lr 1e-3 the class means had moved about 1 unit while the
encoder's class means were 2–3 units out, and about half the samples showed another digit. A hidden
layer lets every step move μ_y along many parameters at once, and the prior keeps up with the
encoder (measurements and commands: docs/results/cvae.md).

The default latent size is 8, not the library's 16: z only has to carry the style once the label
gives the class. With the linear prior on full MNIST the conditional accuracy was higher at D = 8
than at D = 16 (docs/results/cvae.md); the study runs every variant, this one included,
at latent size 16.

The encoder sees the one-hot label beside the image features and the decoder beside z (the
GaussianVAE base passes ``cond_dim`` to the backbones when ``conditional = True``). ``sample(n, y)``
draws class y; without y the labels are drawn uniformly (so the samples come from Σ_y p(y) p(x|y)).
``log_weights(x, k, y)`` bounds log p(x|y). Quadrant completion, the paper's structured-output task,
is ``cvae-quadrant``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import VariantConfig, check_choice, check_int
from ..distributions import DiagonalGaussian, StandardNormal
from ..nn import GaussianHead
from ..registry import register
from .base import Batch
from .vae import GaussianVAE

PRIORS = ("learned", "standard")


@dataclass
class Config(VariantConfig):
    latent_dim: int = 8  # the label carries the class, z the style; see the module docstring and docs/results/cvae.md
    prior: str = "learned"  # p(z|y): "learned" N(μ_y, σ_y²) (Sohn et al.'s prior network) | "standard" N(0, I)
    prior_hidden: int = 256  # width of the prior network's hidden layer (0: one linear map of the one-hot label)

    def validate(self) -> None:
        super().validate()
        check_choice(self.prior, "prior", PRIORS)
        check_int(self.prior_hidden, "prior_hidden", 0)


@register("cvae")
class CVAE(GaussianVAE):
    """q(z|x, y) and p(x|z, y), both conditioned on the one-hot label; prior p(z|y) learned or N(0, I)."""
    data_parallel = True

    loss_labels = {"train": "−ELBO of log p(x | y) (nats/image)"}

    Config = Config
    conditional = True
    stored_defaults = {"prior_hidden": 0}  # runs saved before the key existed have the linear prior

    def __init__(self, config: Config):
        super().__init__(config)
        if config.prior == "learned":
            h = config.prior_hidden
            head = GaussianHead(h or config.n_classes, config.latent_dim)  # → N(μ_y, σ_y²)
            nn.init.zeros_(head.weight)  # starts as N(0, I)
            nn.init.zeros_(head.bias)
            self.label_prior = nn.Sequential(nn.Linear(config.n_classes, h), nn.ReLU(), head) if h else head

    def condition(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError(f"{self.name}: a conditional variant needs the labels y (int64 classes or (B, n_classes) vectors)")
        return super().condition(y)

    def conditional_prior(self, y: torch.Tensor) -> DiagonalGaussian | StandardNormal:
        """p(z|y) for labels y (B,) or condition vectors (B, n_classes): batch shape (B,) either way."""
        if self.config.prior == "standard":
            return self.prior.expand(self.condition(y).shape[:1])
        return self.label_prior(self.condition(y))

    def regularizer(self, q: DiagonalGaussian, z: torch.Tensor, batch: Batch, step: int):
        """KL(q(z|x,y) ‖ p(z|y)), analytic (Sohn et al. eq. 4)."""
        kl = q.kl(self.conditional_prior(batch.get("y"))).mean()
        return kl, {"kl": kl}

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images of classes ``y`` (n,), as probabilities: z ~ p(z|y), x ~ p(x|z, y); y uniform when not given."""
        y = self.sample_labels(n, y, generator)
        z = self.conditional_prior(y).sample(generator=generator)  # (n, D): one draw per label
        return torch.sigmoid(self.decode(z, y).float())

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(k, B) log p(x|z_k,y) + log p(z_k|y) − log q(z_k|x,y): their logmeanexp bounds log p(x|y)."""
        q = self.encode(x, y)
        z = q.rsample((k,))  # (k, B, D)
        c = self.condition(y).repeat(k, 1)  # (k·B, n_classes), k-major like z below
        logits = self.decoder(z.reshape(-1, z.shape[-1]), c).view(k, *x.shape)
        return self.log_lik(logits, x) + self.conditional_prior(y).log_prob(z) - q.log_prob(z)
