"""The metrics of codes against factors: MIG (Chen et al. 2018), DCI (Eastwood & Williams 2018) and
SAP (Kumar et al. 2018)."""
from __future__ import annotations

import numpy as np
from scipy.stats import entropy as _entropy
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import balanced_accuracy_score, mutual_info_score
from sklearn.tree import DecisionTreeClassifier

from .sampling import BATCH_SIZE, FactorSampler, Represent, _check_count, _check_sampler, _codes_and_factors, _seed


# ----- MIG ----------------------------------------------------------------------------------------------------

def discretize(codes: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Each column of ``codes`` (n, d) binned into ``n_bins`` equal-width bins over its own range (labels
    0 … n_bins − 1; a constant column is one bin)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=n_bins)
        out[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return out


def discrete_entropy(labels: np.ndarray) -> float:
    """Empirical entropy (nats) of integer labels (n,)."""
    _, counts = np.unique(labels, return_counts=True)
    return float(_entropy(counts))


def mutual_info_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(d, K): empirical mutual information (nats, ``sklearn.metrics.mutual_info_score``) of each
    discrete code column with each factor column."""
    return np.array([[mutual_info_score(factors[:, k], discrete_codes[:, j]) for k in range(factors.shape[1])]
                     for j in range(discrete_codes.shape[1])])


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> float:
    """MIG of codes (n, d) against integer factors (n, K): mean over factors k of
    (I(z_a; v_k) − I(z_b; v_k)) / H(v_k), z_a and z_b the codes of highest and second-highest mutual
    information with v_k, after ``discretize``. A single code has gap I(z; v_k)."""
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"mig: codes {codes.shape} and factors {factors.shape} must be (n, d) and (n, K)")
    mi = mutual_info_matrix(discretize(codes, n_bins), factors)
    h = np.array([discrete_entropy(factors[:, k]) for k in range(factors.shape[1])])
    if (h <= 0).any():
        raise ValueError(f"mig: factor(s) {np.flatnonzero(h <= 0).tolist()} take a single value in the sample")
    top = -np.sort(-mi, axis=0)
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    return float(np.mean((top[0] - second) / h))


def mig(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, *, n_train: int = 10000,
        n_bins: int = 20, batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """Mutual Information Gap (Chen et al. 2018, with the histogram estimator of disentanglement_lib):
    ``mig_from_codes`` on ``n_train`` random draws. Returns {"mig"} in [0, 1]."""
    _check_sampler(sampler, "mig")
    _check_count("n_train", n_train, "mig", 2)
    _check_count("n_bins", n_bins, "mig")
    _check_count("batch_size", batch_size, "mig")
    z, f = _codes_and_factors(represent, sampler, n_train, rng, batch_size, "mig")
    return {"mig": mig_from_codes(z, f, n_bins)}


# ----- DCI ----------------------------------------------------------------------------------------------------

def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy (base ``base``) of each row of non-negative weights ``p`` (rows summing to 0 → 1, i.e. no
    information; base 1 → 0)."""
    total = p.sum(axis=1, keepdims=True)
    if base <= 1:
        return np.zeros(len(p))
    safe = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])
    return _entropy(safe.T, base=base)


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
    """{"disentanglement", "completeness"} of an importance matrix R (d codes, K factors), R ≥ 0
    (Eastwood & Williams 2018): with P_jk = R_jk / Σ_k R_jk, disentanglement is
    Σ_j ρ_j (1 − H_K(P_j·)), ρ_j = Σ_k R_jk / Σ R; completeness the same with codes and factors swapped
    (entropy base d). Codes (factors) of zero importance weigh 0; an all-zero R scores 0."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2 or not np.isfinite(r).all():
        raise ValueError(f"dci: importance must be a finite (d, K) matrix, got shape {r.shape}")
    total = r.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0}
    d, k = r.shape
    dis = 1.0 - _normalised_entropy(r, k)
    com = 1.0 - _normalised_entropy(r.T, d)
    return {"disentanglement": float(np.sum(dis * r.sum(1) / total)),
            "completeness": float(np.sum(com * r.sum(0) / total))}


def dci_importance(z_train: np.ndarray, f_train: np.ndarray, z_test: np.ndarray, f_test: np.ndarray, *,
                   n_estimators: int = 100, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """(importance (d, K), mean train accuracy, mean test accuracy): one scikit-learn
    ``GradientBoostingClassifier`` per factor, its ``feature_importances_`` a column of the matrix."""
    d, k = z_train.shape[1], f_train.shape[1]
    importance = np.zeros((d, k))
    acc_train, acc_test = [], []
    for j in range(k):
        gbc = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed + j)
        gbc.fit(z_train, f_train[:, j])
        importance[:, j] = np.abs(gbc.feature_importances_)
        acc_train.append(gbc.score(z_train, f_train[:, j]))
        acc_test.append(gbc.score(z_test, f_test[:, j]))
    return importance, float(np.mean(acc_train)), float(np.mean(acc_test))


def _train_and_test_codes(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, metric: str,
                          n_train: int, n_test: int, batch_size: int, **counts: int):
    """The checks and draws DCI and SAP share: ((codes, factors) of ``n_train`` draws, the same of ``n_test``)."""
    _check_sampler(sampler, metric)
    for name, v in (("n_train", n_train), ("n_test", n_test), *counts.items(), ("batch_size", batch_size)):
        _check_count(name, v, metric)
    return (_codes_and_factors(represent, sampler, n_train, rng, batch_size, metric),
            _codes_and_factors(represent, sampler, n_test, rng, batch_size, metric))


def dci(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, *, n_train: int = 10000,
        n_test: int = 5000, n_estimators: int = 100, batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018) with gradient-boosted trees as the regressor (as disentanglement_lib):
    ``dci_importance`` fitted on ``n_train`` draws and tested on ``n_test``, then ``dci_from_importance``.
    Returns {"disentanglement", "completeness", "informativeness_train", "informativeness_test"}; the
    informativeness figures are the classifiers' mean accuracies over factors (higher is better)."""
    (z_tr, f_tr), (z_te, f_te) = _train_and_test_codes(represent, sampler, rng, "dci", n_train, n_test, batch_size,
                                                       n_estimators=n_estimators)
    for k in range(f_tr.shape[1]):
        if len(np.unique(f_tr[:, k])) < 2:
            raise ValueError(f"dci: factor {sampler.factor_names[k]!r} takes one value in {n_train} training "
                             f"draws; raise n_train")
    importance, acc_tr, acc_te = dci_importance(z_tr, f_tr, z_te, f_te, n_estimators=n_estimators, seed=_seed(rng))
    return {**dci_from_importance(importance), "informativeness_train": acc_tr, "informativeness_test": acc_te}


# ----- SAP ----------------------------------------------------------------------------------------------------

def sap_score_matrix(z_train: np.ndarray, f_train: np.ndarray, z_test: np.ndarray, f_test: np.ndarray, *,
                     min_samples_leaf: int = 5, seed: int = 0) -> np.ndarray:
    """(d, K): balanced test accuracy of predicting factor k from code j alone with a scikit-learn
    ``DecisionTreeClassifier`` (a threshold classifier on one dimension; ``min_samples_leaf`` per leaf).
    A code constant on the training set scores 0."""
    d, k = z_train.shape[1], f_train.shape[1]
    score = np.zeros((d, k))
    for j in range(d):
        if np.ptp(z_train[:, j]) == 0:
            continue
        for i in range(k):
            tree = DecisionTreeClassifier(min_samples_leaf=min_samples_leaf, random_state=seed)
            tree.fit(z_train[:, j:j + 1], f_train[:, i])
            score[j, i] = balanced_accuracy_score(f_test[:, i], tree.predict(z_test[:, j:j + 1]))
    return score


def sap_from_matrix(score: np.ndarray) -> float:
    """Mean over factors (columns) of the gap between the highest and second-highest score (a single
    code: its score)."""
    score = np.asarray(score, dtype=np.float64)
    top = -np.sort(-score, axis=0)
    second = top[1] if len(top) > 1 else np.zeros(score.shape[1])
    return float(np.mean(top[0] - second))


def sap(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, *, n_train: int = 10000,
        n_test: int = 5000, min_samples_leaf: int = 5, batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """SAP score (Kumar et al. 2018) for discrete factors: ``sap_score_matrix`` fitted on ``n_train``
    draws and scored on ``n_test``, then ``sap_from_matrix``. Returns {"sap"}. A code that determines a
    factor with K values while every other code is independent of it gives that factor a gap of about
    1 − 1/K (chance balanced accuracy is 1/K)."""
    (z_tr, f_tr), (z_te, f_te) = _train_and_test_codes(represent, sampler, rng, "sap", n_train, n_test, batch_size,
                                                       min_samples_leaf=min_samples_leaf)
    score = sap_score_matrix(z_tr, f_tr, z_te, f_te, min_samples_leaf=min_samples_leaf, seed=_seed(rng))
    return {"sap": sap_from_matrix(score)}


