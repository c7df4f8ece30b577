"""``evaluate_run``: every metric of one trained run, written to ``RUN/eval.json``.

The schema of eval.json (flat; ``vaelab compare`` reads it). Each metric is a number, or
``{"available": false, "reason": "..."}`` when the variant cannot produce it (it raised NotAvailable,
or the metric does not apply, or it was skipped) — never a made-up number.

Classifier metrics (the reference classifier of :mod:`vaelab.classifier`):
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
Cost (from metrics.jsonl; machine-dependent):
  parameters, seconds_per_epoch, images_per_s (main phase: "train", else the last), train_seconds,
  and seconds_per_epoch.<phase>, images_per_s.<phase> for every phase of a multi-phase run
meta: variant, run_dir, dataset, n_test, binarization, binarize_seed, n_samples, iwae_k, iwae_n, seed,
  classifier_test_accuracy, classifier (its record), checkpoint (training state), eval_seconds,
  stage_seconds, created, versions, schema.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import check_int
from ..errors import RunDirError
from .clustering import clustering_scores
from .cost import cost_scores, read_metrics
from .generative import class_histogram, fid, inception_score, precision_recall, total_variation
from .likelihood import variant_log_weights

SCHEMA = 1
BINARIZE_SEED = 0  # the fixed Bernoulli draw of the test set for dynamically binarized runs
SAMPLE_KEYS = ("fid", "inception_score", "precision", "recall", "sample_class_histogram", "sample_class_tv")
LIKELIHOOD_KEYS = ("neg_elbo", "iwae_nll", "neg_elbo_iwae_subset")
CLUSTER_KEYS = ("cluster_accuracy", "cluster_nmi", "cluster_ari")
COST_KEYS = ("parameters", "seconds_per_epoch", "images_per_s", "train_seconds")
#: Every key of evaluate's own schema; anything else in eval.json is a variant's task metric.
STANDARD_KEYS = frozenset({"recon_accuracy", "real_accuracy", "cond_accuracy", *SAMPLE_KEYS, *LIKELIHOOD_KEYS,
                           *CLUSTER_KEYS, *COST_KEYS, "meta"})


def absent(reason: str) -> dict[str, Any]:
    """The value of a metric that is not available, with the reason."""
    return {"available": False, "reason": str(reason)}


def is_available(value: Any) -> bool:
    return not (isinstance(value, dict) and value.get("available") is False)


def _batched(fn: Callable[[int, int], torch.Tensor], n: int, batch: int) -> torch.Tensor:
    return torch.cat([fn(i, min(i + batch, n)) for i in range(0, n, batch)]) if n else torch.zeros(0)


def evaluate_run(
    run_dir: str | Path,
    n_samples: int = 10000,
    iwae_k: int = 1000,
    iwae_n: int = 1000,
    seed: int = 0,
    data_dir: str | None = None,
    classifier=None,
    write: bool = True,
    batch_size: int = 500,
    max_items: int = 512,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and return the eval.json dict (written atomically into the run
    dir when ``write``). ``classifier``: a :class:`vaelab.classifier.Classifier` to use instead of the
    cached reference one of the run's dataset. ``iwae_n=0`` or ``iwae_k=0`` skips the IWAE bound.
    Deterministic for a given ``seed`` (apart from the timings)."""
    from .. import __version__
    from ..classifier import load_or_train
    from ..data import binarize, load_dataset, to_tensor
    from ..io import RunLock, atomic_write_json, read_json
    from ..models.base import NotAvailable, Variant
    from ..training.trainer import load, versions

    for name, val, lo in (("n_samples", n_samples, 10), ("iwae_k", iwae_k, 0), ("iwae_n", iwae_n, 0), ("seed", seed, 0)):
        check_int(val, name, lo)
    say = log or (lambda msg: None)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.json").is_file():
        raise RunDirError(f"{run_dir}: not a vaelab run directory (no config.json)")
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    last = [t_start]

    def lap(name: str) -> None:
        now = time.perf_counter()
        stages[name] = round(now - last[0], 2)
        last[0] = now
    with (RunLock(run_dir) if write else contextlib.nullcontext()):  # no writing, no lock: a training run may go on
        conf = read_json(run_dir / "config.json")
        try:
            dataset, mode = conf["train"]["dataset"], conf["train"].get("binarize", "none")
        except (KeyError, TypeError):
            raise RunDirError(f"{run_dir / 'config.json'}: no train.dataset entry") from None
        v = load(run_dir)
        ck_path = run_dir / "checkpoint.json"
        ck_state = read_json(ck_path) if ck_path.is_file() else {}
        data_dir = data_dir if data_dir is not None else conf["train"].get("data_dir")
        test = load_dataset(dataset, "test", data_dir)
        if classifier is None:
            classifier = load_or_train(dataset, data_dir, log=say)
        n_test, n_classes = len(test), int(v.config.n_classes)
        lap("load")
        out: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            x_grey = to_tensor(test.images)
            y = torch.as_tensor(test.labels)
            x_in = binarize(x_grey, mode, torch.Generator().manual_seed(BINARIZE_SEED))  # what the model sees
            yc = y if v.conditional else None

            # --- reconstructions: the seed's Table 2 metric, on the whole test set --------------
            say(f"reconstructing {n_test} test images")
            rec = _batched(lambda i, j: v.reconstruct(x_in[i:j], None if yc is None else yc[i:j]).float(), n_test, batch_size)
            out["recon_accuracy"] = float((classifier.predict(rec) == test.labels).mean())
            out["real_accuracy"] = float((classifier.predict(x_in) == test.labels).mean())
            real_feats, _ = classifier.run(x_grey)
            lap("reconstruction")

            # --- prior samples (balanced labels for conditional variants) -------------------------
            say(f"drawing {n_samples} samples")
            g = torch.Generator().manual_seed(seed)
            labels = torch.arange(n_samples) % n_classes if v.conditional else None
            try:
                samples = _batched(lambda i, j: v.sample(j - i, y=None if labels is None else labels[i:j], generator=g).float(),
                                   n_samples, batch_size)
            except NotAvailable as e:
                for k in SAMPLE_KEYS:
                    out[k] = absent(e)
                out["cond_accuracy"] = absent(e) if v.conditional else absent(f"{v.name} is not a conditional variant")
            else:
                feats, probs = classifier.run(samples)
                out["fid"] = fid(feats, real_feats)
                out["inception_score"] = inception_score(probs)
                out.update(precision_recall(real_feats, feats, k=3))
                hist = class_histogram(probs, n_classes)
                out["sample_class_histogram"] = [int(c) for c in hist]
                out["sample_class_tv"] = total_variation(hist, np.bincount(test.labels, minlength=n_classes))
                if v.conditional:
                    out["cond_accuracy"] = float((probs.argmax(1) == labels.numpy()).mean())
                else:
                    out["cond_accuracy"] = absent(f"{v.name} is not a conditional variant")

            lap("samples")

            # --- likelihood bounds ---------------------------------------------------------------
            try:
                say(f"ELBO on {n_test} test images")
                torch.manual_seed(seed + 1)
                _, elbo = variant_log_weights(v.log_weights, x_in, 1, yc, max_items=max_items)
                out["neg_elbo"] = float(-elbo.mean())
                lap("elbo")
                n_iw = min(iwae_n, n_test)
                if n_iw == 0 or iwae_k == 0:
                    out["iwae_nll"] = out["neg_elbo_iwae_subset"] = absent("skipped (iwae_n or iwae_k is 0)")
                else:
                    say(f"IWAE bound, K={iwae_k}, on {n_iw} test images")
                    torch.manual_seed(seed + 2)
                    bar = None
                    if log is not None:
                        from tqdm.auto import tqdm

                        bar = tqdm(total=n_iw, desc="IWAE", unit="img", leave=False, disable=None, file=sys.stderr)
                    try:
                        iw, el = variant_log_weights(v.log_weights, x_in[:n_iw], iwae_k, None if yc is None else yc[:n_iw],
                                                     max_items=max_items, on_batch=None if bar is None else bar.update)
                    finally:
                        if bar is not None:
                            bar.close()
                    out["iwae_nll"], out["neg_elbo_iwae_subset"] = float(-iw.mean()), float(-el.mean())
                    lap("iwae")
            except NotAvailable as e:
                for k in LIKELIHOOD_KEYS:
                    out[k] = absent(e)

            # --- clusters --------------------------------------------------------------------------
            if not v.clusters:
                for k in CLUSTER_KEYS:
                    out[k] = absent(f"{v.name} does not assign clusters")
            else:
                try:
                    pred = _batched(lambda i, j: torch.as_tensor(v.predict(x_in[i:j])).long(), n_test, batch_size)
                    sc = clustering_scores(pred.numpy(), test.labels)
                    out.update({"cluster_accuracy": sc["accuracy"], "cluster_nmi": sc["nmi"], "cluster_ari": sc["ari"]})
                except NotAvailable as e:
                    for k in CLUSTER_KEYS:
                        out[k] = absent(e)

            lap("clusters")

            # --- the variant's own task (e.g. quadrant completion) --------------------------------
            if type(v).task_metrics is not Variant.task_metrics:
                say("task metrics")
                task = v.task_metrics(x_in, y, generator=torch.Generator().manual_seed(seed + 3))
                clash = sorted(set(task) & set(out))
                if clash:
                    raise RuntimeError(f"{v.name}.task_metrics: keys {clash} clash with the standard metrics")
                out.update(task)
                lap("task")

        # --- cost -----------------------------------------------------------------------------------
        out["parameters"] = int(v.num_parameters())
        try:
            out.update(cost_scores(read_metrics(run_dir / "metrics.jsonl")))
        except (RunDirError, ValueError, KeyError) as e:
            for k in COST_KEYS[1:]:
                out[k] = absent(f"no usable metrics.jsonl ({e})")

        for k, val in out.items():  # a non-finite number is not a result: say so instead
            if isinstance(val, float) and not math.isfinite(val):
                out[k] = absent(f"non-finite value ({val})")
        out["meta"] = {
            "schema": SCHEMA,
            "variant": v.name,
            "run_dir": str(run_dir),
            "dataset": dataset,
            "n_test": n_test,
            "binarization": mode,
            "binarize_seed": BINARIZE_SEED if mode == "dynamic" else None,
            "n_samples": n_samples,
            "sample_labels": "balanced (i mod n_classes)" if v.conditional else None,
            "iwae_k": iwae_k,
            "iwae_n": min(iwae_n, n_test),
            "seed": seed,
            "classifier_test_accuracy": classifier.test_accuracy,
            "classifier": {k: classifier.meta.get(k) for k in ("stem", "arch", "data_sha256", "recipe", "n_train", "test_accuracy", "created")},
            "checkpoint": {k: ck_state.get(k) for k in ("done", "phase", "epoch", "step")},
            "eval_seconds": round(time.perf_counter() - t_start, 2),
            "stage_seconds": stages,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {**versions(), "vaelab": __version__},
        }
        if write:
            atomic_write_json(run_dir / "eval.json", out)
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
    lines = [f"{m['variant']} on {m['dataset']} ({m['run_dir']}); classifier test accuracy {m['classifier_test_accuracy']:.4f}"]
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


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
