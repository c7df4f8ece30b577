"""Decoder likelihoods log p(x|z), per example, in nats, always computed in float32."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed over the event dims, shape (*S, B).

    ``x`` (B, *event) holds grey levels in [0, 1] or binary values; ``logits`` (*S, B, *event) may have
    extra leading sample dims (e.g. K importance samples). The sum is in nats.
    """
    event_ndim = x.dim() - 1
    logits = logits.float()
    nll = F.binary_cross_entropy_with_logits(logits, x.float().expand_as(logits), reduction="none")
    return -nll.flatten(start_dim=nll.dim() - event_ndim).sum(-1)


LIKELIHOODS = {"bernoulli": bernoulli_log_prob}
