"""One zero-shot run (``vaelab zsl``): features of a fold, a method, the final classifiers and the
scores T1, u, s, H, written to ``OUT/zsl.json``.

Methods: the feature generators ``f-vaegan-d2``, ``zero-vae-gan`` and ``f-clswgan`` (registered
variants, trained by the one trainer in ``OUT/generator/``, resumable), the closed-form
baseline ``eszsl`` and the ``ridge`` lower bound (:mod:`vaelab.zsl.ridge`). Every run also reports
calibrated stacking (γ from a second, seen-classes-only run in ``OUT/calibration/``,
:mod:`vaelab.zsl.calibrate`), AUSUC and diagnostics (:mod:`vaelab.zsl.diagnostics`); ``select``
first chooses epochs, lr, γ, the synthetic count and the pseudo-label fraction on the same
seen-classes-only split (:mod:`vaelab.zsl.select`, in ``OUT/select/``; γ then comes from the chosen
candidate's validation run); ``features``/``splits`` run on ``.mat`` files
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

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..io import atomic_write_json, read_json
from ..metrics.zsl import ausuc, best_gamma, calibrated_scores
from ..provenance import environment, now, versions
from .benchmark import VERSION
from .calibrate import pseudo_unseen_classes, validation_split
from .classify import pseudo_label, softmax_classifier
from .config import EPOCHS, GENERATORS, MAT_EPOCHS, METHODS, SELF_TRAINING, ZSLConfig
from .diagnostics import diagnose, eszsl_diagnostics
from .features import SETTINGS, SHOTS, Split, load_features, make_split
from .matfiles import load_mat_benchmark, mat_split
from .methods import ESZSL_GRID, curve_args, run_eszsl, run_generator, run_method, run_ridge, synth_count
from .presets import check_files
from .select import select, skipped


def calibrate(cfg: ZSLConfig, sp: Split, rec: dict[str, Any], out: Path, vsp: Split,
              selected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Calibrated stacking (γ from a seen-classes-only validation run on ``vsp``, :mod:`vaelab.zsl.calibrate`,
    or the chosen candidate's when ``selected``) and AUSUC."""
    cal_rec: dict[str, Any] = {"pseudo_unseen": vsp.unseen, "pseudo_seen": vsp.seen, "n_fit": int(len(vsp.y_train))}
    if selected is not None and "validation" in selected:
        gamma = selected["validation"]["gamma_cal"]
        cal_rec.update(H_val=selected["validation"]["H_cal"], source="select")
    else:
        vrec = run_method(cfg, vsp, out / "calibration")
        gamma = best_gamma(*curve_args(vrec["_scores"], vsp))
        cal_rec["H_val"] = calibrated_scores(*curve_args(vrec["_scores"], vsp), gamma)["H"]
    cal = calibrated_scores(*curve_args(rec["_scores"], sp), gamma)
    return {"gamma": gamma, "u_cal": cal["u"], "s_cal": cal["s"], "H_cal": cal["H"],
            "AUSUC": ausuc(*curve_args(rec["_scores"], sp)), "calibration": cal_rec}


def saved(cfg: ZSLConfig, out: str | Path) -> dict[str, Any] | None:
    """The zsl.json record of ``cfg`` run into ``out`` before; None when there is none (or one of another config)."""
    path = Path(out) / "zsl.json"
    if not path.is_file():
        return None
    old = read_json(path)
    return old if old.get("config") == json.loads(json.dumps(cfg.to_dict())) else None


def run(cfg: ZSLConfig, out: str | Path, log: Callable[[str], None] | None = None,
        shared_select: Path | None = None) -> dict[str, Any]:
    """Run (or reuse) one ZSL experiment into ``out``; returns the zsl.json record. ``shared_select``:
    another run's ``select/`` this run's selection may reuse (:mod:`vaelab.zsl.select`, shared selections)."""
    cfg.validate()
    out = Path(out)
    path = out / "zsl.json"
    if path.is_file():
        old = saved(cfg, out)
        if old is not None:
            return old
        raise ConfigError(f"{path}: holds a run with another config; pick another --out")
    t0 = time.perf_counter()
    if cfg.on_mat:
        bench = load_mat_benchmark(cfg.features, cfg.splits)
        if cfg.preset is not None:
            check_files(cfg.preset, len(bench.attributes), cfg.features)
        sp, val_classes = mat_split(bench, cfg.setting, cfg.seed), bench.val_classes
        source: dict[str, Any] = {"features": {"features_file": bench.features_path, "splits_file": bench.splits_path,
                                               "sha256": bench.sha256, "n_classes": len(bench.attributes)}}
    else:
        feats = load_features(cfg.dataset, cfg.fold, cfg.data_dir, log, cfg.extractor)
        sp, val_classes = make_split(feats, cfg.setting, cfg.shots, cfg.seed), None
        source = {"benchmark_version": VERSION,
                  "features": {k: feats.meta[k] for k in ("images_sha256", "recipe", "arch", "extractor") if k in feats.meta}}
    vsp = validation_split(sp, pseudo_unseen_classes(sp.seen, val_classes), cfg.setting, cfg.seed)
    final, selected = cfg, None
    if cfg.select:
        final, selected = select(cfg, vsp, out, sp, shared_select) if cfg.method != "eszsl" else (cfg, skipped(cfg))
    rec = run_method(final, sp, out)
    rec.update(calibrate(final, sp, rec, out, vsp, selected))
    su, gen = rec.pop("_scores")[0], rec.pop("_generator", None)
    rec["diagnostics"] = eszsl_diagnostics(su, sp, rec["gamma"]) if gen is None else \
        diagnose(gen, sp, su, rec["gamma"], synth_count(final, sp), cfg.seed)
    if selected is not None:
        rec["selection"] = selected
    rec = {**{k: float(rec[k]) for k in ("T1", "u", "s", "H")}, **rec, "config": cfg.to_dict(), **source,
           "seen": sp.seen, "unseen": sp.unseen, "n_labelled": int(len(sp.y_train)),
           "n_unlabelled": 0 if sp.x_unlabelled is None else int(len(sp.x_unlabelled)),
           "seconds": round(time.perf_counter() - t0, 2), "versions": versions(),
           "machine": environment()["machine"]["summary"], "created": now()}
    atomic_write_json(path, rec)
    if log:
        where = Path(cfg.features).name if cfg.on_mat else f"{cfg.dataset} fold {cfg.fold}"
        log(f"zsl {cfg.method} {cfg.setting} k={cfg.shots} {where} seed {cfg.seed}: T1 {rec['T1']:.3f}  u {rec['u']:.3f}  "
            f"s {rec['s']:.3f}  H {rec['H']:.3f}  calibrated H {rec['H_cal']:.3f}  AUSUC {rec['AUSUC']:.3f}  ({rec['seconds']:.0f}s)")
    return rec


__all__ = ["ZSLConfig", "run", "METHODS", "GENERATORS", "SETTINGS", "SHOTS", "SELF_TRAINING", "pseudo_label", "softmax_classifier",
           "synth_count", "run_generator", "run_ridge", "run_eszsl", "run_method", "calibrate", "EPOCHS", "MAT_EPOCHS", "ESZSL_GRID"]
