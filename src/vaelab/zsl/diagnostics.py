"""Per-run diagnostics of ``vaelab zsl`` (docs/zsl.md, "Diagnostics"), recorded in zsl.json under
``diagnostics``, computed after the final classifiers (never used to choose anything):

* ``gen_seen_to_real_seen``: a softmax classifier (the final classifiers' :func:`softmax_classifier`)
  trained only on generated features of the seen classes (``min(n_synth, GEN_MAX)`` per class, seed
  + 1), scored by per-class mean accuracy on the real test-seen features, among the seen classes:
  how well the generator's class-conditional features stand in for real ones where both exist;
* ``probe_unseen`` / ``probe_seen``: the held-out accuracy of a logistic regression separating real
  test features from generated ones of the same classes (one generated feature per real one, at most
  ``PROBE_MAX`` of each, seed + 2; :func:`~vaelab.metrics.zsl_diagnostics.probe_accuracy`): 0.5 means
  a linear probe cannot tell them apart;
* ``confusion_unseen``: where the unseen test examples go under the GZSL classifier, the share of
  each unseen class predicted as each class (``shares``, rows: ``unseen``, columns: ``classes``; left
  out above ``MATRIX_MAX`` classes), ``correct`` (= u), ``unseen_mass`` (the mean share predicted as
  any unseen class) and ``unseen_mass_cal`` (the same after calibrated stacking at the run's γ).

ESZSL generates nothing: its record has the confusion and ``skipped`` saying why the rest is absent.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..metrics.zsl import per_class_accuracy, restricted_argmax
from ..metrics.zsl_diagnostics import PROBE_MAX, confusion_shares, mass_to, probe_accuracy
from .classify import softmax_classifier, synthesize
from .features import Split

#: at most this many generated features per seen class train the generated-seen classifier
GEN_MAX = 1000
#: the confusion matrix is written when there are at most this many classes
MATRIX_MAX = 50
ESZSL_SKIPPED = "ESZSL embeds features in attribute space and generates none: no generated-feature diagnostics"


def confusion_record(scores_unseen: np.ndarray, sp: Split, gamma: float) -> dict[str, Any]:
    """Where the unseen test examples go, before and after calibrated stacking at ``gamma``."""
    classes = sorted(sp.seen + sp.unseen)
    shares = confusion_shares(restricted_argmax(scores_unseen, classes), sp.y_test_unseen, sp.unseen, classes)
    shift = np.zeros(np.asarray(scores_unseen).shape[1])
    shift[sp.seen] = gamma
    cal = confusion_shares(restricted_argmax(np.asarray(scores_unseen) - shift, classes), sp.y_test_unseen, sp.unseen, classes)
    rec: dict[str, Any] = {"unseen": list(sp.unseen), "classes": classes,
                           "correct": float(np.mean([shares[i, classes.index(c)] for i, c in enumerate(sp.unseen)])),
                           "unseen_mass": mass_to(shares, classes, sp.unseen), "unseen_mass_cal": mass_to(cal, classes, sp.unseen)}
    if len(classes) <= MATRIX_MAX:
        rec["shares"] = np.round(shares, 4).tolist()
    return rec


def _matched_fakes(v, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(real, generated): at most PROBE_MAX real rows (seeded) and one generated feature of each one's class."""
    idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:PROBE_MAX])
    labels = torch.from_numpy(np.asarray(y[idx], dtype=np.int64))
    fake = v.sample(len(idx), labels, generator=torch.Generator().manual_seed(seed))
    return x[idx], fake.cpu().numpy()


def diagnose(v, sp: Split, scores_unseen: np.ndarray, gamma: float, n_synth: int, seed: int) -> dict[str, Any]:
    """The diagnostics of generator ``v`` (a trained variant or the ridge generator) on ``sp``."""
    n = min(n_synth, GEN_MAX)
    gx, gy = synthesize(v, sp.seen, n, seed + 1)
    clf = softmax_classifier(gx, gy, sorted(sp.seen), seed, len(sp.attributes))
    gen_real = per_class_accuracy(restricted_argmax(clf(sp.x_test_seen), sp.seen), sp.y_test_seen, sp.seen)
    out: dict[str, Any] = {"gen_seen_to_real_seen": gen_real, "gen_seen_per_class": n}
    for side, x, y in (("unseen", sp.x_test_unseen, sp.y_test_unseen), ("seen", sp.x_test_seen, sp.y_test_seen)):
        real, fake = _matched_fakes(v, x, y, seed + 2)
        out[f"probe_{side}"] = probe_accuracy(real, fake, seed)
    out["confusion_unseen"] = confusion_record(scores_unseen, sp, gamma)
    return out


def eszsl_diagnostics(scores_unseen: np.ndarray, sp: Split, gamma: float) -> dict[str, Any]:
    return {"skipped": ESZSL_SKIPPED, "confusion_unseen": confusion_record(scores_unseen, sp, gamma)}
