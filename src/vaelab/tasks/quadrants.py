"""MNIST quadrant completion, the structured-output task of Sohn, Lee & Yan (2015, §5.1).

An image is cut into four quadrants; 1, 2 or 3 of them are the input x and the rest the output y to
predict. The layout follows Pyro's reproduction (examples/cvae/mnist.py, ``MaskImages``), whose
figures (negative conditional log-likelihood 71.8 / 51.0 / 24.2 nats for 1 / 2 / 3 given quadrants)
are the reference:

* 1 quadrant:  bottom-left given;
* 2 quadrants: the left half given;
* 3 quadrants: all but the bottom-right given.

Rows and columns split at H // 2 and W // 2. Missing pixels of the input are marked with -1 (Pyro's
``mask_with``), which no real pixel in [0, 1] takes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_VALUE = -1.0
GIVEN_CHOICES = (1, 2, 3)


def quadrant_mask(given: int, height: int = 28, width: int = 28) -> torch.Tensor:
    """Bool (H, W): True where the pixel belongs to the ``given`` input quadrants."""
    if given not in GIVEN_CHOICES:
        raise ValueError(f"given quadrants must be 1, 2 or 3, got {given!r}")
    h, w = height // 2, width // 2
    m = torch.zeros(height, width, dtype=torch.bool)
    m[h:, :w] = True  # bottom-left
    if given >= 2:
        m[:, :w] = True  # + top-left
    if given == 3:
        m[:h, :] = True  # + top-right
    return m


def split(x: torch.Tensor, given: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, C, H, W) → (input with missing pixels set to -1, missing-pixel mask (1, 1, H, W) float)."""
    m = quadrant_mask(given, x.shape[-2], x.shape[-1]).to(x.device)
    x_in = torch.where(m, x, torch.full_like(x, MASK_VALUE))
    return x_in, (~m).to(x.dtype if x.is_floating_point() else torch.float32).expand(1, 1, *m.shape)


def masked_bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(y|·) = Σ over the pixels where ``mask`` is 1 of log Bernoulli(x; sigmoid(logits)), in fp32.

    ``logits`` (*S, B, C, H, W) may carry leading sample dims; ``x`` (B, C, H, W); ``mask`` broadcasts to x.
    Grey-level targets give the cross-entropy, as in Pyro's reproduction."""
    logits = logits.float()
    nll = F.binary_cross_entropy_with_logits(logits, x.float().expand_as(logits), reduction="none")
    nll = nll * mask.float()
    return -nll.flatten(start_dim=nll.dim() - 3).sum(-1)
