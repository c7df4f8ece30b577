"""Mixture of diagonal Gaussians: the clustering prior of VaDE and GMVAE.

p(z) = Σ_k π_k N(z; μ_k, diag σ_k²). Two pieces:

* :class:`MixtureOfGaussians` — a distribution object over tensors (log π, μ, log σ²) with batch
  shape ``(*B,)``, K components and event shape ``(D,)``: ``log_prob``, ``sample``, per-component
  ``log_joint`` = log π_k + log N(z; μ_k, σ_k²), ``responsibilities`` p(k|z) (Bayes' rule, in closed
  form) and its analytic ``mean``/``covariance``. GMVAE builds one per example from its prior
  network (μ_k(w), σ_k²(w)). A :class:`~vaelab.distributions.base.Distribution`; ``sample`` draws
  a component and then z (no ``rsample``: the component draw is discrete, not reparameterisable).
* :class:`GaussianMixturePrior` — an ``nn.Module`` holding learnable logits, means and
  log-variances (so π stays on the simplex and σ² > 0 by construction), whose ``distribution()``
  is a :class:`MixtureOfGaussians`; VaDE's prior. ``set_parameters`` loads a fitted GMM.

All arithmetic is float32 whatever the autocast state.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import rng
from .base import Distribution, SampleShape, as_sample_shape, kl
from .gaussian import DiagonalGaussian

LOG_2PI = math.log(2 * math.pi)


def _diag_normal_log_prob(z: torch.Tensor, loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, diag exp(logvar)) summed over the last dim; broadcasts."""
    return -0.5 * (LOG_2PI + logvar + (z - loc) ** 2 / logvar.exp()).sum(-1)


class MixtureOfGaussians(Distribution):
    """Σ_k π_k N(μ_k, diag σ_k²).

    ``log_weights`` (*B, K) — normalised log π (use ``log_softmax`` of logits); ``loc`` and
    ``logvar`` (*B, K, D). Batch shape ``*B`` may be empty (one shared prior, VaDE) or (B,)
    (one prior per example, GMVAE's p(z|w)).
    """

    has_rsample = False

    def __init__(self, log_weights: torch.Tensor, loc: torch.Tensor, logvar: torch.Tensor):
        self.log_weights = log_weights.float()
        self.loc = loc.float()
        self.logvar = logvar.float()
        if self.loc.shape != self.logvar.shape or self.log_weights.shape != self.loc.shape[:-1]:
            raise ValueError(f"shapes disagree: log_weights {tuple(log_weights.shape)}, loc {tuple(loc.shape)}, "
                             f"logvar {tuple(logvar.shape)}")

    @property
    def batch_shape(self) -> torch.Size:
        return self.log_weights.shape[:-1]

    @property
    def event_shape(self) -> torch.Size:
        return self.loc.shape[-1:]

    @property
    def n_components(self) -> int:
        return self.loc.shape[-2]

    @property
    def dim(self) -> int:
        return self.loc.shape[-1]

    def components(self) -> DiagonalGaussian:
        """The K components as one :class:`DiagonalGaussian` with batch shape (*B, K)."""
        return DiagonalGaussian(self.loc, self.logvar)

    @property
    def weights(self) -> torch.Tensor:
        return self.log_weights.exp()

    # ----- densities --------------------------------------------------------------------------
    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log π_k + log N(z; μ_k, σ_k²) for every component: z (..., *B, D) → (..., *B, K)."""
        z = z.float().unsqueeze(-2)  # (..., *B, 1, D)
        return self.log_weights + _diag_normal_log_prob(z, self.loc, self.logvar)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_k [log π_k + log N(z; μ_k, σ_k²)]: z (..., *B, D) → (..., *B)."""
        return torch.logsumexp(self.log_joint(z), dim=-1)

    def log_responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """log p(k|z) by Bayes' rule: (..., *B, D) → (..., *B, K)."""
        return torch.log_softmax(self.log_joint(z), dim=-1)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(k|z) = π_k N(z; μ_k, σ_k²) / Σ_j π_j N(z; μ_j, σ_j²): (..., *B, D) → (..., *B, K)."""
        return torch.softmax(self.log_joint(z), dim=-1)

    def component_kl(self, q_loc: torch.Tensor, q_logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(q_loc, diag exp(q_logvar)) ‖ N(μ_k, σ_k²)) for every k: (*B, D) → (*B, K), analytic."""
        return kl(DiagonalGaussian(q_loc.unsqueeze(-2), q_logvar.unsqueeze(-2)), self.components())

    # ----- moments ----------------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        """Σ_k π_k μ_k, shape (*B, D)."""
        return (self.weights.unsqueeze(-1) * self.loc).sum(-2)

    @property
    def covariance(self) -> torch.Tensor:
        """Σ_k π_k (diag σ_k² + μ_k μ_kᵀ) − m mᵀ, shape (*B, D, D)."""
        w = self.weights.unsqueeze(-1)  # (*B, K, 1)
        second = torch.diag_embed((w * self.logvar.exp()).sum(-2))
        second = second + torch.einsum("...k,...ki,...kj->...ij", self.weights, self.loc, self.loc)
        m = self.mean
        return second - m.unsqueeze(-1) * m.unsqueeze(-2)

    # ----- sampling ---------------------------------------------------------------------------
    def sample_components(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n component indices k ~ Cat(π), shape (n, *B)."""
        probs = self.weights.reshape(-1, self.n_components)  # (prod B, K)
        idx = rng.multinomial(probs, n, replacement=True, generator=generator)  # (prod B, n)
        return idx.t().reshape(n, *self.log_weights.shape[:-1])

    def sample_given(self, k: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(μ_k, σ_k²) for given component indices ``k`` (n, *B) → (n, *B, D)."""
        batch = self.loc.shape[:-2]
        index = k.reshape(*k.shape, 1, 1).expand(*k.shape, 1, self.dim)  # (n, *B, 1, D)
        loc = torch.gather(self.loc.expand(k.shape[0], *self.loc.shape), -2, index).squeeze(-2)
        logvar = torch.gather(self.logvar.expand(k.shape[0], *self.logvar.shape), -2, index).squeeze(-2)
        eps = rng.randn((k.shape[0], *batch, self.dim), generator, loc.device, loc.dtype)
        return loc + (0.5 * logvar).exp() * eps

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None,
               return_components: bool = False):
        """Draws of shape sample_shape + (*B, D) (and the drawn components, sample_shape + (*B,), if
        ``return_components``); an int n means (n,). All prod(sample_shape) draws are made as n of
        :meth:`sample_components` and :meth:`sample_given`, then reshaped."""
        shape = as_sample_shape(sample_shape)
        n = math.prod(shape)
        with torch.no_grad():
            k = self.sample_components(n, generator)
            z = self.sample_given(k, generator)
        z = z.reshape((*shape, *z.shape[1:]))
        k = k.reshape((*shape, *k.shape[1:]))
        return (z, k) if return_components else z


class GaussianMixturePrior(nn.Module):
    """A learnable K-component diagonal Gaussian mixture on R^D.

    Parameters: ``logits`` (K,) with π = softmax(logits), ``loc`` (K, D), ``logvar`` (K, D)
    with σ² = exp(logvar). Starts at π uniform, μ_k spread N(0, I) (seeded by the caller's RNG),
    σ² = 1; VaDE overwrites them with a fitted GMM before its ELBO phase.
    """

    def __init__(self, n_components: int, dim: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.loc = nn.Parameter(torch.randn(n_components, dim))
        self.logvar = nn.Parameter(torch.zeros(n_components, dim))

    @property
    def n_components(self) -> int:
        return self.loc.shape[0]

    @property
    def dim(self) -> int:
        return self.loc.shape[1]

    def distribution(self) -> MixtureOfGaussians:
        return MixtureOfGaussians(torch.log_softmax(self.logits.float(), -1), self.loc, self.logvar)

    @torch.no_grad()
    def set_parameters(self, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> None:
        """Load π (K,), μ (K, D), σ² (K, D), e.g. from a fitted GMM."""
        self.logits.copy_(torch.as_tensor(weights, dtype=torch.float32).clamp_min(1e-12).log())
        self.loc.copy_(torch.as_tensor(means, dtype=torch.float32))
        self.logvar.copy_(torch.as_tensor(variances, dtype=torch.float32).clamp_min(1e-12).log())

    # The prior interface GaussianVAE uses (log_prob of (..., D), sample(sample_shape, generator)).
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().responsibilities(z)

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Draws of shape sample_shape + (D,) from the mixture (an int n means (n,)), without gradient,
        on ``device`` (default: the prior's)."""
        z = self.distribution().sample(sample_shape, generator=generator)
        return z if device is None else z.to(device)

    def sample_component(self, k: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from component k alone, shape (n, D)."""
        eps = rng.randn((n, self.dim), generator, self.loc.device)
        return self.loc[k].float() + (0.5 * self.logvar[k].float()).exp() * eps
