"""Zero-shot learning metrics (Xian, Lampert, Schiele & Akata 2018, "Zero-shot learning — the good,
the bad and the ugly", §4.2): accuracies averaged per class, so that a class with many test images
counts as much as one with few.

* ``per_class_accuracy(pred, true, classes)``: mean over ``classes`` of the top-1 accuracy on that
  class's test examples;
* ZSL ``T1``: per-class accuracy on the unseen classes' test examples, predictions made among the
  unseen classes only;
* GZSL ``u`` and ``s``: per-class accuracy on the unseen and on the seen classes' test examples,
  predictions made among *all* classes; ``H = 2us / (u + s)``, their harmonic mean (0 when both are 0).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


def per_class_accuracy(pred, true, classes: Iterable[int]) -> float:
    """Mean over ``classes`` of the share of that class's examples predicted correctly.

    Every listed class must have at least one example (an empty class has no accuracy)."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    accs = []
    for c in classes:
        m = true == c
        if not m.any():
            raise ValueError(f"class {c} has no examples")
        accs.append(float((pred[m] == c).mean()))
    if not accs:
        raise ValueError("no classes given")
    return float(np.mean(accs))


def harmonic_mean(u: float, s: float) -> float:
    """H = 2us / (u + s); 0 when u + s = 0."""
    return 0.0 if u + s == 0 else 2.0 * u * s / (u + s)


def restricted_argmax(scores, classes: Iterable[int]) -> np.ndarray:
    """Predicted labels when only ``classes`` may be predicted: argmax of ``scores`` (N, C) over those columns."""
    classes = np.asarray(list(classes))
    return classes[np.asarray(scores)[:, classes].argmax(1)]


def zsl_scores(scores_unseen, y_unseen, scores_seen, y_seen, unseen: Iterable[int], seen: Iterable[int]) -> dict[str, float]:
    """T1, u, s and H from class scores (N, C) over all classes of the unseen and the seen test examples.

    T1 restricts the unseen examples' predictions to the unseen classes; u and s predict among all."""
    unseen, seen = sorted(unseen), sorted(seen)
    all_classes = sorted(set(unseen) | set(seen))
    t1 = per_class_accuracy(restricted_argmax(scores_unseen, unseen), y_unseen, unseen)
    u = per_class_accuracy(restricted_argmax(scores_unseen, all_classes), y_unseen, unseen)
    s = per_class_accuracy(restricted_argmax(scores_seen, all_classes), y_seen, seen)
    return {"T1": t1, "u": u, "s": s, "H": harmonic_mean(u, s)}
