"""Calibrated stacking's validation split (Chao et al. 2016; docs/zsl.md, "Metrics").

γ is chosen on seen-class data only, by making some seen classes pseudo-unseen: the ``val_loc``
classes of a ``.mat`` split, or (vaelab's benchmark, or a ``.mat`` file without ``val_loc``) the
last max(2, round(k/5)) of the k seen classes in sorted order (2 of 7 on the benchmark, the classes
ESZSL validates on). The method is trained again, on the other (pseudo-seen) classes' labelled
features less a held-out ``HOLDOUT`` share of each class (seeded, at least one example); the
held-out features are the validation test-seen set, the pseudo-unseen classes' features the
validation test-unseen set and, transductive, also its unlabelled set (shuffled), as on the ``.mat``
path. γ maximises H of that validation run (``metrics.zsl.best_gamma``); u, s and H are then
reported at that γ on the real test sets.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .features import Split

HOLDOUT = 0.2


def pseudo_unseen_classes(seen: list[int], val_classes: list[int] | None = None) -> list[int]:
    if val_classes is not None:
        return sorted(val_classes)
    k = max(2, int(round(len(seen) / 5)))
    return sorted(seen)[-k:]


def validation_split(sp: Split, pseudo_unseen: list[int], setting: str, seed: int) -> Split:
    """The seen-classes-only split on which γ is chosen (module docstring)."""
    pseudo_unseen = sorted(pseudo_unseen)
    pseudo_seen = [c for c in sorted(sp.seen) if c not in pseudo_unseen]
    if len(pseudo_unseen) < 2 or not pseudo_seen:
        raise ConfigError(f"calibrated stacking: needs at least 2 pseudo-unseen and 1 pseudo-seen class among the "
                          f"{len(sp.seen)} seen classes, got {len(pseudo_unseen)} and {len(pseudo_seen)}")
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for c in pseudo_seen:
        idx = np.flatnonzero(sp.y_train == c)
        idx = idx[rng.permutation(len(idx))]
        if len(idx) < 2:
            raise ConfigError(f"calibrated stacking: seen class {c} has {len(idx)} labelled example; need 2 (one held out)")
        k = max(1, int(round(HOLDOUT * len(idx))))
        held.append(idx[:k])
        fit.append(idx[k:])
    fit_i, held_i = np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))
    un_i = np.flatnonzero(np.isin(sp.y_train, pseudo_unseen))
    return Split(seen=pseudo_seen, unseen=pseudo_unseen,
                 attributes=sp.attributes, x_train=sp.x_train[fit_i], y_train=sp.y_train[fit_i],
                 x_unlabelled=sp.x_train[un_i[rng.permutation(len(un_i))]] if setting == "transductive" else None,
                 x_test_seen=sp.x_train[held_i], y_test_seen=sp.y_train[held_i],
                 x_test_unseen=sp.x_train[un_i], y_test_unseen=sp.y_train[un_i])
