"""Random draws that land on the right device.

A ``torch.Generator`` lives on one device, and PyTorch refuses a draw from a CUDA generator into a CPU
tensor (and the reverse). Every seeded draw in vaelab goes through these functions, which draw on the
generator's own device (so a seeded stream gives the same numbers wherever the result is used) and
then move the result to ``device`` (the model's, or the tensors it goes with). Without a generator
they draw from the global RNG directly on ``device``. On the CPU with a CPU generator each is exactly
the ``torch`` call it wraps.

``tests/test_device_draws.py`` scans ``src/`` and fails on any ``torch`` random factory given a
``generator`` but no ``device``: outside this module, seeded draws name their device or come here.
"""
from __future__ import annotations

from typing import Sequence

import torch

Device = torch.device | str | None


def _source(generator: torch.Generator | None, device: Device) -> Device:
    return generator.device if generator is not None else device


def _to(t: torch.Tensor, device: Device) -> torch.Tensor:
    return t if device is None else t.to(device)


def randn(shape: Sequence[int], generator: torch.Generator | None = None, device: Device = None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal draws of ``shape`` on ``device`` (the generator's device when None)."""
    return _to(torch.randn(tuple(shape), generator=generator, device=_source(generator, device), dtype=dtype), device)


def rand(shape: Sequence[int], generator: torch.Generator | None = None, device: Device = None,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape`` on ``device`` (the generator's device when None)."""
    return _to(torch.rand(tuple(shape), generator=generator, device=_source(generator, device), dtype=dtype), device)


def randint(low: int, high: int, shape: Sequence[int], generator: torch.Generator | None = None,
            device: Device = None) -> torch.Tensor:
    """Integers uniform in [low, high) of ``shape`` on ``device`` (the generator's device when None)."""
    return _to(torch.randint(low, high, tuple(shape), generator=generator, device=_source(generator, device)), device)


def randperm(n: int, generator: torch.Generator | None = None, device: Device = None) -> torch.Tensor:
    """A random permutation of range(n) on ``device`` (the generator's device when None)."""
    return _to(torch.randperm(n, generator=generator, device=_source(generator, device)), device)


def multinomial(probs: torch.Tensor, n: int, replacement: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``torch.multinomial(probs, n, replacement)`` drawn on the generator's device, returned on probs'."""
    src = probs if generator is None else probs.to(generator.device)
    return torch.multinomial(src, n, replacement=replacement, generator=generator).to(probs.device)
