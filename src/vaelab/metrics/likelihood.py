"""Likelihood bounds from log importance weights: the ELBO and the IWAE bound (Burda et al. 2016).

``log_w`` is (K, B): log p(x_b, z_k) − log q(z_k|x_b) for z_k ~ q(z|x_b), as returned by a variant's
``log_weights(x, k, y)``. All values in nats (summed over pixels), float64.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ._arrays import as_f64


def logmeanexp(a, axis: int = 0) -> np.ndarray:
    """log (1/K) Σ_k exp(a_k) along ``axis``, computed stably (float64)."""
    from scipy.special import logsumexp

    a = as_f64(a)
    return logsumexp(a, axis=axis) - math.log(a.shape[axis])


def iwae_bound(log_w) -> np.ndarray:
    """Per-example importance-weighted bound L_K(x) = log (1/K) Σ_k w_k, w_k = p(x, z_k) / q(z_k|x)
    (Burda et al. 2016, eq. 8; docs/equations.md, "IWAE bound"), from log weights (K, B) → (B,) float64.

    L_1 = ELBO ≤ L_K ≤ L_{K+1} ≤ log p(x) in expectation; −L_K is an upper bound on the NLL."""
    log_w = as_f64(log_w, "log_w", ndim=2)
    return logmeanexp(log_w, axis=0)


def elbo_estimate(log_w) -> np.ndarray:
    """Per-example Monte-Carlo ELBO (1/K) Σ_k log w_k from log weights (K, B) → (B,) float64
    (Kingma & Welling 2014; the mean of L_1 over K draws)."""
    return as_f64(log_w, "log_w", ndim=2).mean(0)


@torch.no_grad()
def variant_log_weights(
    log_weights: Callable[..., torch.Tensor],
    x: torch.Tensor,
    k: int,
    y: torch.Tensor | None = None,
    max_items: int = 512,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(IWAE bound (N,), ELBO estimate (N,)) of images ``x`` (N, ...) from ``log_weights(x, k, y)``
    (a variant's method), batched so that one call decodes at most ``max_items`` = images × samples.

    With K ≤ max_items a call takes ⌊max_items / K⌋ images and all K samples; with more samples than
    that, one image at a time in chunks of ``max_items`` samples (the samples are independent, so
    concatenating the chunks along K is exact). The caller seeds the torch RNG. Peak memory is that
    of one decoder pass over ``max_items`` inputs: about 0.1 GB for the 13M-parameter paper backbone
    at the default 512 (2048: about 0.5 GB). On CPU, 256–512 is also the fastest chunk size (cache
    effects; decode rates in docs/results/evaluation.md, "Evaluation cost")."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = x.shape[0]
    per_call = max(1, max_items // k)
    iw, el = np.empty(n), np.empty(n)
    for i in range(0, n, per_call):
        xb = x[i:i + per_call]
        yb = None if y is None else y[i:i + per_call]
        chunks, left = [], k
        while left > 0:
            kc = min(left, max_items)
            lw = log_weights(xb, kc, yb)
            if tuple(lw.shape) != (kc, xb.shape[0]):
                raise RuntimeError(f"log_weights returned shape {tuple(lw.shape)}, expected ({kc}, {xb.shape[0]})")
            chunks.append(lw.detach().double().cpu())
            left -= kc
        lw = torch.cat(chunks, 0).cpu().numpy()  # (k, B)
        iw[i:i + xb.shape[0]] = iwae_bound(lw)
        el[i:i + xb.shape[0]] = elbo_estimate(lw)
        if on_batch is not None:
            on_batch(xb.shape[0])
    return iw, el
