"""Diagonal Gaussian posterior N(μ, diag σ²) parameterised by (μ, log σ²), and the N(0, I) prior."""
from __future__ import annotations

import math

import torch

from ..losses.divergences import kl_normal_normal, kl_normal_std

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """N(loc, diag exp(logvar)); batch shape (B,), event shape (D,)."""

    def __init__(self, loc: torch.Tensor, logvar: torch.Tensor):
        self.loc = loc
        self.logvar = logvar

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.logvar.exp()

    @property
    def scale(self) -> torch.Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample z = μ + σ ⊙ ε, shape sample_shape + (B, D)."""
        shape = tuple(sample_shape) + tuple(self.loc.shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device, generator=generator)
        return self.loc + self.scale * eps

    sample = rsample

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; μ, σ²) summed over the last dim; broadcasts leading sample dims."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.loc) ** 2 / self.logvar.exp()).sum(-1)

    def entropy(self) -> torch.Tensor:
        return 0.5 * (LOG_2PI + 1.0 + self.logvar).sum(-1)

    def kl(self, other: "DiagonalGaussian | StandardNormal") -> torch.Tensor:
        """Analytic KL(self ‖ other), shape (B,)."""
        if isinstance(other, StandardNormal):
            return kl_normal_std(self.loc, self.logvar)
        return kl_normal_normal(self.loc, self.logvar, other.loc, other.logvar)


class StandardNormal:
    """The N(0, I) prior on R^D."""

    def __init__(self, dim: int):
        self.dim = dim

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator, device=device)

    rsample = sample

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (LOG_2PI + z**2).sum(-1)
