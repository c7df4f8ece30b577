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
