"""The schema of ``eval.json``, which the stages of :mod:`vaelab.scoring` fill, and its table
(:func:`format_table`, what ``vaelab evaluate`` prints). No torch here: the study and the CLI read it.

The schema of eval.json (flat; ``vaelab compare`` reads it). Each metric is a number, or
``{"available": false, "reason": "..."}`` when the variant cannot produce it (it raised NotAvailable,
or the metric does not apply, or it was skipped) — never a made-up number.

Classifier metrics (the reference classifier of :mod:`vaelab.reference_classifier`):
  recon_accuracy         accuracy on reconstructions of the whole test set (the seed's Table 2 metric)
  real_accuracy          accuracy on the real test images the model sees (binarized as in training)
Sample quality, on ``n_samples`` prior samples (decoder means, probabilities in [0, 1]):
  fid                    Fréchet distance of classifier penultimate features, samples vs test set
  inception_score        exp E_x KL(p(y|x) ‖ p(y)) on the classifier's probabilities (max = n_classes)
  precision, recall      k-NN manifold estimate (k = 3) on the same features
  sample_class_histogram list of counts of the classifier's predicted class per sample
  sample_class_tv        total-variation distance of that histogram from the test set's label mix
  cond_accuracy          (conditional variants) classifier accuracy against the requested labels
Likelihood, in nats, on the test images binarized as recorded in meta.binarization:
  neg_elbo               −ELBO, mean over the whole test set (one z per image)
  iwae_nll               −L_K (Burda et al. 2016), an upper bound on −log p(x), mean over the first
                         iwae_n test images with K = iwae_k
  neg_elbo_iwae_subset   −ELBO on those same iwae_n images (the mean log weight over the K samples)
  neg_elbo_se, iwae_nll_se
                         the standard errors of those two means over the images: sample sd (ddof = 1)
                         of the per-image values / √n (absent where the mean is, or for n < 2)
  The per-image values behind them are saved with the evaluation in RUN/likelihood.safetensors
  (float64 nats; written atomically, only when eval.json is, and removed when the variant has no bound):
  ``neg_elbo`` (n_test,), ``iwae_nll`` and ``neg_elbo_iwae_subset`` (iwae_n,: the first iwae_n test
  images). Its metadata (one key, ``meta``: a JSON object of strings with sorted keys, so that the same
  evaluation writes the same bytes) says which images they are, to check that two runs' files are paired:
  dataset, n_test, iwae_n, iwae_k, seed, binarization, binarize_seed, inputs_sha256 (SHA-256 of the
  float32 bytes of the test inputs as the model saw them, binarised; see :data:`PER_IMAGE_FILE`).
Clustering (variants with clusters = True), on the test set:
  cluster_accuracy, cluster_nmi, cluster_ari
The variant's own task (``Variant.task_metrics``, only variants that define one), e.g. cvae-quadrant:
  cond_neg_elbo, cond_nll, cond_nll_baseline   the missing quadrants' −log p(y|x) estimates (nats)
Sequences (sequence variants on a sequence dataset, judged by the dataset's judge classifier of
digit and motion, :class:`vaelab.reference_classifier.SequenceJudgeNet`; the S3VAE paper's protocol),
over the whole test set:
  content_accuracy       each test sequence's static code z_f kept, the dynamics drawn from the prior:
                         judge digit accuracy against the test sequence's digit (content preserved)
  content_is, content_h_y_given_x, content_h_y
                         IS, H(y|x) and H(y) (nats) of the judge's digit probabilities on those sequences
  content_accuracy_mean_dynamics
                         the same with the prior's mean path as the dynamics instead of a draw
  motion_accuracy        each test sequence's dynamics z_1:T kept, z_f drawn from the prior: judge
                         motion accuracy against the test sequence's direction (motion preserved)
  swap_content_accuracy, swap_motion_accuracy
                         z_f of sequence i with z_1:T of sequence π(i) (a seeded permutation): the
                         judge's digit against i's, its motion against π(i)'s
  swap_digit_from_dynamics
                         the same swaps' digit against π(i)'s: high when the digit travels with z_1:T
  recon_motion_accuracy  the judge's motion accuracy on reconstructions (recon_accuracy: its digit)
  probe_digit_z_f, probe_digit_z_t
                         a logistic-regression probe of the digit from the posterior means of z_f and of
                         z_1:T, fitted on the first half of the test sequences, scored on the second
Disentanglement (datasets with ground-truth factors: ``dsprites``, ``dsprites:FILE``), the five metrics of
:func:`vaelab.metrics.disentanglement.compute_all` on the encoder's posterior mean, each drawing its own
observations from the dataset's factor sampler (seeded from the evaluation seed), with the sample counts
of ``meta.disentanglement`` (:data:`DISENTANGLEMENT_MODES`):
  disentanglement.beta_vae.train_accuracy, disentanglement.beta_vae.eval_accuracy
                         BetaVAE score (Higgins et al. 2017; chance 1/5)
  disentanglement.factor_vae.train_accuracy, disentanglement.factor_vae.eval_accuracy,
  disentanglement.factor_vae.num_active_dims
                         FactorVAE score (Kim & Mnih 2018) and the codes it counted as active
  disentanglement.mig    mutual information gap (Chen et al. 2018)
  disentanglement.dci.disentanglement, disentanglement.dci.completeness,
  disentanglement.dci.informativeness_train, disentanglement.dci.informativeness_test
                         DCI (Eastwood & Williams 2018), gradient-boosted trees
  disentanglement.sap    SAP score (Kumar et al. 2018)
Cost (from metrics.jsonl; machine-dependent):
  parameters, seconds_per_epoch, images_per_s (main phase: "train", else the last), train_seconds,
  and seconds_per_epoch.<phase>, images_per_s.<phase> for every phase of a multi-phase run
meta: variant, run_dir, dataset, n_test, binarization, binarize_seed, n_samples, iwae_k, iwae_n, seed,
  disentanglement ({"mode", "options"}: the counts of each metric; null for a dataset without factors),
  classifier_test_accuracy, classifier (its record), checkpoint (training state), eval_seconds,
  stage_seconds, created, versions, schema.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

SCHEMA = 1
BINARIZE_SEED = 0  # the fixed Bernoulli draw of the test set for dynamically binarized runs
SAMPLE_KEYS = ("fid", "inception_score", "precision", "recall", "sample_class_histogram", "sample_class_tv")
LIKELIHOOD_KEYS = ("neg_elbo", "iwae_nll", "neg_elbo_iwae_subset", "neg_elbo_se", "iwae_nll_se")
#: The standard error of each likelihood mean (absent exactly where the mean is: :func:`finite_or_absent`).
SE_KEYS = {"neg_elbo": "neg_elbo_se", "iwae_nll": "iwae_nll_se"}
#: The run's per-image likelihood values (safetensors, float64 nats; keys as in the docstring above).
PER_IMAGE_FILE = "likelihood.safetensors"
#: Its one metadata key (safetensors stores metadata as a hash map: several keys come out in any order).
PER_IMAGE_META = "meta"
CLUSTER_KEYS = ("cluster_accuracy", "cluster_nmi", "cluster_ari")
COST_KEYS = ("parameters", "seconds_per_epoch", "images_per_s", "train_seconds", "images_per_epoch", "load_avg_max")
#: The sequence metrics, each with the note ``vaelab evaluate`` prints beside it (see the module doc).
SEQUENCE_KEYS = {
    "content_accuracy": "the judge's digit: each test sequence's z_f, dynamics from the prior",
    "content_is": "IS of those sequences' digits",
    "content_h_y_given_x": "H(y|x) of those sequences (nats)",
    "content_h_y": "H(y) of those sequences (nats)",
    "content_accuracy_mean_dynamics": "the judge's digit: each test sequence's z_f, the prior's mean dynamics",
    "motion_accuracy": "the judge's motion: each test sequence's z_1:T, z_f from the prior",
    "swap_content_accuracy": "z_f of a test sequence with z_1:T of another: its digit",
    "swap_motion_accuracy": "... and the other's motion",
    "swap_digit_from_dynamics": "... its digit read as the other's (the digit travels with z_1:T; chance ≈ 10%)",
    "recon_motion_accuracy": "the judge's motion on reconstructions",
    "probe_digit_z_f": "a logistic probe of the digit from z_f (fit on half the test set, scored on the other)",
    "probe_digit_z_t": "the same probe from z_1:T (near chance when the digit stays out of the dynamics)",
}
DISENTANGLEMENT_PREFIX = "disentanglement."
#: The keys of :func:`vaelab.metrics.disentanglement.compute_all`, each stored as DISENTANGLEMENT_PREFIX + key.
DISENTANGLEMENT_METRICS = ("beta_vae.train_accuracy", "beta_vae.eval_accuracy", "factor_vae.train_accuracy",
                           "factor_vae.eval_accuracy", "factor_vae.num_active_dims", "mig", "dci.disentanglement",
                           "dci.completeness", "dci.informativeness_train", "dci.informativeness_test", "sap")
DISENTANGLEMENT_KEYS = tuple(DISENTANGLEMENT_PREFIX + k for k in DISENTANGLEMENT_METRICS)
#: ``vaelab evaluate --disentanglement MODE``: the options of each metric (``compute_all``'s ``quick`` and
#: keyword options), or None to skip them. ``standard``: disentanglement_lib's counts where they are cheap
#: (MIG, SAP: 10,000 draws), a tenth of its BetaVAE/FactorVAE points (each point encodes 64 or 128
#: images), and for DCI half its draws (5,000 / 2,500) with 10 boosting stages instead of 100 (one tree
#: per class and stage over 113 classes: 20 stages on 10,000 draws took 262 s on a busy 2-core CPU).
DISENTANGLEMENT_MODES: dict[str, dict[str, Any] | None] = {
    "standard": {"beta_vae.n_train": 1000, "beta_vae.n_eval": 500, "factor_vae.n_train": 1000, "factor_vae.n_eval": 500,
                 "dci.n_train": 5000, "dci.n_test": 2500, "dci.n_estimators": 10},
    "quick": {"quick": True},
    "none": None,
}
DISENTANGLEMENT_SEED_OFFSET = 5  # the metrics' NumPy generator: seed + this (the other stages use seed + 0..4)
#: Every key of evaluate's own schema; anything else in eval.json is a variant's task metric.
STANDARD_KEYS = frozenset({"recon_accuracy", "real_accuracy", "cond_accuracy", *SAMPLE_KEYS, *LIKELIHOOD_KEYS,
                           *CLUSTER_KEYS, *SEQUENCE_KEYS, *COST_KEYS, *DISENTANGLEMENT_KEYS, "meta"})


def absent(reason: Any) -> dict[str, Any]:
    """The value of a metric that is not available, with the reason."""
    return {"available": False, "reason": str(reason)}


def is_available(value: Any) -> bool:
    return not (isinstance(value, dict) and value.get("available") is False)


def check_disentanglement_mode(mode: str, key: str = "--disentanglement") -> None:
    if mode not in DISENTANGLEMENT_MODES:
        raise ConfigError(f"{key}: {mode!r} is not valid; choose one of {', '.join(DISENTANGLEMENT_MODES)}")



def finite_or_absent(out: dict[str, Any]) -> dict[str, Any]:
    """A non-finite number is not a result: it becomes ``absent`` with the value as the reason; a
    standard error (SE_KEYS) is absent, with the mean's reason, wherever its mean is."""
    out = {k: absent(f"non-finite value ({val})") if isinstance(val, float) and not math.isfinite(val) else val
           for k, val in out.items()}
    for mean, se in SE_KEYS.items():
        if se in out and not is_available(out.get(mean, 0.0)):
            out[se] = out[mean]
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, dict):
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def format_table(res: dict[str, Any]) -> str:
    """A human-readable table of an eval.json dict (what ``vaelab evaluate`` prints)."""
    m = res["meta"]
    n_s, k, n_iw = m["n_samples"], m["iwae_k"], m["iwae_n"]
    rows = [
        ("recon_accuracy", res["recon_accuracy"], f"classifier on reconstructions of {m['n_test']} test images "
                                                   f"(on the real ones: {_fmt(res['real_accuracy'])})"),
        *[(k, res[k], note) for k, note in SEQUENCE_KEYS.items() if k in res],
        ("fid", res["fid"], f"classifier features, {n_s} samples vs {m['n_test']} test images"),
        ("inception_score", res["inception_score"], f"classifier IS analogue (max {len(res['sample_class_histogram']) if isinstance(res['sample_class_histogram'], list) else '?'})"),
        ("precision", res["precision"], "k-NN manifold, k=3"),
        ("recall", res["recall"], "k-NN manifold, k=3"),
        ("sample_class_tv", res["sample_class_tv"], "TV distance of predicted sample classes from the test label mix"),
        ("cond_accuracy", res["cond_accuracy"], "classifier agrees with the requested label"),
        ("neg_elbo", res["neg_elbo"], f"nats ± SE, {m['n_test']} test images, binarize={m['binarization']}"),
        ("iwae_nll", res["iwae_nll"], f"nats ± SE, K={k}, first {n_iw} test images"
                                      + (f" (-ELBO on them: {_fmt(res['neg_elbo_iwae_subset'], 2)})" if is_available(res["neg_elbo_iwae_subset"]) else "")),
        ("cluster_accuracy", res["cluster_accuracy"], "Hungarian matching"),
        ("cluster_nmi", res["cluster_nmi"], ""),
        ("cluster_ari", res["cluster_ari"], ""),
        ("parameters", res["parameters"], ""),
        ("seconds_per_epoch", res.get("seconds_per_epoch"), "median, main phase"),
        ("images_per_s", res.get("images_per_s"), "median, main phase"),
    ]
    rows += [(key, val, "") for key, val in res.items() if "." in key]
    hist = res["sample_class_histogram"]
    acc = m["classifier_test_accuracy"]
    lines = [f"{m['variant']} on {m['dataset']} ({m['run_dir']}); "
             + (f"classifier test accuracy {acc:.4f}" if acc is not None else "no labels, no reference classifier")]
    w = max(len(r[0]) for r in rows)
    cells = []
    for key, val, note in rows:
        if isinstance(val, dict) and val.get("available") is False:
            note = val["reason"]
        digits = 2 if key in ("neg_elbo", "iwae_nll", "fid") else 1 if key.startswith(("seconds", "images", "train_sec")) else 4
        text = _fmt(val, digits)
        se = res.get(SE_KEYS.get(key, ""))
        if is_available(val) and isinstance(se, float):  # mean ± standard error over the images
            text += f" ± {_fmt(se, digits)}"
        cells.append((key, text, note))
    wv = max(10, *(len(t) for _, t, _ in cells))
    lines += [f"  {key:<{w}}  {text:>{wv}}  {note}".rstrip() for key, text, note in cells]
    if isinstance(hist, list):
        lines.append(f"  {'sample classes':<{w}}  {' '.join(str(c) for c in hist)}")
    if m.get("stage_seconds"):
        lines.append(f"  evaluated in {m['eval_seconds']:.0f}s (" + ", ".join(f"{k} {t:.0f}s" for k, t in m["stage_seconds"].items()) + ")")
    return "\n".join(lines)
