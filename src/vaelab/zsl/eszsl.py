"""ESZSL (Romera-Paredes & Torr, ICML 2015): a bilinear compatibility x^T V s between a feature
vector x (d) and a class's attribute vector s (a), fitted in closed form (docs/equations.md, "ESZSL").

With X (d × m) the training features as columns, Y (m × z) their one-hot labels over the z
training classes and S (a × z) those classes' attributes, the regularised squared loss
‖X^T V S − Y‖² + γ‖V S‖² + λ‖X^T V‖² + γλ‖V‖² is minimised by

    V = (X X^T + γ I)^{-1} X Y S^T (S S^T + λ I)^{-1}.

A test feature x scores class c by x^T V s_c. It is a baseline of ``vaelab zsl``; it sees only
labelled data, so its transductive result is its inductive one.
"""
from __future__ import annotations

import numpy as np


def eszsl_fit(x: np.ndarray, y: np.ndarray, attributes: np.ndarray, classes: list[int], gamma: float = 1.0,
              lam: float = 1.0) -> np.ndarray:
    """V (d, a) from features ``x`` (m, d), labels ``y`` (m,) in ``classes``, ``attributes`` (n_classes, a)."""
    x = np.asarray(x, dtype=np.float64)
    classes = list(classes)
    col = {c: i for i, c in enumerate(classes)}
    if not set(np.unique(y)) <= set(classes):
        raise ValueError("labels outside the training classes")
    yy = np.zeros((x.shape[0], len(classes)))
    yy[np.arange(x.shape[0]), [col[int(c)] for c in y]] = 1.0
    s = np.asarray(attributes, dtype=np.float64)[classes].T  # (a, z)
    d, a = x.shape[1], s.shape[0]
    left = np.linalg.solve(x.T @ x + gamma * np.eye(d), x.T @ yy @ s.T)  # (X X^T + γI)^{-1} X Y S^T, X = x^T
    return np.linalg.solve((s @ s.T + lam * np.eye(a)).T, left.T).T  # · (S S^T + λI)^{-1}


def eszsl_scores(x: np.ndarray, v: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Compatibility scores (N, n_classes): x^T V s_c for every class c."""
    return np.asarray(x, dtype=np.float64) @ v @ np.asarray(attributes, dtype=np.float64).T
