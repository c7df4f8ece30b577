"""Divergences between distributions, shared by every variant.

* Analytic Gaussian KLs (per example): :func:`kl_normal_std`, :func:`kl_normal_normal`.
* A Monte-Carlo KL for any pair of distribution objects: :func:`kl_monte_carlo`.
* Maximum mean discrepancy between two sample sets (Gretton et al. 2012) with RBF and the
  multi-scale inverse-multiquadratic kernel of Tolstikhin et al. (2018): :func:`mmd`.
* Total correlation and the KL decomposition of Chen et al. (2018), from a minibatch:
  :func:`total_correlation`, :func:`kl_decomposition`, and the aggregate-posterior log densities
  they rest on, :func:`aggregate_log_densities`.

Everything here is computed in at least float32 whatever the autocast state: bf16/fp16 inputs are
upcast, float64 inputs stay float64 (so ``torch.autograd.gradcheck`` works), and kernel distances
use elementwise ops, which CPU autocast never lowers.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

#: Scales of the inverse-multiquadratic kernel sum in Tolstikhin et al.'s WAE code (wae.py, mmd_penalty).
IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
LOG_2PI = math.log(2 * math.pi)


def _f32(*ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Upcast half/bfloat16 tensors to float32; leave float32/float64 alone."""
    return tuple(t.float() if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point() else t for t in ts)


# ----- Kullback–Leibler ----------------------------------------------------------------------------
def kl_normal_std(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (σ_j² + μ_j² − 1 − log σ_j²)  (Kingma & Welling 2014, App. B;
    the seed's eq. 15 writes log Σ for log σ²). Summed over the last dim."""
    mu, logvar = _f32(mu, logvar)
    return 0.5 * (logvar.exp() + mu**2 - 1.0 - logvar).sum(-1)


def kl_normal_normal(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(μ₁, diag σ₁²) ‖ N(μ₂, diag σ₂²)) = ½ Σ_j [log σ₂²/σ₁² + (σ₁² + (μ₁−μ₂)²)/σ₂² − 1]."""
    mu1, logvar1, mu2, logvar2 = _f32(mu1, logvar1, mu2, logvar2)
    return 0.5 * (logvar2 - logvar1 + (logvar1.exp() + (mu1 - mu2) ** 2) / logvar2.exp() - 1.0).sum(-1)


def kl_monte_carlo(q, p, n_samples: int = 1, generator: torch.Generator | None = None, reduce: bool = True) -> torch.Tensor:
    """Monte-Carlo KL(q ‖ p) = E_q[log q(z) − log p(z)] with reparameterised samples z ~ q.

    ``q`` needs ``rsample(sample_shape[, generator])`` (torch.distributions convention, e.g.
    :class:`~vaelab.distributions.DiagonalGaussian`); ``q`` and ``p`` need ``log_prob(z)`` returning one
    value per example (summed over the event dims; wrap torch's ``Normal`` in ``Independent``).
    Returns the mean over ``n_samples`` (shape = q's batch shape), or with ``reduce=False`` the
    (n_samples, *batch) per-sample log ratios, whose spread gives the estimator's standard error.
    Differentiable in q's and p's parameters (pathwise gradient).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    z = q.rsample((n_samples,)) if generator is None else q.rsample((n_samples,), generator=generator)
    log_ratio = _f32(q.log_prob(z))[0] - _f32(p.log_prob(z))[0]
    return log_ratio.mean(0) if reduce else log_ratio


# ----- Maximum mean discrepancy --------------------------------------------------------------------
def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖x_i − y_j‖² for x (N, D), y (M, D) → (N, M), in ≥ fp32.

    Elementwise (broadcast) rather than x² + y² − 2xyᵀ: exact zeros on the diagonal, exactly symmetric
    for x = y, never lowered by autocast. Memory is N·M·D, fine for minibatches."""
    x, y = _f32(x, y)
    return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth: float | Sequence[float] | None = None) -> torch.Tensor:
    """Gaussian kernel k(x, y) = exp(−‖x − y‖² / (2 s²)), summed over the bandwidths s given, (N, M).

    Default s² = D (the latent size): for two N(0, I) draws E‖x − y‖² = 2D, so the exponent is O(1)
    where the samples live."""
    d2 = squared_distances(x, y)
    scales = [math.sqrt(x.shape[-1])] if bandwidth is None else ([bandwidth] if isinstance(bandwidth, (int, float)) else list(bandwidth))
    return sum(torch.exp(-d2 / (2.0 * float(s) ** 2)) for s in scales)


def imq_kernel(x: torch.Tensor, y: torch.Tensor, scales: Sequence[float] = IMQ_SCALES, prior_var: float = 1.0) -> torch.Tensor:
    """Inverse multiquadratic kernel of WAE (Tolstikhin et al. 2018, Sec. 4; their wae.py):
    k(x, y) = Σ_s C_s / (C_s + ‖x − y‖²), C_s = 2 D σ_p² · s, σ_p² the prior variance. (N, M).

    Heavy tails keep gradients alive when the two sample sets are far apart (where an RBF vanishes)."""
    d2 = squared_distances(x, y)
    base = 2.0 * x.shape[-1] * prior_var
    return sum((base * s) / (base * s + d2) for s in scales)


KERNELS: dict[str, Callable[..., torch.Tensor]] = {"rbf": rbf_kernel, "imq": imq_kernel}


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str | Callable[..., torch.Tensor] = "imq", unbiased: bool = True, **kernel_kw) -> torch.Tensor:
    """Squared MMD between samples x (N, D) ~ P and y (M, D) ~ Q (Gretton et al. 2012, eq. 2/3, Lemma 6):

    MMD² = E k(x, x') + E k(y, y') − 2 E k(x, y).

    ``unbiased=True``: the U-statistic, dropping the i = j terms of the within-set means (can be
    slightly negative; mean zero when P = Q; needs N, M ≥ 2). ``unbiased=False``: the biased V-statistic
    (all terms; always ≥ 0, positively biased by O(1/N)). ``kernel``: "imq" | "rbf" | a callable
    k(x, y, **kernel_kw) → (N, M). Returns a scalar in ≥ fp32.
    """
    k = KERNELS[kernel] if isinstance(kernel, str) else kernel
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x, **kernel_kw), k(y, y, **kernel_kw), k(x, y, **kernel_kw)
    if unbiased:
        if n < 2 or m < 2:
            raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {n} and {m}")
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    else:
        sxx, syy = kxx.mean(), kyy.mean()
    return sxx + syy - 2.0 * kxy.mean()


# ----- Total correlation (Chen et al. 2018) --------------------------------------------------------
def gaussian_log_density_matrix(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_i,d; μ_j,d, σ²_j,d) for every pair (i, j) and dim d: z (M, D), μ, log σ² (M, D) → (M, M, D)."""
    z, mu, logvar = _f32(z, mu, logvar)
    zi, muj, lvj = z[:, None, :], mu[None, :, :], logvar[None, :, :]
    return -0.5 * (LOG_2PI + lvj + (zi - muj) ** 2 / lvj.exp())


def _log_weights(m: int, dataset_size: int, estimator: str, like: torch.Tensor) -> torch.Tensor:
    """(M, M) log weights w_ij of q(z_i) ≈ Σ_j w_ij q(z_i | n_j)."""
    n = dataset_size
    if estimator == "mws":
        return torch.full((m, m), -math.log(n * m), dtype=like.dtype, device=like.device)
    if estimator == "mss":
        # Chen et al., stratified sampling: own sample 1/N; the other M−1 batch members stand for the
        # remaining N−1 data points: 1/(M−1) each, except one that carries (N−M+1)/(N(M−1)).
        if m < 2:
            raise ValueError("the stratified estimator needs a batch of at least 2")
        k = m - 1
        w = torch.full((m, m), 1.0 / k, dtype=like.dtype, device=like.device)
        idx = torch.arange(m, device=like.device)
        w[idx, (idx + 1) % m] = (n - k) / (n * k)
        w[idx, idx] = 1.0 / n
        return w.log()
    raise ValueError(f"estimator must be 'mss' or 'mws', got {estimator!r}")


def aggregate_log_densities(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                            estimator: str = "mss") -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch estimates of log q(z_i) (M,) and of each log q(z_i,d) (M, D) of the aggregate posterior
    q(z) = (1/N) Σ_n q(z|n), for the draws z_i ~ q(z|n_i) of a batch (arguments and estimators as in
    :func:`total_correlation`): log Σ_j w_ij q(z_i|n_j) with the estimator's weights w. ``"mss"``: an
    unbiased estimate of the density q(z_i) over random batches in random order; ``"mws"``: the paper's
    formula, whose weights sum to 1/N (log q(z_i) − log N at best, e.g. when the batch is the dataset)."""
    return _aggregate_log_densities(*_f32(z, mu, logvar), dataset_size, estimator)


def _aggregate_log_densities(z, mu, logvar, dataset_size: int, estimator: str):
    """Minibatch estimates of log q(z_i) (M,) and log q(z_i,d) (M, D) of the aggregate posterior."""
    m = z.shape[0]
    if dataset_size < m:
        raise ValueError(f"dataset_size ({dataset_size}) must be at least the batch size ({m})")
    mat = gaussian_log_density_matrix(z, mu, logvar)  # (M, M, D)
    logw = _log_weights(m, dataset_size, estimator, mat)  # (M, M)
    log_qz = torch.logsumexp(logw + mat.sum(-1), dim=1)  # (M,)
    log_qz_dims = torch.logsumexp(logw[:, :, None] + mat, dim=1)  # (M, D)
    return log_qz, log_qz_dims


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, estimator: str = "mss") -> torch.Tensor:
    """Total correlation KL(q(z) ‖ Π_d q(z_d)) of the aggregate posterior q(z) = E_p(n) q(z|n), from one
    minibatch (Chen et al. 2018: the decomposition of their eq. 2, the minibatch estimators of their
    Sec. 4 and appendix). Scalar.

    ``z`` (M, D) holds one draw z_i ~ q(z|n_i) per batch member; ``mu``, ``logvar`` (M, D) are the
    Gaussian posteriors q(z|n_j) of the same batch; ``dataset_size`` N is the number of training points
    (the batch dict's ``"dataset_size"``).

    ``estimator``:

    * ``"mss"`` (default) — minibatch stratified sampling (their appendix; ``--mss`` in their code, whose
      weight matrix fills columns instead of the diagonal; here the own sample gets 1/N as intended). Its
      weights sum to one, so the value is a consistent estimate of the TC (≈ 0 for independent latents).
    * ``"mws"`` — minibatch weighted sampling, log q(z_i) ≈ logsumexp_j log q(z_i|n_j) − log(NM)
      (their "minibatch weighted sampling"; docs/equations.md, "Divergences"), the same per dimension.
      Its weights sum to 1/N, so each log density is under-estimated by about log N and the TC carries
      a constant offset of about (D − 1) log N:
      fine as a training penalty (constant gradient-free shift), wrong as a reported value.
    """
    log_qz, log_qz_dims = _aggregate_log_densities(z, mu, logvar, dataset_size, estimator)
    return (log_qz - log_qz_dims.sum(-1)).mean()


def grouped_total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, sizes: Sequence[int],
                              dataset_size: int, estimator: str = "mss") -> torch.Tensor:
    """KL(q(z) ‖ Π_g q(z_g)) of the aggregate posterior between consecutive groups of dimensions of
    ``sizes`` (summing to D), from one minibatch as :func:`total_correlation` (which is the case of
    one dimension per group). With two groups (a, b) it is the mutual information I(z_a; z_b) of
    the aggregate posterior, e.g. S3VAE's penalty between the static and the dynamic latents. Scalar."""
    z, mu, logvar = _f32(z, mu, logvar)
    if sum(sizes) != z.shape[-1]:
        raise ValueError(f"group sizes {list(sizes)} do not add up to the {z.shape[-1]} latent dimensions")
    m = z.shape[0]
    if dataset_size < m:
        raise ValueError(f"dataset_size ({dataset_size}) must be at least the batch size ({m})")
    mat = gaussian_log_density_matrix(z, mu, logvar)  # (M, M, D)
    logw = _log_weights(m, dataset_size, estimator, mat)
    joint = torch.logsumexp(logw + mat.sum(-1), dim=1)
    parts = sum(torch.logsumexp(logw + g.sum(-1), dim=1) for g in mat.split(list(sizes), dim=-1))
    return (joint - parts).mean()


def kl_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                     estimator: str = "mss") -> dict[str, torch.Tensor]:
    """The three terms of E_p(n) KL(q(z|n) ‖ p(z)) for p = N(0, I) (Chen et al. 2018, eq. 2), scalars:

    ``mi``   index-code mutual information  E[log q(z|n) − log q(z)],
    ``tc``   total correlation              E[log q(z) − Σ_d log q(z_d)],
    ``dwkl`` dimension-wise KL              E[Σ_d log q(z_d) − log p(z_d)],

    from one minibatch (see :func:`total_correlation` for the arguments and estimators). β-TCVAE
    penalises them as α·mi + β·tc + γ·dwkl.
    """
    z, mu, logvar = _f32(z, mu, logvar)
    log_qz, log_qz_dims = _aggregate_log_densities(z, mu, logvar, dataset_size, estimator)
    log_qzx = (-0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp())).sum(-1)  # (M,)
    log_pz_dims = -0.5 * (LOG_2PI + z**2)  # (M, D)
    return {
        "mi": (log_qzx - log_qz).mean(),
        "tc": (log_qz - log_qz_dims.sum(-1)).mean(),
        "dwkl": (log_qz_dims - log_pz_dims).sum(-1).mean(),
    }
