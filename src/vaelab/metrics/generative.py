"""Sample-quality metrics on classifier outputs: FID, the Inception-Score analogue, precision/recall
and the class histogram. Pure functions of arrays (features (N, F), probabilities (N, C)); float64
throughout. Definitions: docs/equations.md, "Metrics".
"""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch
from scipy.special import xlogy

from ._arrays import as_f64, as_int


def mean_cov(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64."""
    f = as_f64(features, "features", ndim=2)
    if f.shape[0] < 2:
        raise ValueError(f"features: need at least 2 rows for a covariance, got {f.shape[0]}")
    return f.mean(0), np.cov(f, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via SciPy's eigh (negative rounding noise clipped)."""
    w, v = scipy.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982; FID of Heusel et al. 2017):

    ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}).

    Tr((Σ₁Σ₂)^{1/2}) is computed as Tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) — the same eigenvalues, since the two
    matrices are similar — where the inner matrix is symmetric PSD, so SciPy's ``eigh`` gives real,
    accurate square roots (no complex residue as with ``sqrtm`` of the non-symmetric product).
    """
    mu1, mu2 = as_f64(mu1, "mu1", 1), as_f64(mu2, "mu2", 1)
    s1, s2 = as_f64(sigma1, "sigma1", 2), as_f64(sigma2, "sigma2", 2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    r = _psd_sqrt(s1)
    m = r @ s2 @ r
    ev = scipy.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(d, 0.0)  # ≥ 0 mathematically; clip rounding noise around 0


def fid(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F).

    With penultimate-layer features of the reference classifier this is the classifier-feature FID
    (Heusel et al. 2017, with the reference classifier in place of Inception-v3; docs/equations.md, "Metrics").
    Lower is better; 0 for identical feature statistics. Biased upward for small N (use N ≥ 10,000
    when comparing models, and the same N for every model)."""
    mu1, s1 = mean_cov(features_a)
    mu2, s2 = mean_cov(features_b)
    return frechet_distance(mu1, s1, mu2, s2)


def inception_score(probs) -> float:
    """Inception-Score analogue exp(E_x KL(p(y|x) ‖ p(y))), p(y) = mean_x p(y|x) (Salimans et al. 2016;
    docs/equations.md, "Metrics"), with the reference classifier's class probabilities (N, C).

    Computed over all N rows at once (no 10-split averaging). 1 when every row is the same; at most C
    (confident predictions spread evenly over C classes)."""
    p = _probs(probs)
    py = p.mean(0, keepdims=True)
    kl = (xlogy(p, p) - xlogy(p, py)).sum(1)  # (N,); p > 0 implies p(y) > 0
    return float(math.exp(kl.mean()))


@torch.no_grad()
def conditional_entropy(probs) -> float:
    """H(y|x) = mean_x H(p(y|x)) in nats of class probabilities (N, C): low when each generated item is
    classified confidently (the S3VAE paper's H(y|x); docs/equations.md, "Metrics")."""
    p = _probs(probs)
    return float(-xlogy(p, p).sum(1).mean())


def marginal_entropy(probs) -> float:
    """H(y) = H(mean_x p(y|x)) in nats of class probabilities (N, C): at most log C, high when the
    generated items cover the classes evenly. log IS = H(y) − H(y|x)."""
    py = _probs(probs).mean(0)
    return float(-xlogy(py, py).sum())


def _probs(probs) -> np.ndarray:
    p = as_f64(probs, "probs", ndim=2)
    if p.shape[0] == 0:
        raise ValueError("probs: empty")
    if np.any(p < 0) or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise ValueError("probs: rows must be probability vectors (non-negative, summing to 1)")
    return p


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (A, B) in float64, ‖a‖² + ‖b‖² − 2 a·b clipped at 0."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


@torch.no_grad()
def _kth_radius2(x: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Squared distance of each row of x to its k-th nearest other row (the row itself is at distance 0)."""
    out = []
    for i in range(0, x.shape[0], batch):
        d = _sq_dists(x[i:i + batch], x)
        out.append(torch.topk(d, k + 1, dim=1, largest=False).values[:, -1])  # topk: much faster than kthvalue on CPU (docs/results/evaluation.md)
    return torch.cat(out)


@torch.no_grad()
def _inside(query: torch.Tensor, ref: torch.Tensor, ref_r2: torch.Tensor, batch: int) -> torch.Tensor:
    """For each query row: is it within the k-NN ball of some reference row? (N_query,) bool.

    A relative slack of 1e-10 of the squared norms absorbs the rounding of the ‖a‖² + ‖b‖² − 2a·b form,
    so that a point identical to a reference point always counts as inside (even a ball of radius 0)."""
    nref = (ref * ref).sum(1)
    out = []
    for i in range(0, query.shape[0], batch):
        q = query[i:i + batch]
        d = _sq_dists(q, ref)
        slack = 1e-10 * ((q * q).sum(1)[:, None] + nref[None, :])
        out.append((d <= ref_r2[None, :] + slack).any(1))
    return torch.cat(out)


def precision_recall(real, fake, k: int = 3, batch_size: int = 1000) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019; docs/equations.md, "Metrics") of ``fake``
    features (M, F) against ``real`` features (N, F).

    The real manifold is the union of balls around each real feature with radius its distance to the
    k-th nearest other real feature; precision = share of fake features inside it. Recall is the same
    with the roles swapped (fake manifold, real queries). Both in [0, 1]; 1 for a set against itself.
    """
    r = torch.from_numpy(as_f64(real, "real", ndim=2))
    f = torch.from_numpy(as_f64(fake, "fake", ndim=2))
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {tuple(r.shape)}, fake {tuple(f.shape)}")
    if min(r.shape[0], f.shape[0]) <= k:
        raise ValueError(f"need more than k={k} rows in each set, got {r.shape[0]} real and {f.shape[0]} fake")
    rr = _kth_radius2(r, k, batch_size)
    rf = _kth_radius2(f, k, batch_size)
    precision = float(_inside(f, r, rr, batch_size).double().mean())
    recall = float(_inside(r, f, rf, batch_size).double().mean())
    return {"precision": precision, "recall": recall}


def class_histogram(probs_or_labels, n_classes: int | None = None) -> np.ndarray:
    """Counts (C,) of predicted classes: argmax of probabilities (N, C), or integer labels (N,)."""
    a = probs_or_labels.detach().cpu().numpy() if hasattr(probs_or_labels, "detach") else np.asarray(probs_or_labels)
    if a.ndim == 2:
        n_classes = a.shape[1] if n_classes is None else n_classes
        a = a.argmax(1)
    labels = as_int(a, "labels")
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    return np.bincount(labels, minlength=n_classes)


def total_variation(counts_a, counts_b) -> float:
    """Total-variation distance ½ Σ_c |p_a(c) − p_b(c)| between two class histograms (0 = same class mix)."""
    a, b = as_f64(counts_a, ndim=1), as_f64(counts_b, ndim=1)
    if a.shape != b.shape:
        raise ValueError(f"histograms differ in length: {a.shape} vs {b.shape}")
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())
