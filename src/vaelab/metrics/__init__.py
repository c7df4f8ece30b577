"""Metrics: pure functions of arrays (NumPy or torch; float64 inside), and ``evaluate_run``.

>>> from vaelab import metrics
>>> metrics.fid(features_a, features_b)              # Fréchet distance of two (N, F) feature sets
>>> metrics.inception_score(probs)                   # exp E KL(p(y|x) ‖ p(y)), probs (N, C)
>>> metrics.precision_recall(real, fake, k=3)        # {"precision", "recall"}
>>> metrics.clustering_scores(pred, labels)          # {"accuracy", "nmi", "ari"}
>>> metrics.iwae_bound(log_w)                        # (K, B) log weights → (B,) L_K
>>> metrics.evaluate_run("runs/vae-mnist-s0")        # every metric of a run; writes RUN/eval.json

Definitions: EQUATIONS.md, "Metrics" and "IWAE bound". The eval.json schema is documented in
:mod:`vaelab.metrics.evaluate`.
"""
from .clustering import clustering_accuracy, clustering_scores, contingency
from .cost import cost_scores, read_metrics
from .evaluate import absent, evaluate_run, format_table, is_available
from .generative import class_histogram, fid, frechet_distance, inception_score, mean_cov, precision_recall, total_variation
from .likelihood import elbo_estimate, iwae_bound, logmeanexp, variant_log_weights

__all__ = [
    "fid", "frechet_distance", "mean_cov", "inception_score", "precision_recall", "class_histogram", "total_variation",
    "clustering_scores", "clustering_accuracy", "contingency",
    "iwae_bound", "elbo_estimate", "logmeanexp", "variant_log_weights",
    "cost_scores", "read_metrics",
    "evaluate_run", "format_table", "absent", "is_available",
]
