"""Synthetic zero-shot data whose features are a known linear function of the class attributes
plus noise, as Split objects and as files in the layout of Xian et al.'s res101.mat / att_splits.mat."""
from __future__ import annotations

import numpy as np
import scipy.io

from vaelab.zsl.features import Split


def linear_data(n_classes=12, n_unseen=4, n_val=2, attr_dim=8, feat_dim=16, n_per_class=40, noise=0.3, seed=0):
    """(x (N, F) ≥ 0, labels 0..C−1, attributes (C, A) unit rows, unseen classes, val classes):
    x = relu(W a_c + b + noise) with one random W, so the unseen classes' features follow from their attributes."""
    rng = np.random.default_rng(seed)
    att = rng.random((n_classes, attr_dim)) + 0.1 * rng.standard_normal((n_classes, attr_dim))
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    w = rng.standard_normal((feat_dim, attr_dim)) * 3.0
    means = att @ w.T + 2.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = np.maximum(means[y] + noise * rng.standard_normal((len(y), feat_dim)), 0.0)
    perm = rng.permutation(n_classes)
    unseen = sorted(perm[:n_unseen].tolist())
    val = sorted(perm[n_unseen:n_unseen + n_val].tolist())
    return x.astype(np.float32), y, att, unseen, val


def linear_split(seed=0, **kw) -> Split:
    """A Split of linear_data: 80% of each seen class's features labelled, the rest test-seen."""
    x, y, att, unseen, _ = linear_data(seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    seen = [c for c in range(len(att)) if c not in unseen]
    tr, te = [], []
    for c in seen:
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(0.8 * len(idx))
        tr.append(idx[:k])
        te.append(idx[k:])
    tr, te = np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))
    un = np.flatnonzero(np.isin(y, unseen))
    scale = x[tr].max(0)
    norm = lambda a: np.clip(a / scale, 0, 1).astype(np.float32)  # noqa: E731
    return Split(seen=seen, unseen=unseen, attributes=att.astype(np.float32), x_train=norm(x[tr]), y_train=y[tr],
                 x_unlabelled=None, x_test_seen=norm(x[te]), y_test_seen=y[te], x_test_unseen=norm(x[un]), y_test_unseen=y[un])


def write_mat_files(d, seed=0, **kw):
    """res101.mat and att_splits.mat of linear_data in d (1-based MATLAB indices; features F × N) →
    (features path, splits path, the dict written to att_splits.mat)."""
    x, y, att, unseen, val = linear_data(seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    seen = [c for c in range(len(att)) if c not in unseen]
    trainval, test_seen = [], []
    for c in seen:
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(0.8 * len(idx))
        trainval.append(idx[:k])
        test_seen.append(idx[k:])
    trainval, test_seen = np.sort(np.concatenate(trainval)), np.sort(np.concatenate(test_seen))
    col = lambda i: (np.asarray(i) + 1).reshape(-1, 1).astype(np.float64)  # noqa: E731  MATLAB: 1-based column vectors
    splits = {"att": att.T.astype(np.float64), "trainval_loc": col(trainval), "test_seen_loc": col(test_seen),
              "test_unseen_loc": col(np.flatnonzero(np.isin(y, unseen))),
              "train_loc": col(trainval[~np.isin(y[trainval], val)]), "val_loc": col(trainval[np.isin(y[trainval], val)])}
    fp, sp = d / "res101.mat", d / "att_splits.mat"
    scipy.io.savemat(fp, {"features": x.T.astype(np.float64), "labels": (y + 1).reshape(-1, 1).astype(np.float64)})
    scipy.io.savemat(sp, splits)
    return fp, sp, splits
