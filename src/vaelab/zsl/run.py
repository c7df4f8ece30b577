"""One zero-shot run (``vaelab zsl``): features of a fold, a method, the final classifiers and the
scores T1, u, s, H, written to ``OUT/zsl.json``.

Methods: the feature generators ``f-vaegan-d2``, ``zero-vae-gan`` and ``f-clswgan`` (registered
variants, trained by the one trainer in ``OUT/generator/``, resumable), the closed-form
baseline ``eszsl`` and the ``ridge`` lower bound (:mod:`vaelab.zsl.ridge`). Every run also reports
calibrated stacking (γ from a second, seen-classes-only run in ``OUT/calibration/``,
:mod:`vaelab.zsl.calibrate`) and AUSUC; ``features``/``splits`` run on ``.mat`` files
(:mod:`vaelab.zsl.matfiles`) instead of the benchmark. A generator's output becomes a classifier as in Xian et al.: ``n_synth``
features are generated per unseen class (by default as many as the labelled real features of the
average seen class, :func:`synth_count`), then softmax classifiers (multinomial logistic regression,
scikit-learn) are trained on them — for ZSL on the generated unseen features (plus the real
few-shot ones in the any-shot mode) among the unseen classes, for GZSL on the real labelled
features plus the generated unseen ones among all classes.

Settings: ``inductive`` (labelled seen features only), ``transductive`` (plus the unseen classes'
training features without labels: f-VAEGAN-D2's critic D2 sees them; Zero-VAE-GAN pseudo-labels
them, ``self_training``; f-CLSWGAN and ESZSL have no transductive counterpart here and ignore them),
and the any-shot mode ``shots`` = k > 0 (inductive only): k labelled training examples of each
unseen class join the labelled set.

Zero-VAE-GAN's self-training (vaelab's reading of Gao et al., docs/equations.md): after training, a
classifier fitted to generated unseen features labels the real unlabelled features; of the features
assigned to each unseen class, the ``pseudo_fraction`` most confident become pseudo-labelled. With
``generator`` they join the labelled set for ``refine_epochs`` more epochs of the generator (from
its weights, in ``OUT/generator-refined/``); with ``classifier`` they join the final classifiers'
training data; ``both`` does both.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import check, check_choice, check_int, check_range
from ..data import Dataset
from ..errors import ConfigError
from ..io import RunLock, atomic_write_json, read_json
from ..metrics.zsl import ausuc, best_gamma, calibrated_scores, per_class_accuracy, restricted_argmax, zsl_scores
from ..provenance import now, versions
from ..registry import get, make_config
from ..training.checkpoint import CHECKPOINT, load_model_weights, read_checkpoint
from ..training.config import TrainConfig
from ..training.trainer import Trainer
from .benchmark import DATASETS, VERSION, fold_classes
from .calibrate import pseudo_unseen_classes, validation_split
from .classify import pseudo_label, softmax_classifier, synthesize
from .eszsl import eszsl_fit, eszsl_scores
from .features import SETTINGS, SHOTS, Split, check_setting, load_features, make_split
from .ridge import RidgeGenerator

GENERATORS = ("f-vaegan-d2", "zero-vae-gan", "f-clswgan")
METHODS = (*GENERATORS, "eszsl", "ridge")
SELF_TRAINING = ("none", "generator", "classifier", "both")
ESZSL_GRID = tuple(10.0 ** e for e in range(-3, 4))
#: Default generator epochs: about 1,300–3,300 updates of batch 64 on each dataset's seen classes.
EPOCHS = {"mnist-5k": 30, "mnist": 5, "fashion-mnist": 5}
#: Default generator epochs on a ``.mat`` benchmark (about 3,300 updates of batch 64 on CUB's 7,057 trainval features).
MAT_EPOCHS = 30


@dataclass
class ZSLConfig:
    """Everything that defines one ZSL run (recorded in zsl.json; a rerun with another config is refused)."""

    dataset: str = "mnist-5k"
    method: str = "f-vaegan-d2"
    setting: str = "inductive"
    shots: int = 0
    fold: int = 0
    seed: int = 0
    data_dir: str | None = None
    epochs: int | None = None  # generator training epochs (None: EPOCHS of the dataset)
    batch_size: int = 64
    lr: float = 1e-3
    n_synth: int | None = None  # generated features per unseen class (None: synth_count's class-balanced default)
    self_training: str | None = None  # zero-vae-gan, transductive: none|generator|classifier|both (default both)
    pseudo_fraction: float = 0.5
    refine_epochs: int = 5
    model: dict[str, Any] = field(default_factory=dict)  # the generator's config overrides (--set)
    features: str | None = None  # a res101.mat-style file (with ``splits``): run on it instead of the benchmark
    splits: str | None = None  # its att_splits.mat-style file

    @property
    def on_mat(self) -> bool:
        return self.features is not None or self.splits is not None

    def validate(self) -> None:
        check_choice(self.method, "--method", METHODS)
        check_setting(self.setting, self.shots)
        if self.on_mat:
            check(self.features is not None and self.splits is not None, "--features/--splits", "come together")
            check(self.shots == 0, "--shots", "any-shot runs are for vaelab's benchmark, not --features/--splits")
        else:
            check_choice(self.dataset, "--dataset", DATASETS)
            fold_classes(self.dataset, self.fold)
        if self.shots and self.setting != "inductive":
            raise ConfigError(f"--shots: any-shot runs ({self.shots} labelled examples per unseen class) are inductive; "
                              f"drop --shots or use --setting inductive")
        check_int(self.fold, "--fold", 0)
        check_int(self.seed, "--seed", 0)
        check_int(self.epochs, "--epochs", 1, optional=True)
        check_int(self.batch_size, "--batch-size", 1)
        check_range(self.lr, "--lr", lo=0, lo_open=True)
        check_int(self.n_synth, "--n-synth", 1, optional=True)
        check_range(self.pseudo_fraction, "--pseudo-fraction", lo=0, hi=1, lo_open=True)
        check_int(self.refine_epochs, "--refine-epochs", 1)
        if self.self_training is not None:
            check_choice(self.self_training, "--self-training", SELF_TRAINING)
            check(self.self_training == "none" or (self.method == "zero-vae-gan" and self.setting == "transductive"),
                  "--self-training", "is Zero-VAE-GAN's, in the transductive setting")

    @property
    def strategy(self) -> str:
        """The self-training strategy in effect."""
        if self.self_training is not None:
            return self.self_training
        return "both" if self.method == "zero-vae-gan" and self.setting == "transductive" else "none"

    @property
    def n_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return MAT_EPOCHS if self.on_mat else EPOCHS[self.dataset]

    def to_dict(self) -> dict[str, Any]:
        d = {**dataclasses.asdict(self), "epochs": self.n_epochs, "self_training": self.strategy}
        for k in ("dataset", "fold", "data_dir") if self.on_mat else ("features", "splits"):
            d.pop(k)  # a .mat run is named by its files; a benchmark run's record keeps its old keys
        return d


# ----- generators ---------------------------------------------------------------------------------
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


def run_generator(cfg: ZSLConfig, sp: Split, out: Path, on_event=None) -> dict[str, Any]:
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
    v = _train_generator(out / "generator", cfg.method, model_cfg, tc, data, None, on_event)
    res, zsl = _scores_from_generator(v, sp, cfg)
    record: dict[str, Any] = {**res, "n_synth": synth_count(cfg, sp), "seconds_train": round(time.perf_counter() - t0, 2)}
    strategy = cfg.strategy
    if strategy != "none":
        record["before_self_training"] = {k: w for k, w in res.items() if k != "_scores"}
        idx, lab = pseudo_label(zsl(sp.x_unlabelled), sp.unseen, cfg.pseudo_fraction)
        px, py = sp.x_unlabelled[idx], lab
        record["pseudo_labelled"] = int(len(idx))
        if strategy in ("generator", "both"):
            init, _ = read_checkpoint(out / "generator")  # the refinement starts from the trained weights
            tc2 = dataclasses.replace(tc, epochs=cfg.refine_epochs)
            data2 = Dataset(cfg.dataset, "train", np.concatenate([sp.x_train, px]).astype(np.float32),
                            np.concatenate([sp.y_train, py]).astype(np.int64))
            v = _train_generator(out / "generator-refined", cfg.method, model_cfg, tc2, data2, init, on_event)
        extra = (px, py) if strategy in ("classifier", "both") else (None, None)
        res, _ = _scores_from_generator(v, sp, cfg, *extra)
        record.update(res)
        record["seconds_train"] = round(time.perf_counter() - t0, 2)
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
    return {**res, "n_synth": synth_count(cfg, sp), "ridge_lambda": g.lam, "ridge_loo_mse": g.loo_mse}


def run_method(cfg: ZSLConfig, sp: Split, out: Path) -> dict[str, Any]:
    """The method's record on ``sp``, with its GZSL test scores under ``"_scores"``."""
    if cfg.method == "eszsl":
        return run_eszsl(cfg, sp)
    if cfg.method == "ridge":
        return run_ridge(cfg, sp)
    return run_generator(cfg, sp, out)


def calibrate(cfg: ZSLConfig, sp: Split, rec: dict[str, Any], out: Path, val_classes: list[int] | None) -> dict[str, Any]:
    """Calibrated stacking (γ from a seen-classes-only validation run, :mod:`vaelab.zsl.calibrate`) and AUSUC."""
    vsp = validation_split(sp, pseudo_unseen_classes(sp.seen, val_classes), cfg.setting, cfg.seed)
    vrec = run_method(cfg, vsp, out / "calibration")
    gamma = best_gamma(*_curve_args(vrec["_scores"], vsp))
    cal = calibrated_scores(*_curve_args(rec["_scores"], sp), gamma)
    return {"gamma": gamma, "u_cal": cal["u"], "s_cal": cal["s"], "H_cal": cal["H"],
            "AUSUC": ausuc(*_curve_args(rec["_scores"], sp)),
            "calibration": {"pseudo_unseen": vsp.unseen, "pseudo_seen": vsp.seen, "n_fit": int(len(vsp.y_train)),
                            "H_val": calibrated_scores(*_curve_args(vrec["_scores"], vsp), gamma)["H"]}}


def _curve_args(scores, sp: Split) -> tuple:
    su, ss = scores
    return su, sp.y_test_unseen, ss, sp.y_test_seen, sp.unseen, sp.seen


def run(cfg: ZSLConfig, out: str | Path, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or reuse) one ZSL experiment into ``out``; returns the zsl.json record."""
    cfg.validate()
    out = Path(out)
    path = out / "zsl.json"
    if path.is_file():
        old = read_json(path)
        if old.get("config") == json.loads(json.dumps(cfg.to_dict())):
            return old
        raise ConfigError(f"{path}: holds a run with another config; pick another --out")
    t0 = time.perf_counter()
    if cfg.on_mat:
        from .matfiles import load_mat_benchmark, mat_split

        bench = load_mat_benchmark(cfg.features, cfg.splits)
        sp, val_classes = mat_split(bench, cfg.setting, cfg.seed), bench.val_classes
        source: dict[str, Any] = {"features": {"features_file": bench.features_path, "splits_file": bench.splits_path,
                                               "sha256": bench.sha256, "n_classes": len(bench.attributes)}}
    else:
        feats = load_features(cfg.dataset, cfg.fold, cfg.data_dir, log)
        sp, val_classes = make_split(feats, cfg.setting, cfg.shots, cfg.seed), None
        source = {"benchmark_version": VERSION, "features": {k: feats.meta[k] for k in ("images_sha256", "recipe", "arch")}}
    rec = run_method(cfg, sp, out)
    rec.update(calibrate(cfg, sp, rec, out, val_classes))
    rec.pop("_scores")
    rec = {**{k: float(rec[k]) for k in ("T1", "u", "s", "H")}, **rec, "config": cfg.to_dict(), **source,
           "seen": sp.seen, "unseen": sp.unseen, "n_labelled": int(len(sp.y_train)),
           "n_unlabelled": 0 if sp.x_unlabelled is None else int(len(sp.x_unlabelled)),
           "seconds": round(time.perf_counter() - t0, 2), "versions": versions(), "created": now()}
    atomic_write_json(path, rec)
    if log:
        where = Path(cfg.features).name if cfg.on_mat else f"{cfg.dataset} fold {cfg.fold}"
        log(f"zsl {cfg.method} {cfg.setting} k={cfg.shots} {where} seed {cfg.seed}: T1 {rec['T1']:.3f}  u {rec['u']:.3f}  "
            f"s {rec['s']:.3f}  H {rec['H']:.3f}  calibrated H {rec['H_cal']:.3f}  AUSUC {rec['AUSUC']:.3f}  ({rec['seconds']:.0f}s)")
    return rec


__all__ = ["ZSLConfig", "run", "METHODS", "GENERATORS", "SETTINGS", "SHOTS", "SELF_TRAINING", "pseudo_label", "softmax_classifier",
           "synth_count"]
