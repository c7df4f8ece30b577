"""Disentanglement metrics against known factors of variation, after disentanglement_lib (Locatello et al.
2019, "Challenging common assumptions in the unsupervised learning of disentangled representations"):

* ``beta_vae_score``: Higgins et al. 2017 — which factor was held fixed, told from mean |z₁ − z₂|;
* ``factor_vae_score``: Kim & Mnih 2018 — which factor was held fixed, told from the least-varying code;
* ``mig``: Chen et al. 2018 — the mutual-information gap between a factor's two most informative codes;
* ``dci``: Eastwood & Williams 2018 — disentanglement, completeness, informativeness of tree importances;
* ``sap``: Kumar et al. 2018 — the gap in single-code predictability between a factor's two best codes;
* ``compute_all``: the five, with flat keys.

Every metric takes ``represent`` (observations (n, ...) → codes (n, d), for a VAE the posterior mean), a
``FactorSampler`` (the ground-truth generative process) and a NumPy ``Generator``, draws its own samples
and calls ``represent`` on batches of at most ``batch_size`` observations. Deterministic given the
generator. Estimators are scikit-learn's. Definitions and the choices made here: docs/equations.md,
"Disentanglement metrics".
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol

import numpy as np
from scipy.stats import entropy as _entropy
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

Represent = Callable[[np.ndarray], np.ndarray]

#: Default batch of observations per ``represent`` call.
BATCH_SIZE = 256


class FactorSampler(Protocol):
    """A ground-truth generative process with discrete factors (e.g. dSprites: sizes (3, 6, 40, 32, 32))."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """int64 (n, K), factor k uniform over range(factor_sizes[k])."""
        ...

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Observations (n, ...) as float32, one per row of ``factors``."""
        ...


# ----- sampling and representing ----------------------------------------------------------------------------

def _check_sampler(sampler: FactorSampler, metric: str) -> tuple[int, ...]:
    sizes = tuple(int(s) for s in sampler.factor_sizes)
    if len(sizes) < 2 or len(sizes) != len(sampler.factor_names):
        raise ValueError(f"{metric}: need at least 2 factors with one name each, got sizes {sizes} and names "
                         f"{tuple(sampler.factor_names)}")
    if min(sizes) < 2:
        raise ValueError(f"{metric}: every factor needs at least 2 values, got sizes {sizes}")
    return sizes


def _check_count(name: str, value: int, metric: str, minimum: int = 1) -> None:
    if int(value) != value or value < minimum:
        raise ValueError(f"{metric}: {name} must be an integer ≥ {minimum}, got {value!r}")


def _sample_factors(sampler: FactorSampler, n: int, rng: np.random.Generator, metric: str) -> np.ndarray:
    f = np.asarray(sampler.sample_factors(n, rng))
    k = len(sampler.factor_sizes)
    if f.shape != (n, k):
        raise ValueError(f"{metric}: sample_factors({n}) returned shape {f.shape}, expected {(n, k)}")
    return f.astype(np.int64, copy=False)


def _represent(represent: Represent, sampler: FactorSampler, factors: np.ndarray, rng: np.random.Generator,
               batch_size: int, metric: str) -> np.ndarray:
    """Codes (n, d) float64 of observations drawn for each row of ``factors``, ``batch_size`` rows at a time."""
    out: list[np.ndarray] = []
    for start in range(0, len(factors), batch_size):
        obs = sampler.sample_observations_from_factors(factors[start:start + batch_size], rng)
        out.append(_check_codes(represent(obs), len(obs), metric, out[0].shape[1] if out else None))
    return np.concatenate(out) if out else np.zeros((0, 0))


def _check_codes(z: Any, n: int, metric: str, d: int | None) -> np.ndarray:
    if hasattr(z, "detach"):
        z = z.detach().cpu().numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != n:
        raise ValueError(f"{metric}: represent must return an (n, d) array with one row per observation; "
                         f"got shape {z.shape} for {n} observations")
    if d is not None and z.shape[1] != d:
        raise ValueError(f"{metric}: represent returned {z.shape[1]} dimensions for one batch and {d} for another")
    if not np.isfinite(z).all():
        raise ValueError(f"{metric}: represent returned {int((~np.isfinite(z)).sum())} NaN or infinite values")
    return z


def _codes_and_factors(represent: Represent, sampler: FactorSampler, n: int, rng: np.random.Generator,
                       batch_size: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, d), factors (n, K)) for ``n`` independent draws."""
    f = _sample_factors(sampler, n, rng, metric)
    return _represent(represent, sampler, f, rng, batch_size, metric), f


def _seed(rng: np.random.Generator) -> int:
    """A scikit-learn ``random_state`` drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


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


# ----- all five -----------------------------------------------------------------------------------------------

METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "beta_vae": beta_vae_score, "factor_vae": factor_vae_score, "mig": mig, "dci": dci, "sap": sap}

#: Sample counts of ``compute_all(quick=True)``: seconds on a cheap representation, not for reporting.
QUICK: dict[str, dict[str, int]] = {
    "beta_vae": {"n_train": 500, "n_eval": 250},
    "factor_vae": {"n_train": 500, "n_eval": 250, "n_variance": 1000},
    "mig": {"n_train": 2000},
    "dci": {"n_train": 1000, "n_test": 500, "n_estimators": 20},
    "sap": {"n_train": 1000, "n_test": 500},
}


def _options(fn: Callable[..., Any]) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def compute_all(represent: Represent, sampler: FactorSampler, rng: np.random.Generator, *, quick: bool = False,
                **opts: Any) -> dict[str, float]:
    """The five metrics, flat keys: ``beta_vae.train_accuracy``, ``beta_vae.eval_accuracy``,
    ``factor_vae.train_accuracy``, ``factor_vae.eval_accuracy``, ``factor_vae.num_active_dims``, ``mig``,
    ``dci.disentanglement``, ``dci.completeness``, ``dci.informativeness_train``,
    ``dci.informativeness_test``, ``sap``.

    Each metric draws from its own child of ``rng`` (``rng.spawn``), so one metric's figures do not depend
    on which others ran. ``quick`` uses the small sample counts of ``QUICK``. ``opts`` are keyword options
    of the metric functions; a plain name (``n_train=2000``) goes to every metric that has it, a
    prefixed one (``dci.n_estimators=50``) to that metric only."""
    known = {name: _options(fn) for name, fn in METRICS.items()}
    per: dict[str, dict[str, Any]] = {name: dict(QUICK[name]) if quick else {} for name in METRICS}
    for key, value in opts.items():
        metric, _, opt = key.rpartition(".")
        targets = [metric] if metric else [m for m in METRICS if opt in known[m]]
        if not targets or any(m not in known or opt not in known[m] for m in targets):
            raise ValueError(f"compute_all: unknown option {key!r}; options are "
                             f"{sorted(set().union(*known.values()))}, optionally prefixed by a metric name "
                             f"{sorted(METRICS)}")
        for m in targets:
            per[m][opt] = value
    out: dict[str, float] = {}
    for (name, fn), child in zip(METRICS.items(), rng.spawn(len(METRICS))):
        for key, value in fn(represent, sampler, child, **per[name]).items():
            out[name if key == name else f"{name}.{key}"] = value
    return out
