"""The metrics that tell which factor was held fixed: the BetaVAE score (Higgins et al. 2017) and the
FactorVAE score (Kim & Mnih 2018)."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .sampling import (BATCH_SIZE, FactorSampler, Represent, _check_count, _check_sampler, _codes_and_factors, _represent,
                       _sample_factors, _seed)


# ----- BetaVAE score ------------------------------------------------------------------------------------------

def _beta_vae_points(represent: Represent, sampler: FactorSampler, n_points: int, group_size: int,
                     rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (n_points, d), fixed factor (n_points,)): each point is mean_l |z(x₁ˡ) − z(x₂ˡ)| over
    ``group_size`` pairs that share the value of one factor drawn uniformly and differ elsewhere at random."""
    k = len(sampler.factor_sizes)
    per_block = max(1, batch_size // group_size)
    feats, labels = [], []
    for start in range(0, n_points, per_block):
        p = min(per_block, n_points - start)
        fixed = rng.integers(k, size=p)
        f1 = _sample_factors(sampler, p * group_size, rng, "beta_vae")
        f2 = _sample_factors(sampler, p * group_size, rng, "beta_vae")
        rows = np.arange(p * group_size)
        cols = np.repeat(fixed, group_size)
        f2[rows, cols] = f1[rows, cols]
        z1 = _represent(represent, sampler, f1, rng, batch_size, "beta_vae")
        z2 = _represent(represent, sampler, f2, rng, batch_size, "beta_vae")
        feats.append(np.abs(z1 - z2).reshape(p, group_size, -1).mean(1))
        labels.append(fixed)
    return np.concatenate(feats), np.concatenate(labels)


def beta_vae_score(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, *, n_train: int = 10000,
                   n_eval: int = 5000, group_size: int = 64, batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """BetaVAE score (Higgins et al. 2017): accuracy of a linear classifier
    (scikit-learn ``LogisticRegression`` on standardised features) that tells which factor was held fixed
    from the mean absolute code difference of ``group_size`` pairs sharing it. ``n_train`` and ``n_eval``
    such points. Returns {"train_accuracy", "eval_accuracy"}; chance is 1/K for K factors."""
    _check_sampler(sampler, "beta_vae")
    for name, v in (("n_train", n_train), ("n_eval", n_eval), ("group_size", group_size), ("batch_size", batch_size)):
        _check_count(name, v, "beta_vae")
    x_tr, y_tr = _beta_vae_points(represent, sampler, n_train, group_size, rng, batch_size)
    x_ev, y_ev = _beta_vae_points(represent, sampler, n_eval, group_size, rng, batch_size)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=_seed(rng)))
    if len(np.unique(y_tr)) < 2:  # every training point fixed the same factor: nothing to fit
        return {"train_accuracy": 1.0, "eval_accuracy": float(np.mean(y_ev == y_tr[0]))}
    clf.fit(x_tr, y_tr)
    return {"train_accuracy": float(clf.score(x_tr, y_tr)), "eval_accuracy": float(clf.score(x_ev, y_ev))}


# ----- FactorVAE score ----------------------------------------------------------------------------------------

def _factor_vae_votes(represent: Represent, sampler: FactorSampler, n_votes: int, group_size: int,
                      scale: np.ndarray, active: np.ndarray, rng: np.random.Generator, batch_size: int) -> np.ndarray:
    """Counts (d, K): how often code j had the smallest normalised variance in a group of ``group_size``
    draws that share the value of factor k (k uniform, the shared value that of the group's first draw)."""
    k = len(sampler.factor_sizes)
    votes = np.zeros((len(scale), k), dtype=np.int64)
    active_idx = np.flatnonzero(active)
    per_block = max(1, batch_size // group_size)
    for start in range(0, n_votes, per_block):
        p = min(per_block, n_votes - start)
        fixed = rng.integers(k, size=p)
        f = _sample_factors(sampler, p * group_size, rng, "factor_vae").reshape(p, group_size, k)
        f[np.arange(p), :, fixed] = f[np.arange(p), 0, fixed][:, None]
        z = _represent(represent, sampler, f.reshape(p * group_size, k), rng, batch_size, "factor_vae")
        z = z.reshape(p, group_size, -1)[:, :, active_idx] / scale[active_idx]
        code = active_idx[np.argmin(z.var(axis=1, ddof=1), axis=1)]
        np.add.at(votes, (code, fixed), 1)
    return votes


def factor_vae_score(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, *, n_train: int = 10000,
                     n_eval: int = 5000, group_size: int = 64, n_variance: int = 10000, prune_std: float = 0.05,
                     batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """FactorVAE score (Kim & Mnih 2018): each code is divided by its standard deviation over
    ``n_variance`` random draws; codes whose standard deviation is below ``prune_std`` (collapsed) are
    left out. A vote is (the code of least variance among ``group_size`` draws sharing one factor, that
    factor); the majority-vote classifier maps each code to the factor it was most often voted with.
    Returns {"train_accuracy", "eval_accuracy", "num_active_dims"} over ``n_train`` and ``n_eval`` votes;
    all 0 when no code is active (as disentanglement_lib)."""
    _check_sampler(sampler, "factor_vae")
    for name, v in (("n_train", n_train), ("n_eval", n_eval), ("batch_size", batch_size)):
        _check_count(name, v, "factor_vae")
    _check_count("group_size", group_size, "factor_vae", 2)
    _check_count("n_variance", n_variance, "factor_vae", 2)
    z, _ = _codes_and_factors(represent, sampler, n_variance, rng, batch_size, "factor_vae")
    std = z.std(axis=0, ddof=1)
    active = std >= prune_std
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train = _factor_vae_votes(represent, sampler, n_train, group_size, std, active, rng, batch_size)
    evalv = _factor_vae_votes(represent, sampler, n_eval, group_size, std, active, rng, batch_size)
    vote_for = train.argmax(axis=1)  # the majority-vote classifier: code → factor
    codes = np.arange(len(std))
    return {"train_accuracy": float(train[codes, vote_for].sum() / train.sum()),
            "eval_accuracy": float(evalv[codes, vote_for].sum() / evalv.sum()),
            "num_active_dims": float(active.sum())}


