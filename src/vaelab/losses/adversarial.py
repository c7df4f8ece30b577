"""Wasserstein GAN losses with gradient penalty (Gulrajani et al. 2017), for the critics of the
feature generators (f-CLSWGAN, f-VAEGAN-D2; docs/equations.md, "Zero-shot feature generators").

The critic D maximises E_real D(x) − E_fake D(x̃) subject to being 1-Lipschitz, enforced softly by
λ E_x̂ (‖∇_x̂ D(x̂)‖₂ − 1)² on points x̂ = ε x + (1 − ε) x̃, ε ~ U[0, 1] per example. The critic's loss
is the negative of that objective plus the penalty; the generator's adversarial loss is −E D(x̃).
"""
from __future__ import annotations

from typing import Callable

import torch

Critic = Callable[[torch.Tensor], torch.Tensor]  # x (B, F) → scores (B,)


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """λ · mean over the batch of (‖∇_x̂ D(x̂)‖₂ − 1)², x̂ = ε real + (1 − ε) fake (``eps`` (B,) given
    or drawn uniformly). Differentiable in the critic's parameters (``create_graph``)."""
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device)
    eps = eps.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).float().sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).float().norm(dim=1) - 1) ** 2).mean()


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gp_weight: float = 10.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, Wasserstein estimate E D(real) − E D(fake), penalty) for one critic update; ``fake`` is detached."""
    w = critic(real).float().mean() - critic(fake.detach()).float().mean()
    gp = gradient_penalty(critic, real, fake, gp_weight)
    return -w + gp, w.detach(), gp.detach()
