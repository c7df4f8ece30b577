"""The stages of a run's evaluation and the schema of ``eval.json`` that they fill.

:func:`vaelab.rundir.evaluate_run` loads a run, its test data and the reference classifier, and
composes the stages below (each a function of the trained variant and tensors, computing metrics
with the pure functions of :mod:`vaelab.metrics`); :func:`format_table` prints the result.

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
import sys
from typing import Any, Callable

import numpy as np
import torch

from .metrics.clustering import clustering_scores
from .metrics.generative import (class_histogram, conditional_entropy, fid, inception_score, marginal_entropy,
                                 precision_recall, total_variation)
from .metrics.likelihood import variant_log_weights
from .models.base import NotAvailable, Variant
from .nn.utils import batched

SCHEMA = 1
BINARIZE_SEED = 0  # the fixed Bernoulli draw of the test set for dynamically binarized runs
SAMPLE_KEYS = ("fid", "inception_score", "precision", "recall", "sample_class_histogram", "sample_class_tv")
LIKELIHOOD_KEYS = ("neg_elbo", "iwae_nll", "neg_elbo_iwae_subset")
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


def unlabelled_scores(v: Variant, dataset: str) -> dict[str, Any]:
    """Every classifier or label metric, absent: an unlabelled dataset has no reference classifier."""
    why = absent(f"{dataset} has no labels, so there is no reference classifier to score with")
    return {k: why for k in ("recon_accuracy", "real_accuracy", "cond_accuracy", *SAMPLE_KEYS, *CLUSTER_KEYS)}


def reconstructions(v: Variant, x_in: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> torch.Tensor:
    """The variant's reconstructions of ``x_in`` (float, on the CPU); ``y`` the labels a conditional variant is given."""
    return batched(lambda i, j: v.reconstruct(x_in[i:j], None if y is None else y[i:j]).float().cpu(), x_in.shape[0],
                   batch_size)


def reconstruction_scores(v: Variant, classifier, x_in: torch.Tensor, labels: np.ndarray, y: torch.Tensor | None,
                          batch_size: int, rec: torch.Tensor | None = None) -> dict[str, float]:
    """The seed's Table 2 metric: the classifier's accuracy on reconstructions of ``x_in`` (and on
    ``x_in`` itself); ``y`` are the labels a conditional variant is given, else None. ``rec``: the
    reconstructions if already made (:func:`reconstructions`)."""
    rec = reconstructions(v, x_in, y, batch_size) if rec is None else rec
    return {"recon_accuracy": float((classifier.predict(rec) == labels).mean()),
            "real_accuracy": float((classifier.predict(x_in) == labels).mean())}


def sample_scores(v: Variant, classifier, real_feats: np.ndarray, labels: np.ndarray, n_samples: int,
                  generator: torch.Generator, batch_size: int) -> dict[str, Any]:
    """FID / IS / precision-recall / class histogram of ``n_samples`` prior samples against the test
    set's classifier features ``real_feats`` and labels; balanced labels for a conditional variant
    (and then ``cond_accuracy``)."""
    n_classes = int(v.config.n_classes)
    out: dict[str, Any] = {}
    wanted = torch.arange(n_samples) % n_classes if v.conditional else None
    try:
        samples = batched(lambda i, j: v.sample(j - i, y=None if wanted is None else wanted[i:j].to(generator.device),
                                                generator=generator).float().cpu(), n_samples, batch_size)
    except NotAvailable as e:
        out = {k: absent(e) for k in SAMPLE_KEYS}
        out["cond_accuracy"] = absent(e) if v.conditional else absent(f"{v.name} is not a conditional variant")
        return out
    feats, probs = classifier.run(samples)
    out["fid"] = fid(feats, real_feats)
    out["inception_score"] = inception_score(probs)
    out.update(precision_recall(real_feats, feats, k=3))
    hist = class_histogram(probs, n_classes)
    out["sample_class_histogram"] = [int(c) for c in hist]
    out["sample_class_tv"] = total_variation(hist, np.bincount(labels, minlength=n_classes))
    out["cond_accuracy"] = (float((probs.argmax(1) == wanted.cpu().numpy()).mean()) if v.conditional
                            else absent(f"{v.name} is not a conditional variant"))
    return out


def sequence_scores(v: Variant, judge, x: torch.Tensor, labels: np.ndarray, motion: np.ndarray,
                    generator: torch.Generator, batch_size: int, rec: torch.Tensor | None = None) -> dict[str, Any]:
    """The sequence metrics above for test sequences ``x`` (N, T, C, H, W) with digit ``labels`` and
    ``motion`` labels (N,); deterministic given ``generator``. ``rec``: the reconstructions if already made."""
    n = x.shape[0]
    rec = reconstructions(v, x, None, batch_size) if rec is None else rec
    fixed_f = batched(lambda i, j: v.fix_static(x[i:j], generator=generator).float().cpu(), n, batch_size)
    _, probs = judge.run(fixed_f)
    fixed_t = batched(lambda i, j: v.fix_dynamic(x[i:j], generator=generator).float().cpu(), n, batch_size)
    perm = torch.randperm(n, generator=generator, device=generator.device)
    swapped = batched(lambda i, j: v.swap(x[i:j], x[perm[i:j]]).float().cpu(), n, batch_size)
    p = perm.cpu().numpy()
    mean_path = batched(lambda i, j: v.fix_static(x[i:j], mean_dynamics=True).float().cpu(), n, batch_size)
    return {
        "content_accuracy": float((probs.argmax(1) == labels).mean()),
        "content_accuracy_mean_dynamics": float((judge.predict(mean_path) == labels).mean()),
        "content_is": inception_score(probs),
        "content_h_y_given_x": conditional_entropy(probs),
        "content_h_y": marginal_entropy(probs),
        "motion_accuracy": float((judge.predict_motion(fixed_t) == motion).mean()),
        "swap_content_accuracy": float((judge.predict(swapped) == labels).mean()),
        "swap_motion_accuracy": float((judge.predict_motion(swapped) == motion[p]).mean()),
        "swap_digit_from_dynamics": float((judge.predict(swapped) == labels[p]).mean()),
        "recon_motion_accuracy": float((judge.predict_motion(rec) == motion).mean()),
        **latent_probes(v, x, labels, batch_size),
    }


def latent_probes(v: Variant, x: torch.Tensor, labels: np.ndarray, batch_size: int) -> dict[str, float]:
    """Where the digit lives: a multinomial logistic regression (scikit-learn, standardised inputs) from
    the posterior means of z_f, and of z_1:T flattened, to the digit label, fitted on the first half of
    the sequences ``x`` and scored on the second half (chance is 1 / number of digits)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = x.shape[0]
    codes = batched(lambda i, j: torch.cat([m.flatten(1) for m in _posterior_means(v, x[i:j])], 1).float().cpu(), n, batch_size).numpy()
    d_f, half = int(v.config.latent_dim), n // 2
    out = {}
    for key, cols in (("probe_digit_z_f", slice(0, d_f)), ("probe_digit_z_t", slice(d_f, None))):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(codes[:half, cols], labels[:half])
        out[key] = float((probe.predict(codes[half:, cols]) == labels[half:]).mean())
    return out


@torch.no_grad()
def _posterior_means(v: Variant, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q_f, q_t, _ = v.encode_sequence(x)
    return q_f.mean, q_t.mean


def likelihood_scores(v: Variant, x_in: torch.Tensor, y: torch.Tensor | None, iwae_k: int, iwae_n: int, seed: int,
                      max_items: int, lap: Callable[[str], None], say: Callable[[str], None],
                      progress: bool = False) -> dict[str, Any]:
    """−ELBO on every image of ``x_in`` and the IWAE bound (K = ``iwae_k``) with the −ELBO on its
    first ``iwae_n`` images, in nats; absent when the variant has no tractable bound."""
    out: dict[str, Any] = {}
    n_test = x_in.shape[0]
    try:
        say(f"ELBO on {n_test} test images")
        torch.manual_seed(seed + 1)
        _, elbo = variant_log_weights(v.log_weights, x_in, 1, y, max_items=max_items)
        out["neg_elbo"] = float(-elbo.mean())
        lap("elbo")
        n_iw = min(iwae_n, n_test)
        if n_iw == 0 or iwae_k == 0:
            out["iwae_nll"] = out["neg_elbo_iwae_subset"] = absent("skipped (iwae_n or iwae_k is 0)")
            return out
        say(f"IWAE bound, K={iwae_k}, on {n_iw} test images")
        torch.manual_seed(seed + 2)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_iw, desc="IWAE", unit="img", leave=False, disable=None, file=sys.stderr)
        try:
            iw, el = variant_log_weights(v.log_weights, x_in[:n_iw], iwae_k, None if y is None else y[:n_iw],
                                         max_items=max_items, on_batch=None if bar is None else bar.update)
        finally:
            if bar is not None:
                bar.close()
        out["iwae_nll"], out["neg_elbo_iwae_subset"] = float(-iw.mean()), float(-el.mean())
        lap("iwae")
    except NotAvailable as e:
        out = {k: absent(e) for k in LIKELIHOOD_KEYS}
    return out


def cluster_scores(v: Variant, x_in: torch.Tensor, labels: np.ndarray, batch_size: int) -> dict[str, Any]:
    """Unsupervised clustering accuracy, NMI and ARI of the variant's ``predict`` against ``labels``."""
    if not v.clusters:
        return {k: absent(f"{v.name} does not assign clusters") for k in CLUSTER_KEYS}
    try:
        pred = batched(lambda i, j: torch.as_tensor(v.predict(x_in[i:j])).long().cpu(), x_in.shape[0], batch_size)
    except NotAvailable as e:
        return {k: absent(e) for k in CLUSTER_KEYS}
    sc = clustering_scores(pred.cpu().numpy(), labels)
    return {"cluster_accuracy": sc["accuracy"], "cluster_nmi": sc["nmi"], "cluster_ari": sc["ari"]}


def task_scores(v: Variant, x_in: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                taken: set[str]) -> dict[str, float]:
    """The variant's own task metrics (``Variant.task_metrics``); their keys must not clash with ``taken``."""
    task = v.task_metrics(x_in, y, generator=generator)
    clash = sorted(set(task) & set(taken))
    if clash:
        raise RuntimeError(f"{v.name}.task_metrics: keys {clash} clash with the standard metrics")
    return task


def posterior_mean(v: Variant, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``represent`` of the disentanglement metrics: observations (n, C, H, W) in [0, 1] → the encoder's
    posterior means (n, D) float64, ``batch_size`` at a time on the variant's device, without gradients
    (the variant is in eval mode: :func:`vaelab.rundir.load`)."""

    @torch.no_grad()
    def represent(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        return batched(lambda i, j: v.encode(x[i:j].to(v.device)).mean.double().cpu(), x.shape[0], batch_size).numpy()

    return represent


def disentanglement_options(mode: str) -> dict[str, dict[str, Any]] | None:
    """The options each metric runs with in ``mode`` beyond its defaults (what meta records), or None when skipped."""
    from .metrics.disentanglement import METRICS, QUICK

    opts = DISENTANGLEMENT_MODES[mode]
    if opts is None:
        return None
    per: dict[str, dict[str, Any]] = {m: dict(QUICK[m]) if opts.get("quick") else {} for m in METRICS}
    for key, val in opts.items():
        metric, _, opt = key.rpartition(".")
        if metric:
            per[metric][opt] = val
    return per


def check_disentanglement_mode(mode: str, key: str = "--disentanglement") -> None:
    from .errors import ConfigError

    if mode not in DISENTANGLEMENT_MODES:
        raise ConfigError(f"{key}: {mode!r} is not valid; choose one of {', '.join(DISENTANGLEMENT_MODES)}")


def disentanglement_unavailable(v: Variant) -> str | None:
    """Why the variant's posterior mean is no representation for the metrics, or None when it is."""
    if v.latent_kind != "gaussian":
        return f"{v.name} has a {v.latent_kind} latent, not a Gaussian encoder whose posterior mean the metrics take"
    if v.conditional:
        return f"{v.name} is conditional: its encoder needs the label, which the metrics' factor samples do not give"
    return None


def disentanglement_scores(v: Variant, sampler, mode: str, seed: int, batch_size: int) -> dict[str, Any]:
    """The DISENTANGLEMENT_KEYS of the variant's posterior mean against ``sampler`` (a
    :class:`vaelab.data.FactorSampler`), with the counts of ``mode`` (DISENTANGLEMENT_MODES); deterministic
    given ``seed``. Absent, with the reason, for a variant without a Gaussian encoder or when skipped."""
    from .metrics.disentanglement import compute_all

    opts = DISENTANGLEMENT_MODES[mode]
    why = "skipped (--disentanglement none)" if opts is None else disentanglement_unavailable(v)
    if why is not None:
        return {k: absent(why) for k in DISENTANGLEMENT_KEYS}
    rng = np.random.default_rng(seed + DISENTANGLEMENT_SEED_OFFSET)
    try:
        res = compute_all(posterior_mean(v, batch_size), sampler, rng, **opts)
    except NotAvailable as e:
        return {k: absent(e) for k in DISENTANGLEMENT_KEYS}
    return {DISENTANGLEMENT_PREFIX + k: float(val) for k, val in res.items()}


def has_task_metrics(v: Variant) -> bool:
    return type(v).task_metrics is not Variant.task_metrics


def finite_or_absent(out: dict[str, Any]) -> dict[str, Any]:
    """A non-finite number is not a result: it becomes ``absent`` with the value as the reason."""
    return {k: absent(f"non-finite value ({val})") if isinstance(val, float) and not math.isfinite(val) else val
            for k, val in out.items()}


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
        ("neg_elbo", res["neg_elbo"], f"nats, {m['n_test']} test images, binarize={m['binarization']}"),
        ("iwae_nll", res["iwae_nll"], f"nats, K={k}, first {n_iw} test images"
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
    for key, val, note in rows:
        if isinstance(val, dict) and val.get("available") is False:
            note = val["reason"]
        digits = 2 if key in ("neg_elbo", "iwae_nll", "fid") else 1 if key.startswith(("seconds", "images", "train_sec")) else 4
        lines.append(f"  {key:<{w}}  {_fmt(val, digits):>10}  {note}".rstrip())
    if isinstance(hist, list):
        lines.append(f"  {'sample classes':<{w}}  {' '.join(str(c) for c in hist)}")
    if m.get("stage_seconds"):
        lines.append(f"  evaluated in {m['eval_seconds']:.0f}s (" + ", ".join(f"{k} {t:.0f}s" for k, t in m["stage_seconds"].items()) + ")")
    return "\n".join(lines)
