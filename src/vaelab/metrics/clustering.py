"""Clustering metrics: accuracy under the best one-to-one cluster → label map, NMI and ARI."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._arrays import as_int


def contingency(pred, labels) -> np.ndarray:
    """Counts (K, C): rows the distinct cluster ids of ``pred`` (sorted), columns the distinct labels."""
    p, y = as_int(pred, "pred"), as_int(labels, "labels")
    if p.shape != y.shape:
        raise ValueError(f"pred and labels differ in length: {p.shape[0]} vs {y.shape[0]}")
    _, pi = np.unique(p, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    c = np.zeros((pi.max(initial=-1) + 1, yi.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(c, (pi, yi), 1)
    return c


def clustering_accuracy(pred, labels) -> float:
    """max over one-to-one maps m of clusters to labels of (1/N) Σ_i [m(pred_i) = label_i]
    (docs/equations.md, "Metrics"; the unsupervised accuracy of Xie et al. 2016 / Jiang et al. 2017),
    solved by the Hungarian method (``scipy.optimize.linear_sum_assignment``). With more clusters than
    labels, the surplus clusters match nothing and count as errors."""
    c = contingency(pred, labels)
    if c.size == 0:
        raise ValueError("pred: empty")
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


def clustering_scores(pred, labels) -> dict[str, float]:
    """{"accuracy": Hungarian accuracy, "nmi": normalized mutual information (arithmetic mean
    normalisation, scikit-learn's default; Strehl & Ghosh 2002), "ari": adjusted Rand index (Hubert &
    Arabie 1985)} of cluster ids ``pred`` (N,) against true ``labels`` (N,)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    p, y = as_int(pred, "pred"), as_int(labels, "labels")
    return {
        "accuracy": clustering_accuracy(p, y),
        "nmi": float(normalized_mutual_info_score(y, p)),
        "ari": float(adjusted_rand_score(y, p)),
    }
