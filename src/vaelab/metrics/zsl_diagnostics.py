"""Diagnostics of a zero-shot feature generator (docs/zsl.md, "Diagnostics"): pure functions of arrays.

* ``probe_accuracy(real, generated)``: how well a logistic regression tells real features from
  generated ones — the held-out accuracy of a classifier trained on half of each set (0.5: the two
  are indistinguishable to a linear probe; 1.0: perfectly separable);
* ``confusion_shares(pred, true, rows, cols)``: where the examples of each class in ``rows`` go —
  the share of them predicted as each class in ``cols`` (each row sums to 1 over all predictions);
* ``mass_to(shares, cols, classes)``: the mean over rows of the share predicted as any of ``classes``
  (e.g. the unseen mass of the unseen test examples' GZSL predictions).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

#: at most this many examples of each side enter the probe (a seeded subsample), to keep it cheap
PROBE_MAX = 2000


def probe_accuracy(real, generated, seed: int = 0, max_n: int = PROBE_MAX) -> float:
    """Held-out accuracy of a logistic regression separating ``real`` (label 1) from ``generated``
    (label 0) features. Both sides are cut to the same size n = min(len(real), len(generated), max_n)
    by a seeded permutation of each, the first ⌈n/2⌉ of each side train the probe and the rest test it,
    so the test set is balanced and chance is 0.5 (identical inputs give exactly 0.5)."""
    from sklearn.linear_model import LogisticRegression

    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"real {real.shape} and generated {generated.shape} must be (N, F) with the same F")
    n = min(len(real), len(generated), max_n)
    if n < 4:
        raise ValueError(f"the probe needs at least 4 examples of each side, got {n}")
    r = real[np.random.default_rng(seed).permutation(len(real))[:n]]
    g = generated[np.random.default_rng(seed).permutation(len(generated))[:n]]
    k = (n + 1) // 2
    x_fit, x_test = np.concatenate([r[:k], g[:k]]), np.concatenate([r[k:], g[k:]])
    y_fit, y_test = np.repeat([1, 0], k), np.repeat([1, 0], n - k)
    clf = LogisticRegression(max_iter=1000, random_state=seed).fit(x_fit, y_fit)
    return float((clf.predict(x_test) == y_test).mean())


def confusion_shares(pred, true, rows: Iterable[int], cols: Iterable[int]) -> np.ndarray:
    """(len(rows), len(cols)): entry [i, j] is the share of class rows[i]'s examples predicted as
    cols[j]. A prediction outside ``cols`` counts in its row's total but in no column."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    rows, cols = list(rows), list(cols)
    out = np.zeros((len(rows), len(cols)))
    for i, c in enumerate(rows):
        m = true == c
        if not m.any():
            raise ValueError(f"class {c} has no examples")
        out[i] = [(pred[m] == d).mean() for d in cols]
    return out


def mass_to(shares: np.ndarray, cols: Iterable[int], classes: Iterable[int]) -> float:
    """Mean over the rows of ``shares`` (from confusion_shares) of the share predicted as any of ``classes``."""
    cols = list(cols)
    idx = [cols.index(c) for c in classes]
    return float(np.asarray(shares)[:, idx].sum(1).mean())
