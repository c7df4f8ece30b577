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
from typing import Any, Callable

import numpy as np

# (re-exported: vaelab.metrics.disentanglement is where the rest of vaelab and the tests look)
from .code_scores import (  # noqa: F401
    dci, dci_from_importance, dci_importance, discrete_entropy, discretize, mig, mig_from_codes, mutual_info_matrix, sap,
    sap_from_matrix, sap_score_matrix)
from .fixed_factor import beta_vae_score, factor_vae_score  # noqa: F401
from .sampling import BATCH_SIZE, FactorSampler, Represent  # noqa: F401


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
