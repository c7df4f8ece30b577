"""Conditional VAE (Sohn, Lee & Yan 2015) for label-conditional generation (EQUATIONS.md "CVAE").

Sohn et al. bound a conditional likelihood: log p(y|x) ≥ E_q(z|x,y) log p(y|x,z) − KL(q(z|x,y) ‖ p(z|x))
(their eq. 4). Label-conditional image generation is the special case "x = the class label, y = the
image" with the prior p(z|label) = N(0, I): in this library's names (image x, label y)

    ELBO(x|y) = E_q(z|x,y) log p(x|z,y) − KL(q(z|x,y) ‖ N(0, I)).

The encoder sees the one-hot label beside the image features and the decoder beside z (the
GaussianVAE base passes ``cond_dim`` to the backbones when ``conditional = True``), so z is free to
carry the style and the label carries the class. ``sample(n, y)`` draws class y; without y the labels
are drawn uniformly (so the samples come from Σ_y p(y) p(x|y)). ``log_weights(x, k, y)`` bounds log p(x|y).
The structured-output task of the paper (quadrant completion, a learned p(z|x)) is ``cvae-quadrant``.
"""
from __future__ import annotations

import torch

from ..registry import register
from .vae import GaussianVAE


@register("cvae")
class CVAE(GaussianVAE):
    """q(z|x, y) and p(x|z, y), both conditioned on the one-hot label; N(0, I) prior."""

    conditional = True

    def condition(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError(f"{self.name}: a conditional variant needs the labels y (int64 classes or (B, n_classes) vectors)")
        return super().condition(y)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images of classes ``y`` (n,), as probabilities; y drawn uniformly when not given."""
        if y is None:
            y = torch.randint(self.config.n_classes, (n,), generator=generator)
        if y.shape[0] != n:
            raise ValueError(f"{self.name}: sample(n={n}) got {y.shape[0]} labels")
        return super().sample(n, y, generator)
