"""The ``ridge`` method: the lower bound every feature generator must beat (docs/zsl.md, "Methods").

A linear map W from a class's attribute vector to its mean feature is fitted by ridge regression on
the seen classes' means, with an intercept (attributes and means centred over the seen classes):

    W = (Sᶜᵀ Sᶜ + λ I)⁻¹ Sᶜᵀ Mᶜ,   μ(a) = m̄ + (a − s̄) W

(S: the seen classes' attribute rows, M: their mean features, ᶜ: centred). λ is picked from
``GRID`` by leave-one-class-out: each seen class's mean is predicted from the other seen classes',
and the λ with the smallest mean squared error wins (ties: the larger λ). A generated feature of
class c is μ(a_c) plus a residual x − μ_y of a real labelled feature x (of class y), drawn uniformly
with the caller's seed, clipped to [0, 1]. Then the same softmax classifiers as the generators'.
"""
from __future__ import annotations

import numpy as np
import torch

GRID = tuple(10.0 ** e for e in range(-3, 4))


def ridge_fit(s: np.ndarray, m: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, s̄, m̄) of the ridge map from attribute rows ``s`` (k, A) to means ``m`` (k, F)."""
    s_bar, m_bar = s.mean(0), m.mean(0)
    sc, mc = s - s_bar, m - m_bar
    w = np.linalg.solve(sc.T @ sc + lam * np.eye(s.shape[1]), sc.T @ mc)
    return w, s_bar, m_bar


def choose_lambda(s: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """(λ, its leave-one-class-out mean squared error) over ``GRID``."""
    best, best_err = GRID[-1], np.inf
    for lam in reversed(GRID):
        err = 0.0
        for i in range(len(s)):
            keep = np.arange(len(s)) != i
            w, sb, mb = ridge_fit(s[keep], m[keep], lam)
            err += float(((mb + (s[i] - sb) @ w - m[i]) ** 2).mean())
        err /= len(s)
        if err < best_err - 1e-12:
            best, best_err = lam, err
    return best, best_err


class RidgeGenerator:
    """Generates features of any class from its attribute vector: predicted mean + a real residual."""

    def __init__(self, x: np.ndarray, y: np.ndarray, attributes: np.ndarray, classes: list[int]):
        x = np.asarray(x, dtype=np.float64)
        attributes = np.asarray(attributes, dtype=np.float64)
        classes = [c for c in classes if (y == c).any()]
        if len(classes) < 3:
            raise ValueError("ridge needs at least 3 labelled classes (λ is chosen by leave-one-class-out)")
        means = np.stack([x[y == c].mean(0) for c in classes])
        self.lam, self.loo_mse = choose_lambda(attributes[classes], means)
        self.w, self.s_bar, self.m_bar = ridge_fit(attributes[classes], means, self.lam)
        self.attributes = attributes
        labelled = np.isin(y, classes)
        row = {c: i for i, c in enumerate(classes)}
        self.residuals = x[labelled] - means[[row[int(c)] for c in y[labelled]]]

    device = torch.device("cpu")  # a NumPy model: its features and labels live on the host

    def mean(self, classes) -> np.ndarray:
        return self.m_bar + (self.attributes[np.asarray(classes)] - self.s_bar) @ self.w

    def sample(self, n: int, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Features of classes ``y`` (n,): predicted class mean + a residual drawn with ``generator``'s seed."""
        rng = np.random.default_rng(0 if generator is None else generator.initial_seed())
        r = self.residuals[rng.integers(len(self.residuals), size=n)]
        return torch.from_numpy(np.clip(self.mean(y.cpu().numpy()) + r, 0.0, 1.0).astype(np.float32))
