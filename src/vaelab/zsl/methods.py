"""The methods of ``vaelab zsl`` on one :class:`~vaelab.zsl.features.Split` (the generators, ESZSL and
ridge; the module docstring of :mod:`vaelab.zsl.run` describes them). Each returns its record with the
GZSL classifier's scores of the unseen and the seen test features under ``"_scores"`` and, for the
generators and ridge, the generator under ``"_generator"`` (both dropped before zsl.json is written)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data import Dataset
from ..io import RunLock, atomic_write_json
from ..metrics.zsl import per_class_accuracy, restricted_argmax, zsl_scores
from ..provenance import versions
from ..registry import get, make_config
from ..training.checkpoint import CHECKPOINT, load_model_weights, read_checkpoint
from ..training.config import TrainConfig
from ..training.trainer import Trainer
from .classify import pseudo_label, softmax_classifier, synthesize
from .config import ZSLConfig
from .eszsl import eszsl_fit, eszsl_scores
from .features import Split
from .ridge import RidgeGenerator

ESZSL_GRID = tuple(10.0 ** e for e in range(-3, 4))


def _train_generator(run_dir: Path, method: str, model_cfg: dict[str, Any], tc: TrainConfig, data: Dataset,
                     init: dict[str, torch.Tensor] | None, on_event=None):
    """Train (or resume) the generator in ``run_dir``; returns the trained variant."""
    conf = make_config(method, **model_cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        v = get(method)(conf)
    if init is not None:
        load_model_weights(v, init)
    with RunLock(run_dir):
        resume = (run_dir / CHECKPOINT).exists()
        atomic_write_json(run_dir / "config.json", {"variant": method, "model": conf.to_dict(), "train": dataclasses.asdict(tc),
                                                   "versions": versions(), "parameters": v.num_parameters()})
        Trainer(v, tc, run_dir, data, None, on_event=on_event).fit(resume=resume)
    return v.eval()


def synth_count(cfg: ZSLConfig, sp: Split) -> int:
    """Generated features per unseen class: ``cfg.n_synth``, or by default the mean number of labelled
    training features per seen class, so that the GZSL classifier's classes are balanced (Xian et al.
    generate at least as many per unseen class as a seen class has real ones; with a fixed 300 against
    about 6,000 real features per seen class here, the unseen classes' prior would be 20 times smaller)."""
    if cfg.n_synth is not None:
        return cfg.n_synth
    return max(1, int(round(float(np.isin(sp.y_train, sp.seen).sum()) / len(sp.seen))))


def _scores_from_generator(v, sp: Split, cfg: ZSLConfig, extra_x=None, extra_y=None) -> tuple[dict[str, Any], Callable]:
    """T1/u/s/H of the classifiers trained on ``v``'s generated unseen features (+ labelled unseen + extra),
    and under ``"_scores"`` the GZSL classifier's scores of the unseen and the seen test features."""
    gx, gy = synthesize(v, sp.unseen, synth_count(cfg, sp), cfg.seed)
    ex = [] if extra_x is None else [(extra_x, extra_y)]
    few = np.isin(sp.y_train, sp.unseen)  # the any-shot mode's real unseen examples
    zsl_x, zsl_y = zip((gx, gy), (sp.x_train[few], sp.y_train[few]), *ex)
    n = len(sp.attributes)
    zsl = softmax_classifier(np.concatenate(zsl_x), np.concatenate(zsl_y), sp.unseen, cfg.seed, n)
    gzsl_x, gzsl_y = zip((sp.x_train, sp.y_train), (gx, gy), *ex)
    gzsl = softmax_classifier(np.concatenate(gzsl_x), np.concatenate(gzsl_y), sorted(sp.seen + sp.unseen), cfg.seed, n)
    su, ss = gzsl(sp.x_test_unseen), gzsl(sp.x_test_seen)
    res: dict[str, Any] = zsl_scores(su, sp.y_test_unseen, ss, sp.y_test_seen, sp.unseen, sp.seen)
    res["T1"] = per_class_accuracy(restricted_argmax(zsl(sp.x_test_unseen), sp.unseen), sp.y_test_unseen, sp.unseen)
    res["_scores"] = (su, ss)
    return res, zsl


def run_generator(cfg: ZSLConfig, sp: Split, out: Path, on_event=None, gen_dir: Path | None = None,
                  refined_dir: Path | None = None) -> dict[str, Any]:
    """Train (or resume) the generator in ``gen_dir`` (default ``out/generator``; Zero-VAE-GAN's refinement
    in ``refined_dir``, default ``out/generator-refined``) and score its classifiers on ``sp``."""
    gen_dir = out / "generator" if gen_dir is None else gen_dir
    refined_dir = out / "generator-refined" if refined_dir is None else refined_dir
    model_cfg = {"data_shape": (sp.feature_dim,), "n_classes": len(sp.attributes), "attributes": sp.attributes.round(6).tolist(),
                 "latent_dim": int(sp.attributes.shape[1]), **cfg.model}
    uses_unlabelled = cfg.setting == "transductive" and cfg.method == "f-vaegan-d2"
    if uses_unlabelled:
        model_cfg.update(transductive=True, unseen=list(sp.unseen))
    x, y = sp.x_train, sp.y_train
    if uses_unlabelled:
        x = np.concatenate([x, sp.x_unlabelled])
        y = np.concatenate([y, np.full(len(sp.x_unlabelled), -1)])
    tc = TrainConfig(dataset=cfg.dataset, data_dir=cfg.data_dir, epochs=cfg.n_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                     optimizer="adam", seed=cfg.seed, progress=False)
    data = Dataset(cfg.dataset, "train", x.astype(np.float32), y.astype(np.int64))
    t0 = time.perf_counter()
    v = _train_generator(gen_dir, cfg.method, model_cfg, tc, data, None, on_event)
    res, zsl = _scores_from_generator(v, sp, cfg)
    record: dict[str, Any] = {**res, "n_synth": synth_count(cfg, sp), "seconds_train": round(time.perf_counter() - t0, 2)}
    strategy = cfg.strategy
    if strategy != "none":
        record["before_self_training"] = {k: w for k, w in res.items() if k != "_scores"}
        idx, lab = pseudo_label(zsl(sp.x_unlabelled), sp.unseen, cfg.pseudo_fraction)
        px, py = sp.x_unlabelled[idx], lab
        record["pseudo_labelled"] = int(len(idx))
        if strategy in ("generator", "both"):
            init, _ = read_checkpoint(gen_dir)  # the refinement starts from the trained weights
            tc2 = dataclasses.replace(tc, epochs=cfg.refine_epochs)
            data2 = Dataset(cfg.dataset, "train", np.concatenate([sp.x_train, px]).astype(np.float32),
                            np.concatenate([sp.y_train, py]).astype(np.int64))
            v = _train_generator(refined_dir, cfg.method, model_cfg, tc2, data2, init, on_event)
        extra = (px, py) if strategy in ("classifier", "both") else (None, None)
        res, _ = _scores_from_generator(v, sp, cfg, *extra)
        record.update(res)
        record["seconds_train"] = round(time.perf_counter() - t0, 2)
    record["_generator"] = v
    return record


def run_eszsl(cfg: ZSLConfig, sp: Split) -> dict[str, Any]:
    """ESZSL with (γ, λ) chosen on the seen classes: the last two seen classes act as unseen."""
    train_classes = sorted(set(int(c) for c in sp.y_train))
    val_unseen = sorted(sp.seen)[-2:]
    held = np.isin(sp.y_train, val_unseen)
    x_fit, y_fit, x_held, y_held = sp.x_train[~held], sp.y_train[~held], sp.x_train[held], sp.y_train[held]
    fit_classes = [c for c in train_classes if c not in val_unseen]
    best, best_acc = (1.0, 1.0), -1.0
    for g in ESZSL_GRID:
        for lam in ESZSL_GRID:
            v = eszsl_fit(x_fit, y_fit, sp.attributes, fit_classes, g, lam)
            pred = restricted_argmax(eszsl_scores(x_held, v, sp.attributes), val_unseen)
            acc = per_class_accuracy(pred, y_held, val_unseen)
            if acc > best_acc + 1e-12:
                best, best_acc = (g, lam), acc
    v = eszsl_fit(sp.x_train, sp.y_train, sp.attributes, train_classes, *best)
    res = zsl_scores(eszsl_scores(sp.x_test_unseen, v, sp.attributes), sp.y_test_unseen,
                     eszsl_scores(sp.x_test_seen, v, sp.attributes), sp.y_test_seen, sp.unseen, sp.seen)
    su, ss = eszsl_scores(sp.x_test_unseen, v, sp.attributes), eszsl_scores(sp.x_test_seen, v, sp.attributes)
    return {**res, "eszsl_gamma": best[0], "eszsl_lambda": best[1], "validation_accuracy": best_acc, "_scores": (su, ss)}


def run_ridge(cfg: ZSLConfig, sp: Split) -> dict[str, Any]:
    """The ridge lower bound (:mod:`vaelab.zsl.ridge`) through the generators' final classifiers."""
    g = RidgeGenerator(sp.x_train, sp.y_train, sp.attributes, sp.seen)
    res, _ = _scores_from_generator(g, sp, cfg)
    return {**res, "n_synth": synth_count(cfg, sp), "ridge_lambda": g.lam, "ridge_loo_mse": g.loo_mse, "_generator": g}


def run_method(cfg: ZSLConfig, sp: Split, out: Path) -> dict[str, Any]:
    """The method's record on ``sp``, with its GZSL test scores under ``"_scores"``."""
    if cfg.method == "eszsl":
        return run_eszsl(cfg, sp)
    if cfg.method == "ridge":
        return run_ridge(cfg, sp)
    return run_generator(cfg, sp, out)


def curve_args(scores, sp: Split) -> tuple:
    """The arguments of metrics.zsl's curve functions for a record's ``"_scores"`` on ``sp``."""
    su, ss = scores
    return su, sp.y_test_unseen, ss, sp.y_test_seen, sp.unseen, sp.seen
