"""Zero-shot learning metrics (Xian, Lampert, Schiele & Akata 2018, "Zero-shot learning — the good,
the bad and the ugly", §4.2): accuracies averaged per class, so that a class with many test images
counts as much as one with few.

* ``per_class_accuracy(pred, true, classes)``: mean over ``classes`` of the top-1 accuracy on that
  class's test examples;
* ZSL ``T1``: per-class accuracy on the unseen classes' test examples, predictions made among the
  unseen classes only;
* GZSL ``u`` and ``s``: per-class accuracy on the unseen and on the seen classes' test examples,
  predictions made among *all* classes; ``H = 2us / (u + s)``, their harmonic mean (0 when both are 0);
* calibrated stacking (Chao et al. 2016): the same u, s, H after subtracting a constant γ from every
  seen class's score (``calibrated_scores``, ``best_gamma``); ``ausuc``: the area under the curve of
  (s, u) as γ sweeps from −∞ to +∞.
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


# ----- calibrated stacking and AUSUC (Chao, Changpinyo, Gong & Sha, ECCV 2016) ----------------------
# A GZSL classifier scores every class; calibrated stacking predicts argmax_c s(x, c) − γ·1[c seen].
# γ → −∞ predicts only seen classes (u = 0, s = its maximum), γ → +∞ only unseen ones (s = 0, u = its
# maximum, the ZSL accuracy among the unseen classes). Example i is predicted as its best seen class
# while γ < Δ_i = max_seen s(x_i, ·) − max_unseen s(x_i, ·) and as its best unseen class from γ ≥ Δ_i
# (ties go to the unseen class), so u(γ) and s(γ) are step functions whose steps sit at the Δ_i.


def _margins(scores, y, unseen: list[int], seen: list[int], of_unseen: bool) -> tuple[np.ndarray, np.ndarray]:
    """(Δ_i, w_i): the seen-minus-unseen margin of each example, and the weight it adds to the
    per-class mean accuracy when its prediction (best class of the side it falls on) is right."""
    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y)
    best_seen, best_unseen = restricted_argmax(scores, seen), restricted_argmax(scores, unseen)
    idx = np.arange(len(y))
    delta = scores[idx, best_seen] - scores[idx, best_unseen]
    side, target = (best_unseen, unseen) if of_unseen else (best_seen, seen)
    ok = (side == y).astype(np.float64)
    counts = {c: int((y == c).sum()) for c in target}
    if any(n == 0 for n in counts.values()):
        raise ValueError(f"class {next(c for c, n in counts.items() if n == 0)} has no examples")
    w = ok / np.array([counts[int(c)] for c in y], dtype=np.float64) / len(target)
    return delta, w


def seen_unseen_curve(scores_unseen, y_unseen, scores_seen, y_seen, unseen: Iterable[int],
                      seen: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(γ, s(γ), u(γ)) at γ = −∞ and at every distinct margin Δ_i of the test examples, γ increasing:
    the whole seen–unseen accuracy curve of calibrated stacking (per-class mean accuracies), from
    (s_max, 0) to (0, u_max)."""
    unseen, seen = sorted(unseen), sorted(seen)
    du, wu = _margins(scores_unseen, y_unseen, unseen, seen, True)
    ds, ws = _margins(scores_seen, y_seen, unseen, seen, False)
    if not (np.isfinite(du).all() and np.isfinite(ds).all()):
        raise ValueError("scores must be finite on every class")
    gammas = np.concatenate([[-np.inf], np.unique(np.concatenate([du, ds]))])
    # s(γ) = Σ w over seen examples with Δ > γ; u(γ) = Σ w over unseen examples with Δ ≤ γ
    order_s, order_u = np.argsort(ds), np.argsort(du)
    cs = np.concatenate([[0.0], np.cumsum(ws[order_s])])
    cu = np.concatenate([[0.0], np.cumsum(wu[order_u])])
    s = cs[-1] - cs[np.searchsorted(ds[order_s], gammas, side="right")]
    u = cu[np.searchsorted(du[order_u], gammas, side="right")]
    return gammas, s, u


def ausuc(scores_unseen, y_unseen, scores_seen, y_seen, unseen: Iterable[int], seen: Iterable[int]) -> float:
    """Area under the seen–unseen accuracy curve (x = s, y = u), trapezoid rule over its corners."""
    _, s, u = seen_unseen_curve(scores_unseen, y_unseen, scores_seen, y_seen, unseen, seen)
    return float(np.sum((s[:-1] - s[1:]) * (u[:-1] + u[1:]) / 2.0))


def calibrated_scores(scores_unseen, y_unseen, scores_seen, y_seen, unseen: Iterable[int], seen: Iterable[int],
                      gamma: float) -> dict[str, float]:
    """u, s and H of calibrated stacking at ``gamma`` (γ subtracted from every seen class's score)."""
    unseen, seen = sorted(unseen), sorted(seen)
    shift = np.zeros(np.asarray(scores_seen).shape[1])
    shift[seen] = gamma
    all_classes = sorted(set(unseen) | set(seen))
    u = per_class_accuracy(restricted_argmax(np.asarray(scores_unseen) - shift, all_classes), y_unseen, unseen)
    s = per_class_accuracy(restricted_argmax(np.asarray(scores_seen) - shift, all_classes), y_seen, seen)
    return {"u": u, "s": s, "H": harmonic_mean(u, s)}


def best_gamma(scores_unseen, y_unseen, scores_seen, y_seen, unseen: Iterable[int], seen: Iterable[int]) -> float:
    """The γ that maximises H on these (validation) scores: the midpoint of the best step of the
    curve (ties: the step nearest γ = 0)."""
    gammas, s, u = seen_unseen_curve(scores_unseen, y_unseen, scores_seen, y_seen, unseen, seen)
    h = np.array([harmonic_mean(a, b) for a, b in zip(u, s)])
    # step k holds for γ in [gammas[k], gammas[k+1]); pick a point inside it
    lo = gammas
    hi = np.concatenate([gammas[1:], [np.inf]])
    mid = np.where(np.isinf(lo), hi - 1.0, np.where(np.isinf(hi), lo + 1.0, (lo + hi) / 2))
    if len(mid) == 1:
        mid = np.array([0.0])
    best = np.flatnonzero(h >= h.max() - 1e-12)
    return float(mid[best[np.argmin(np.abs(mid[best]))]])
