"""Metrics: pure functions of arrays (NumPy or torch; float64 inside).

>>> from vaelab import metrics
>>> metrics.fid(features_a, features_b)              # Fréchet distance of two (N, F) feature sets
>>> metrics.inception_score(probs)                   # exp E KL(p(y|x) ‖ p(y)), probs (N, C)
>>> metrics.precision_recall(real, fake, k=3)        # {"precision", "recall"}
>>> metrics.clustering_scores(pred, labels)          # {"accuracy", "nmi", "ari"}
>>> metrics.iwae_bound(log_w)                        # (K, B) log weights → (B,) L_K
>>> metrics.zsl_scores(su, yu, ss, ys, unseen, seen) # zero-shot {"T1", "u", "s", "H"}
>>> from vaelab.metrics import disentanglement       # imported on demand (scikit-learn's estimators)
>>> disentanglement.compute_all(represent, sampler, rng, quick=True)  # BetaVAE, FactorVAE, MIG, DCI, SAP

Definitions: docs/equations.md, "Metrics", "Disentanglement metrics" and "IWAE bound". A run's evaluation (``eval.json``) composes
them: :func:`vaelab.rundir.evaluate_run`, schema in :mod:`vaelab.eval_schema`.
"""
from .clustering import clustering_accuracy, clustering_scores, contingency
from .cost import cost_scores
from .generative import class_histogram, fid, frechet_distance, inception_score, mean_cov, precision_recall, total_variation
from .likelihood import elbo_estimate, iwae_bound, logmeanexp, variant_log_weights
from .zsl import harmonic_mean, per_class_accuracy, restricted_argmax, zsl_scores

__all__ = [
    "fid", "frechet_distance", "mean_cov", "inception_score", "precision_recall", "class_histogram", "total_variation",
    "clustering_scores", "clustering_accuracy", "contingency",
    "iwae_bound", "elbo_estimate", "logmeanexp", "variant_log_weights",
    "cost_scores",
    "zsl_scores", "per_class_accuracy", "harmonic_mean", "restricted_argmax",
]
