"""Mutual information by the density-ratio trick: a critic tells pairs drawn together from pairs drawn apart.

For two random vectors a and b, a classifier D(a, b) trained with logistic loss to separate pairs from
the joint q(a, b) (label 1) from pairs of the product of marginals q(a) q(b) (label 0, made by pairing
each a with the b of another example) has, at its optimum and with as many pairs of each kind,
logit D*(a, b) = log q(a, b) − log q(a) q(b). Its mean over joint pairs is then

    I(a; b) = E_q(a,b)[log q(a, b) / (q(a) q(b))]  ≈  E_joint[D(a, b)],

the estimator FactorVAE (Kim & Mnih 2018) uses for the total correlation. Unlike the minibatch
estimators of :mod:`vaelab.losses.divergences`, its value does not tend to log N when the posteriors of
a batch stop overlapping: the critic learns a smooth function of (a, b) from many batches, so two
independent groups give ≈ 0 and a dependence gives its mutual information (both tested).

:func:`permute_dims` makes the product-of-marginals samples of the total correlation Π_d q(z_d) (every
latent dimension shuffled across the batch on its own), FactorVAE's fake class.

``context`` lets one critic serve several pairs at once — S3VAE's I(z_f; z_t) for every frame t, the
frame index as a one-hot context — so the mean logit over joint pairs estimates (1/T) Σ_t I(z_f; z_t).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import rng


class DependenceCritic(nn.Module):
    """D(a, b[, context]) → one logit per pair: an MLP of two hidden layers (LeakyReLU 0.2)."""

    def __init__(self, a_dim: int, b_dim: int, hidden: int = 256, contexts: int = 0):
        super().__init__()
        self.contexts = contexts
        self.net = nn.Sequential(nn.Linear(a_dim + b_dim + contexts, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """a (N, Da), b (N, Db), context (N,) int64 in [0, contexts) → logits (N,) in float32 (under autocast the
        layers run in its dtype)."""
        parts = [a.float(), b.float()]
        if self.contexts:
            if context is None:
                raise ValueError("this critic reads a context index with every pair")
            parts.append(F.one_hot(context, self.contexts).float())
        return self.net(torch.cat(parts, -1)).squeeze(-1).float()


def product_pairs(b: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """b (N, ...) re-paired across examples: b rolled by a random shift in 1..N−1 along dim 0, so every a
    meets the b of another example (pairs from the product of the marginals). N ≥ 2. The shift stays a
    tensor on b's device (no host synchronisation)."""
    n = b.shape[0]
    if n < 2:
        raise ValueError("pairs from the product of marginals need at least 2 examples")
    shift = rng.randint(1, n, (1,), generator=generator, device=b.device)
    return b[(torch.arange(n, device=b.device) - shift) % n]


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z (N, D) with each column shuffled across the batch by its own random permutation: draws from the
    product of the marginals Π_d q(z_d) (FactorVAE's "permute dims", Kim & Mnih 2018, Alg. 1). Each
    column keeps its multiset of values; the dependence between columns is destroyed. Differentiable in
    z (a gather); one uniform draw of (N, D) on z's device (or the generator's), ranked per column."""
    if z.dim() != 2:
        raise ValueError(f"permute_dims takes a (N, D) batch of codes, got shape {tuple(z.shape)}")
    order = rng.rand(z.shape, generator=generator, device=z.device).argsort(dim=0)
    return z.gather(0, order)


def critic_loss(critic: DependenceCritic, a: torch.Tensor, b: torch.Tensor, b_apart: torch.Tensor,
                context: torch.Tensor | None = None) -> torch.Tensor:
    """The critic's logistic loss: joint pairs (a, b) labelled 1, pairs (a, b_apart) labelled 0. The
    inputs are detached: this loss trains the critic only."""
    a, b, b_apart = a.detach(), b.detach(), b_apart.detach()
    joint, apart = critic(a, b, context), critic(a, b_apart, context)
    return F.binary_cross_entropy_with_logits(joint, torch.ones_like(joint)) + \
        F.binary_cross_entropy_with_logits(apart, torch.zeros_like(apart))


def mutual_information(critic: DependenceCritic, a: torch.Tensor, b: torch.Tensor,
                       context: torch.Tensor | None = None) -> torch.Tensor:
    """E_joint[D(a, b)]: the estimate of I(a; b) (nats) given a trained critic; differentiable in a and b
    (the penalty an encoder minimises), scalar."""
    return critic(a, b, context).mean()
