"""Gradient estimators that a pathwise (reparameterised) gradient alone gets wrong."""
from __future__ import annotations

import torch


def score_correction(f: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """A zero-valued scalar whose gradient is mean_i (f_i − b_i) ∇ log p_i: the score-function term of
    ∇ E_p[f] (Williams 1992), e.g. g_cor of a reparameterised rejection sampler (Naesseth et al. 2017).

    ``f`` (B,) are the objective's values at the draws (treated as constants), ``log_p`` (B,) the log
    densities of the draws, differentiable in the parameters. b_i is the leave-one-out mean of f over
    the batch, which does not depend on draw i, so the estimate stays unbiased while the part of f
    that all draws share cancels (no baseline when B = 1). Add the result to the objective that is
    being maximised (subtract it from a loss)."""
    f = f.detach().float()
    n = f.shape[0]
    baseline = (f.sum() - f) / (n - 1) if n > 1 else torch.zeros_like(f)
    centred = log_p - log_p.detach()  # value 0, gradient ∇ log p
    return ((f - baseline) * centred.float()).mean()
