"""Diagonal Gaussian posterior N(μ, diag σ²) parameterised by (μ, log σ²), and the N(0, I) prior.

Closed-form KLs registered here: KL(N(μ, σ²) ‖ N(0, I)) and KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²))
(:func:`~vaelab.losses.divergences.kl_normal_std`, :func:`~vaelab.losses.divergences.kl_normal_normal`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..losses.divergences import kl_normal_normal, kl_normal_std
from .base import Centred, Distribution, Located, SampleShape, as_sample_shape, register_kl
from ..share import WHOLE, BatchShare

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian(Located):
    """N(loc, diag exp(logvar)); batch shape loc.shape[:-1] (usually (B,)), event shape (D,)."""

    def __init__(self, loc: torch.Tensor, logvar: torch.Tensor):
        self.loc = loc
        self.logvar = logvar

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.logvar.exp()

    @property
    def scale(self) -> torch.Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None,
                share: BatchShare = WHOLE) -> torch.Tensor:
        """Reparameterised sample z = μ + σ ⊙ ε, shape sample_shape + (B, D); ε from ``share``, the part
        of the batch the model trains on (data-parallel training: the global batch's noise, this share's rows)."""
        shape = as_sample_shape(sample_shape) + tuple(self.loc.shape)
        eps = share.randn(shape, len(as_sample_shape(sample_shape)), dtype=self.loc.dtype, device=self.loc.device, generator=generator)
        return self.loc + self.scale * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; μ, σ²) summed over the last dim; broadcasts leading sample dims."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.loc) ** 2 / self.logvar.exp()).sum(-1)

    def entropy(self) -> torch.Tensor:
        return 0.5 * (LOG_2PI + 1.0 + self.logvar).sum(-1)

    def expand(self, batch_shape: Sequence[int]) -> "DiagonalGaussian":
        shape = (*batch_shape, *self.event_shape)
        return DiagonalGaussian(self.loc.expand(shape), self.logvar.expand(shape))


class StandardNormal(Centred):
    """The N(0, I) prior on R^``dim``; batch shape ``batch_shape`` (default empty: one shared prior,
    so ``sample((n,))`` gives (n, dim), the same numbers as ``torch.randn(n, dim, generator=...)``)."""

    @property
    def mode(self) -> torch.Tensor:
        return self.mean

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None, device=None,
                share: BatchShare = WHOLE) -> torch.Tensor:
        """Standard normal draws, shape sample_shape + batch_shape + (dim,), float32, on ``device`` (by
        default the generator's device, or the CPU without one); the first dim counts examples of
        ``share`` (the part of the batch the model trains on)."""
        shape = as_sample_shape(sample_shape) + tuple(self._batch_shape)
        return share.randn((*shape, self.dim), 0, generator=generator, device=device)

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None, device=None,
               share: BatchShare = WHOLE) -> torch.Tensor:
        return self.rsample(sample_shape, generator=generator, device=device, share=share)  # no parameters: nothing to detach

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (LOG_2PI + z**2).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.full(tuple(self._batch_shape), 0.5 * (LOG_2PI + 1.0) * self.dim)

    def expand(self, batch_shape: Sequence[int]) -> "StandardNormal":
        return StandardNormal(self.dim, batch_shape)


def _check_event(p: Distribution, q: Distribution) -> None:
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(f"KL({type(p).__name__} ‖ {type(q).__name__}): event shapes differ, "
                         f"{tuple(p.event_shape)} vs {tuple(q.event_shape)}")


@register_kl(DiagonalGaussian, StandardNormal)
def _kl_diagonal_standard(p: DiagonalGaussian, q: StandardNormal) -> torch.Tensor:
    """½ Σ_j (σ_j² + μ_j² − 1 − log σ_j²), shape p's batch shape."""
    _check_event(p, q)
    return kl_normal_std(p.loc, p.logvar)


@register_kl(DiagonalGaussian, DiagonalGaussian)
def _kl_diagonal_diagonal(p: DiagonalGaussian, q: DiagonalGaussian) -> torch.Tensor:
    """½ Σ_j [log σ_q²/σ_p² + (σ_p² + (μ_p − μ_q)²)/σ_q² − 1], shape the broadcast batch shape."""
    return kl_normal_normal(p.loc, p.logvar, q.loc, q.logvar)
