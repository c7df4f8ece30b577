"""Divergences between distributions, shared by every variant (all return per-example values).

Closed forms here are computed in float32 whatever the autocast state.
"""
from __future__ import annotations

import torch


def kl_normal_std(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (σ_j² + μ_j² − 1 − log σ_j²)  (Kingma & Welling 2014, App. B;
    the seed's eq. 15 writes log Σ for log σ²). Summed over the last dim."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (logvar.exp() + mu**2 - 1.0 - logvar).sum(-1)


def kl_normal_normal(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(μ₁, diag σ₁²) ‖ N(μ₂, diag σ₂²)) = ½ Σ_j [log σ₂²/σ₁² + (σ₁² + (μ₁−μ₂)²)/σ₂² − 1]."""
    mu1, logvar1, mu2, logvar2 = (t.float() for t in (mu1, logvar1, mu2, logvar2))
    return 0.5 * (logvar2 - logvar1 + (logvar1.exp() + (mu1 - mu2) ** 2) / logvar2.exp() - 1.0).sum(-1)
