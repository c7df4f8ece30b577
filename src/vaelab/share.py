"""The batch share a model computes with: which part of a global batch this process trains on.

A model reaches the batch's noise draws and batch statistics only through a :class:`BatchShare`
handed to it, never through a module global: the trainer sets ``Variant.share`` for each update
(:mod:`vaelab.models.base`), and the model passes it on to what draws or combines — the
reparameterisation noise (``DiagonalGaussian.rsample(share=...)``, ``StandardNormal.sample``),
batch statistics (VQ-VAE's codebook counts, VAE-GAN's balance rule and feature variance) and the
gradient step (:func:`vaelab.optim.update`).

:data:`WHOLE`, the default, is the whole batch in one process: plain draws from torch's global
generator (:func:`vaelab.rng.randn`), sums, means and rows as they are, no gradient averaging.
Data-parallel training (:class:`vaelab.parallel.Share`) fulfils the same interface with one
process's rows of a batch spread over several: the noise of the whole batch is drawn and this
share's rows kept, and sums, means, rows and gradients are combined across the processes.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from . import rng


class BatchShare:
    """The whole batch, in one process (the interface; :data:`WHOLE` is the instance)."""

    def randn(self, shape: Sequence[int], batch_dim: int = 0, generator: torch.Generator | None = None,
              device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standard normal draws of ``shape`` on ``device``, where ``shape[batch_dim]`` counts the
        examples this process holds (:func:`vaelab.rng.randn`). Seeded draws (a ``generator``) are
        not batch noise and are drawn as asked by every implementation."""
        return rng.randn(shape, generator, device, dtype)

    def sum(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-process sums or counts summed over the batch's processes (the inputs with one)."""
        return tensors

    def mean(self, t: torch.Tensor) -> float:
        """The whole batch's mean of this process's batch mean ``t`` (a scalar), as a float."""
        return float(t)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """The rows of ``t`` of every process, in rank order (``t`` itself with one)."""
        return t

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Make every ``.grad`` the gradient of the mean loss over the whole batch (already so with one)."""


#: The whole batch in one process: what a model computes with outside data-parallel training.
WHOLE = BatchShare()
