"""One zero-shot run (``vaelab zsl``): features of a fold, a method, the final classifiers and the
scores T1, u, s, H, written to ``OUT/zsl.json``.

Methods: the feature generators ``f-vaegan-d2``, ``zero-vae-gan`` and ``f-clswgan`` (registered
variants, trained by the one trainer in ``OUT/generator/``, resumable), and the closed-form
baseline ``eszsl``. A generator's output becomes a classifier as in Xian et al.: ``n_synth``
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
from ..metrics.zsl import per_class_accuracy, restricted_argmax, zsl_scores
from ..provenance import now, versions
from ..registry import get, make_config
from ..training.checkpoint import CHECKPOINT, load_model_weights, read_checkpoint
from ..training.config import TrainConfig
from ..training.trainer import Trainer
from .benchmark import DATASETS, VERSION, fold_classes
from .eszsl import eszsl_fit, eszsl_scores
from .features import SETTINGS, SHOTS, Split, check_setting, load_features, make_split

GENERATORS = ("f-vaegan-d2", "zero-vae-gan", "f-clswgan")
METHODS = (*GENERATORS, "eszsl")
SELF_TRAINING = ("none", "generator", "classifier", "both")
ESZSL_GRID = tuple(10.0 ** e for e in range(-3, 4))
#: Default generator epochs: about 1,300–3,300 updates of batch 64 on each dataset's seen classes.
EPOCHS = {"mnist-5k": 30, "mnist": 5, "fashion-mnist": 5}


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

    def validate(self) -> None:
        check_choice(self.dataset, "--dataset", DATASETS)
        check_choice(self.method, "--method", METHODS)
        check_setting(self.setting, self.shots)
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
        return EPOCHS[self.dataset] if self.epochs is None else self.epochs

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "epochs": self.n_epochs, "self_training": self.strategy}


# ----- the final classifier -----------------------------------------------------------------------
def softmax_classifier(x: np.ndarray, y: np.ndarray, classes: list[int], seed: int = 0):
    """Multinomial logistic regression on (x, y) → a function giving scores (N, 10) with −inf outside ``classes``."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000, random_state=seed)
    clf.fit(x.astype(np.float64), y)
    cols = [int(c) for c in clf.classes_]
    if set(cols) != set(classes):
        raise ValueError(f"classifier saw classes {cols}, expected {classes}")

    def scores(xs: np.ndarray) -> np.ndarray:
        out = np.full((xs.shape[0], 10), -np.inf)
        out[:, cols] = clf.predict_log_proba(xs.astype(np.float64))
        return out

    return scores


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


def synthesize(v, classes: list[int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated features per class of ``classes`` (seeded): (n·len(classes), F), labels."""
    y = torch.tensor(classes).repeat_interleave(n)
    x = v.sample(y.shape[0], y, generator=torch.Generator().manual_seed(seed))
    return x.cpu().numpy().astype(np.float32), y.cpu().numpy()


def pseudo_label(scores: np.ndarray, classes: list[int], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels) of the most confident ``fraction`` of the examples assigned to each class in ``classes``."""
    pred = restricted_argmax(scores, classes)
    conf = scores[np.arange(len(pred)), pred]
    idx, lab = [], []
    for c in classes:
        members = np.flatnonzero(pred == c)
        if members.size == 0:
            continue
        k = max(1, int(round(fraction * members.size)))
        best = members[np.argsort(-conf[members], kind="stable")[:k]]
        idx.append(np.sort(best))
        lab.append(np.full(best.size, c))
    if not idx:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(idx), np.concatenate(lab)


def _scores_from_generator(v, sp: Split, cfg: ZSLConfig, extra_x=None, extra_y=None) -> tuple[dict[str, float], Callable]:
    """T1/u/s/H of the classifiers trained on ``v``'s generated unseen features (+ labelled unseen + extra)."""
    gx, gy = synthesize(v, sp.unseen, synth_count(cfg, sp), cfg.seed)
    ex = [] if extra_x is None else [(extra_x, extra_y)]
    few = np.isin(sp.y_train, sp.unseen)  # the any-shot mode's real unseen examples
    zsl_x, zsl_y = zip((gx, gy), (sp.x_train[few], sp.y_train[few]), *ex)
    zsl = softmax_classifier(np.concatenate(zsl_x), np.concatenate(zsl_y), sp.unseen, cfg.seed)
    gzsl_x, gzsl_y = zip((sp.x_train, sp.y_train), (gx, gy), *ex)
    gzsl = softmax_classifier(np.concatenate(gzsl_x), np.concatenate(gzsl_y), sorted(sp.seen + sp.unseen), cfg.seed)
    res = zsl_scores(gzsl(sp.x_test_unseen), sp.y_test_unseen, gzsl(sp.x_test_seen), sp.y_test_seen, sp.unseen, sp.seen)
    res["T1"] = per_class_accuracy(restricted_argmax(zsl(sp.x_test_unseen), sp.unseen), sp.y_test_unseen, sp.unseen)
    return res, zsl


def run_generator(cfg: ZSLConfig, sp: Split, out: Path, on_event=None) -> dict[str, Any]:
    model_cfg = {"data_shape": (sp.feature_dim,), "n_classes": 10, "attributes": sp.attributes.round(6).tolist(),
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
        record["before_self_training"] = dict(res)
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
    return {**res, "eszsl_gamma": best[0], "eszsl_lambda": best[1], "validation_accuracy": best_acc}


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
    feats = load_features(cfg.dataset, cfg.fold, cfg.data_dir, log)
    sp = make_split(feats, cfg.setting, cfg.shots, cfg.seed)
    rec = run_eszsl(cfg, sp) if cfg.method == "eszsl" else run_generator(cfg, sp, out)
    rec = {**{k: float(rec[k]) for k in ("T1", "u", "s", "H")}, **rec, "config": cfg.to_dict(), "benchmark_version": VERSION,
           "seen": sp.seen, "unseen": sp.unseen, "n_labelled": int(len(sp.y_train)),
           "n_unlabelled": 0 if sp.x_unlabelled is None else int(len(sp.x_unlabelled)),
           "features": {k: feats.meta[k] for k in ("images_sha256", "recipe", "arch")},
           "seconds": round(time.perf_counter() - t0, 2), "versions": versions(), "created": now()}
    atomic_write_json(path, rec)
    if log:
        log(f"zsl {cfg.method} {cfg.setting} k={cfg.shots} {cfg.dataset} fold {cfg.fold} seed {cfg.seed}: "
            f"T1 {rec['T1']:.3f}  u {rec['u']:.3f}  s {rec['s']:.3f}  H {rec['H']:.3f}  ({rec['seconds']:.0f}s)")
    return rec


__all__ = ["ZSLConfig", "run", "METHODS", "GENERATORS", "SETTINGS", "SHOTS", "SELF_TRAINING", "pseudo_label", "softmax_classifier",
           "synth_count"]
