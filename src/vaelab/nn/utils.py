"""Small helpers for running networks outside the training step."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; its previous train/eval mode restored after."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def batched(fn: Callable[[int, int], torch.Tensor], n: int, batch_size: int) -> torch.Tensor:
    """``fn(i, j)`` over consecutive slices [i, j) of ``range(n)`` of at most ``batch_size``, the
    results concatenated along dim 0 (an empty tensor for n = 0)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return torch.cat([fn(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]) if n else torch.zeros(0)


def ink_centres(frames: torch.Tensor, threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The centre of mass of the ink of each frame (..., C, H, W), channels summed: (row, column, total
    ink), each of shape (...); a frame without ink gives (0, 0, 0). ``threshold`` > 0: only pixels
    above it count as ink, so a faint haze over the background does not pull the centre towards
    the frame's middle."""
    ink = frames.float().sum(-3)  # (..., H, W)
    if threshold > 0:
        ink = torch.where(ink > threshold, ink, torch.zeros_like(ink))
    h, w = ink.shape[-2:]
    mass = ink.sum((-2, -1))
    rows = torch.arange(h, dtype=ink.dtype, device=ink.device)
    cols = torch.arange(w, dtype=ink.dtype, device=ink.device)
    return (ink.sum(-1) * rows).sum(-1) / mass.clamp_min(1e-8), (ink.sum(-2) * cols).sum(-1) / mass.clamp_min(1e-8), mass
