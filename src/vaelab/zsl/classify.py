"""The final classifiers of ``vaelab zsl`` (docs/zsl.md, "Methods"): generated features of the unseen
classes, softmax classifiers (multinomial logistic regression, scikit-learn) trained on them, and
Zero-VAE-GAN's pseudo-labels."""
from __future__ import annotations

import numpy as np
import torch

from ..metrics.zsl import restricted_argmax


def softmax_classifier(x: np.ndarray, y: np.ndarray, classes: list[int], seed: int = 0, n_classes: int = 10):
    """Multinomial logistic regression on (x, y) → a function giving scores (N, n_classes) with −inf outside ``classes``."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000, random_state=seed)
    clf.fit(x.astype(np.float64), y)
    cols = [int(c) for c in clf.classes_]
    if set(cols) != set(classes):
        raise ValueError(f"classifier saw classes {cols}, expected {classes}")

    def scores(xs: np.ndarray) -> np.ndarray:
        out = np.full((xs.shape[0], n_classes), -np.inf)
        out[:, cols] = clf.predict_log_proba(xs.astype(np.float64))
        return out

    return scores


def synthesize(v, classes: list[int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated features per class of ``classes`` (seeded): (n·len(classes), F), labels."""
    y = torch.tensor(classes, device=v.device).repeat_interleave(n)  # the labels live with the model
    x = v.sample(y.shape[0], y, generator=torch.Generator().manual_seed(seed))
    return x.cpu().numpy().astype(np.float32), y.cpu().numpy()


def pseudo_label(scores: np.ndarray, classes: list[int], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels) of the most confident ``fraction`` of the examples assigned to each class in ``classes``."""
    pred = restricted_argmax(scores, classes)
    conf = scores[np.arange(len(pred)), pred]
    idx, lab = [], []
    for c in classes:
        members = np.flatnonzero(pred == c)
        if members.size == 0:
            continue
        k = max(1, int(round(fraction * members.size)))
        best = members[np.argsort(-conf[members], kind="stable")[:k]]
        idx.append(np.sort(best))
        lab.append(np.full(best.size, c))
    if not idx:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(idx), np.concatenate(lab)
