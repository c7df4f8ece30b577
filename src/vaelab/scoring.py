"""The stages of a run's evaluation, which fill the schema of ``eval.json`` (:mod:`vaelab.eval_schema`,
whose names this module re-exports).

:func:`vaelab.rundir.evaluate_run` loads a run, its test data and the reference classifier, and
composes the stages below (each a function of the trained variant and tensors, computing metrics
with the pure functions of :mod:`vaelab.metrics`); :func:`format_table` (of :mod:`vaelab.eval_schema`)
prints the result.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
import torch

from .eval_schema import (  # noqa: F401 (re-exported: the schema's names are part of this module's API)
    SCHEMA, BINARIZE_SEED, SAMPLE_KEYS, LIKELIHOOD_KEYS, SE_KEYS, PER_IMAGE_FILE, PER_IMAGE_META, CLUSTER_KEYS, COST_KEYS, SEQUENCE_KEYS,
    DISENTANGLEMENT_PREFIX, DISENTANGLEMENT_METRICS, DISENTANGLEMENT_KEYS, DISENTANGLEMENT_MODES,
    DISENTANGLEMENT_SEED_OFFSET, STANDARD_KEYS, absent, is_available, check_disentanglement_mode, finite_or_absent,
    format_table)
from .metrics.clustering import clustering_scores
from .metrics.generative import (class_histogram, conditional_entropy, fid, inception_score, marginal_entropy,
                                 precision_recall, total_variation)
from .metrics.likelihood import variant_log_weights
from .models.base import NotAvailable, Variant
from .nn.utils import batched


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


def standard_error(values: np.ndarray) -> float:
    """The standard error of the mean of ``values``: sample sd (ddof = 1) / √n; NaN for n < 2."""
    n = len(values)
    return float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def _se(values: np.ndarray) -> Any:
    return standard_error(values) if len(values) > 1 else absent("a standard error needs at least 2 images")


def likelihood_scores(v: Variant, x_in: torch.Tensor, y: torch.Tensor | None, iwae_k: int, iwae_n: int, seed: int,
                      max_items: int, lap: Callable[[str], None], say: Callable[[str], None],
                      progress: bool = False, per_image: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """−ELBO on every image of ``x_in`` and the IWAE bound (K = ``iwae_k``) with the −ELBO on its
    first ``iwae_n`` images, in nats, with the standard errors of the two means over the images
    (:func:`standard_error`); absent when the variant has no tractable bound. ``per_image``: a dict
    that receives the per-image values (float64 nats: ``neg_elbo`` (n_test,), ``iwae_nll`` and
    ``neg_elbo_iwae_subset`` (iwae_n,)), where computed."""
    out: dict[str, Any] = {}
    keep: dict[str, np.ndarray] = {}
    n_test = x_in.shape[0]
    try:
        say(f"ELBO on {n_test} test images")
        torch.manual_seed(seed + 1)
        _, elbo = variant_log_weights(v.log_weights, x_in, 1, y, max_items=max_items)
        keep["neg_elbo"] = -np.asarray(elbo, dtype=np.float64)
        out["neg_elbo"], out["neg_elbo_se"] = float(keep["neg_elbo"].mean()), _se(keep["neg_elbo"])
        lap("elbo")
        n_iw = min(iwae_n, n_test)
        if n_iw == 0 or iwae_k == 0:
            out["iwae_nll"] = out["iwae_nll_se"] = out["neg_elbo_iwae_subset"] = absent("skipped (iwae_n or iwae_k is 0)")
            if per_image is not None:
                per_image.update(keep)
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
        keep["iwae_nll"], keep["neg_elbo_iwae_subset"] = -np.asarray(iw, np.float64), -np.asarray(el, np.float64)
        out["iwae_nll"], out["neg_elbo_iwae_subset"] = float(keep["iwae_nll"].mean()), float(keep["neg_elbo_iwae_subset"].mean())
        out["iwae_nll_se"] = _se(keep["iwae_nll"])
        lap("iwae")
    except NotAvailable as e:
        return {k: absent(e) for k in LIKELIHOOD_KEYS}
    if per_image is not None:
        per_image.update(keep)
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
    from .metrics.disentanglement import METRICS, QUICK  # local: imports scikit-learn, +0.8 s per `vaelab train`

    opts = DISENTANGLEMENT_MODES[mode]
    if opts is None:
        return None
    per: dict[str, dict[str, Any]] = {m: dict(QUICK[m]) if opts.get("quick") else {} for m in METRICS}
    for key, val in opts.items():
        metric, _, opt = key.rpartition(".")
        if metric:
            per[metric][opt] = val
    return per


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
    from .metrics.disentanglement import compute_all  # local: imports scikit-learn, +0.8 s per `vaelab train`

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
