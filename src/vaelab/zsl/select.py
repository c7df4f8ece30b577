"""Model selection without unseen data (``vaelab zsl --select``; docs/zsl.md, "Model selection").

Every candidate is trained and scored on calibrated stacking's validation split
(:func:`vaelab.zsl.calibrate.validation_split`: pseudo-unseen classes carved from the seen ones,
``val_loc``'s classes on a ``.mat`` split), never on an unseen class's label or feature. Its score is
the validation H after calibrated stacking at the γ best for that candidate (``H_cal``, at ``gamma_cal``; ties: the
higher validation T1, then the earlier candidate). Two stages keep the grid small:

1. training: every (lr, f-VAEGAN-D2's γ) pair, each at every epoch count of ``epochs``, ascending.
   One generator per pair is trained to the smallest count, scored, then resumed to the next
   (a resumed run is bitwise the run trained that long from the start), so an epoch count costs no
   retraining; the synthetic count and the pseudo-label fraction stay at the run's values;
2. classifier: the stage-1 winner's generator, every (synthetic count factor, pseudo-label
   fraction); the count is factor × the run's count (``--n-synth`` or the class-balanced default)
   of the split at hand, so the final run gets factor × its own count.

The default grid (``grid``): lr ∈ LRS, epochs ∈ EPOCH_FACTORS × the run's epochs, γ ∈ GAMMAS
(f-VAEGAN-D2), factor ∈ N_SYNTH_FACTORS (generators and ridge), pseudo-label fraction ∈
PSEUDO_FRACTIONS (Zero-VAE-GAN with self-training); ``select_grid`` replaces an axis. The grid's
values replace ``lr``, ``epochs``, the ``gamma`` of ``--set``, ``n_synth`` and ``pseudo_fraction``.
ESZSL is not searched (it chooses its own (γ, λ) on pseudo-unseen classes). Layout, resumable:
``OUT/select/<lr, γ>/generator`` (the pair's generator), ``OUT/select/<lr, γ>/<candidate>.json`` (each
candidate's validation record, written before the generator is resumed further), and
``OUT/select/<lr, γ>-e<epochs>/`` (the stage-1 winner retrained to its epoch count for stage 2 when
its pair's generator went further). A candidate whose training diverges is recorded and never chosen.

Shared selections: the validation split holds seen classes only, so an any-shot run (k labelled images
per unseen class) selects exactly as the zero-shot run of the same config does. ``select(..., shared=DIR)``
uses ``DIR`` (the zero-shot run's ``select/``) instead of its own when ``DIR/key.json`` names the same
config (all but ``shots``) and the same validation split (:func:`selection_key`), or when ``DIR`` has no
key yet and its run's zsl.json names the same config; candidates recorded there are reused, not retrained.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, TrainingDiverged
from ..io import atomic_write_json, read_json
from ..metrics.zsl import ausuc, best_gamma, calibrated_scores
from ..training.checkpoint import CHECKPOINT, read_checkpoint
from .config import GENERATORS, ZSLConfig
from .features import Split
from .methods import curve_args, run_generator, run_ridge, synth_count

LRS = (1e-3, 1e-4)
EPOCH_FACTORS = (0.5, 1.0, 2.0)
GAMMAS = (1.0, 10.0, 100.0)
N_SYNTH_FACTORS = (0.5, 1.0, 2.0)
PSEUDO_FRACTIONS = (0.25, 0.5, 0.75)
METRIC = "H_cal"


def grid(cfg: ZSLConfig) -> dict[str, list]:
    """The axes searched for ``cfg``'s method (module docstring); empty for ESZSL."""
    axes: dict[str, list] = {}
    if cfg.method in GENERATORS:
        axes["lr"] = list(LRS)
        if cfg.method == "f-vaegan-d2":
            axes["gamma"] = list(GAMMAS)
        axes["epochs"] = sorted({max(1, int(math.floor(f * cfg.n_epochs + 0.5))) for f in EPOCH_FACTORS})
    if cfg.method != "eszsl":
        axes["n_synth_factor"] = list(N_SYNTH_FACTORS)
    if cfg.strategy != "none":
        axes["pseudo_fraction"] = list(PSEUDO_FRACTIONS)
    for axis, values in cfg.select_grid.items():
        if axis in axes:  # an axis the method does not have is ignored
            axes[axis] = sorted(values) if axis == "epochs" else list(values)
    return axes


def _name(values: dict[str, Any], keys) -> str:
    short = {"lr": "lr", "gamma": "g", "epochs": "e", "n_synth_factor": "n", "pseudo_fraction": "pf"}
    return "-".join(f"{short[k]}{values[k]:g}" for k in keys if k in values) or "base"


def candidate_config(cfg: ZSLConfig, cand: dict[str, Any], sp: Split) -> ZSLConfig:
    """``cfg`` with a candidate's values, its synthetic count taken on ``sp``."""
    c = dataclasses.replace(cfg, select=False, select_grid={})
    if "lr" in cand:
        c = dataclasses.replace(c, lr=float(cand["lr"]))
    if "epochs" in cand:
        c = dataclasses.replace(c, epochs=int(cand["epochs"]))
    if "gamma" in cand:
        c = dataclasses.replace(c, model={**c.model, "gamma": float(cand["gamma"])})
    if "pseudo_fraction" in cand:
        c = dataclasses.replace(c, pseudo_fraction=float(cand["pseudo_fraction"]))
    if "n_synth_factor" in cand:
        c = dataclasses.replace(c, n_synth=max(1, int(round(cand["n_synth_factor"] * synth_count(cfg, sp)))))
    return c


def _trained_epochs(gen_dir: Path) -> int:
    if not (gen_dir / CHECKPOINT).is_file():
        return 0
    return int(read_checkpoint(gen_dir)[1].get("completed", {}).get("train", 0))


def evaluate(cfg: ZSLConfig, vsp: Split, cand: dict[str, Any], pair_dir: Path, stage: int) -> dict[str, Any]:
    """A candidate's validation record (cached in ``pair_dir/<candidate>.json``)."""
    name = _name(cand, ("epochs", "n_synth_factor", "pseudo_fraction"))
    path = pair_dir / f"{name}.json"
    if path.is_file():
        return read_json(path)
    c = candidate_config(cfg, cand, vsp)
    rec: dict[str, Any] = {"stage": stage, **cand, "n_synth": c.n_synth, "dir": pair_dir.name}
    try:
        if cfg.method == "ridge":
            r = run_ridge(c, vsp)
        else:
            if _trained_epochs(pair_dir / "generator") > c.n_epochs:
                raise ConfigError(f"{pair_dir / 'generator'}: trained past {c.n_epochs} epochs before candidate {name} "
                                  f"was recorded; delete {pair_dir} and rerun")
            r = run_generator(c, vsp, pair_dir, gen_dir=pair_dir / "generator", refined_dir=pair_dir / f"refined-{name}")
        args = curve_args(r["_scores"], vsp)
        gamma = best_gamma(*args)
        cal = calibrated_scores(*args, gamma)
        rec.update({k: float(r[k]) for k in ("T1", "u", "s", "H")})
        rec.update(gamma_cal=gamma, u_cal=cal["u"], s_cal=cal["s"], H_cal=cal["H"], AUSUC=ausuc(*args))
    except TrainingDiverged as e:
        rec.update(diverged=str(e).splitlines()[0], T1=None, H_cal=None)
    atomic_write_json(path, rec)
    return rec


def _best(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get(METRIC) is not None]
    if not ok:
        raise ConfigError(f"--select: every candidate's training diverged ({records[0].get('diverged', '')})")
    best = ok[0]
    for r in ok[1:]:  # strictly better only: ties keep the earlier candidate
        tie = abs(r[METRIC] - best[METRIC]) <= 1e-12
        if r[METRIC] > best[METRIC] + 1e-12 or (tie and r["T1"] > best["T1"] + 1e-12):
            best = r
    return best


def split_digest(sp: Split) -> str:
    """sha256 of a split's classes and arrays (shape, dtype and bytes of each)."""
    h = hashlib.sha256(repr((sp.seen, sp.unseen)).encode())
    for a in (sp.attributes, sp.x_train, sp.y_train, sp.x_unlabelled, sp.x_test_seen, sp.y_test_seen, sp.x_test_unseen,
              sp.y_test_unseen):
        h.update(b"none" if a is None else repr((a.shape, str(a.dtype))).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _but_shots(config: dict[str, Any]) -> dict[str, Any]:
    """A config as zsl.json stores it (JSON values), without ``shots``."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k != "shots"}))


def selection_key(cfg: ZSLConfig, vsp: Split) -> dict[str, Any]:
    """What decides a selection's outcome: the config but its ``shots``, and the validation split."""
    return {"config": _but_shots(cfg.to_dict()), "validation_split": split_digest(vsp)}


def _root(cfg: ZSLConfig, vsp: Split, own: Path, shared: Path | None) -> Path:
    """The directory this selection reads and writes: ``shared`` when it selects the same (module docstring)."""
    key = selection_key(cfg, vsp)
    root = own
    if shared is not None and shared != own:
        if (shared / "key.json").is_file():
            root = shared if read_json(shared / "key.json") == key else own
        elif (shared.parent / "zsl.json").is_file():
            root = shared if _but_shots(read_json(shared.parent / "zsl.json").get("config", {})) == key["config"] else own
    if not (root / "key.json").is_file():
        atomic_write_json(root / "key.json", key)
    return root


def select(cfg: ZSLConfig, vsp: Split, out: Path, sp: Split, shared: Path | None = None) -> tuple[ZSLConfig, dict[str, Any]]:
    """Run the selection on the validation split ``vsp`` into ``out/select`` (or ``shared``, when it
    selects the same: module docstring); returns the final run's config (the chosen values, its
    synthetic count taken on the full split ``sp``) and the record."""
    axes = grid(cfg)
    root = _root(cfg, vsp, out / "select", shared)
    base = {"pseudo_fraction": cfg.pseudo_fraction} if "pseudo_fraction" in axes else {}
    if "n_synth_factor" in axes:
        base["n_synth_factor"] = 1.0
    records: list[dict[str, Any]] = []
    pair_keys = [k for k in ("lr", "gamma") if k in axes]
    winner: dict[str, Any] = {}
    if "epochs" in axes:  # stage 1: the training axes
        stage1 = []
        for pair in itertools.product(*(axes[k] for k in pair_keys)):
            values = dict(zip(pair_keys, pair))
            for e in axes["epochs"]:
                stage1.append(evaluate(cfg, vsp, {**values, "epochs": e, **base}, root / _name(values, pair_keys), 1))
        records += stage1
        b = _best(stage1)
        winner = {k: b[k] for k in (*pair_keys, "epochs")}
    pair_dir = root / _name(winner, pair_keys)
    if winner and winner["epochs"] != max(axes["epochs"]):
        pair_dir = root / f"{_name(winner, pair_keys)}-e{winner['epochs']}"
    classifier_keys = [k for k in ("n_synth_factor", "pseudo_fraction") if k in axes]
    for vals in itertools.product(*(axes[k] for k in classifier_keys)):  # stage 2: the classifier axes
        cand = {**winner, **base, **dict(zip(classifier_keys, vals))}
        if not any(all(r.get(k) == v for k, v in cand.items()) for r in records):  # not scored in stage 1
            records.append(evaluate(cfg, vsp, cand, pair_dir, 2))
    chosen_rec = _best(records)
    chosen = {k: chosen_rec[k] for k in axes}
    final = candidate_config(cfg, chosen, sp)
    record = {"metric": METRIC, **({"shared": str(root)} if root != out / "select" else {}), "grid": axes, "pseudo_unseen": vsp.unseen, "pseudo_seen": vsp.seen,
              "n_fit": int(len(vsp.y_train)), "candidates": records, "chosen": chosen,
              "validation": {k: chosen_rec[k] for k in ("T1", "u", "s", "H", "gamma_cal", "u_cal", "s_cal", "H_cal", "AUSUC")},
              "final": {"lr": final.lr, "epochs": final.n_epochs, "n_synth": synth_count(final, sp),
                        "pseudo_fraction": final.pseudo_fraction, "model": final.model}}
    return final, record


def skipped(cfg: ZSLConfig) -> dict[str, Any]:
    return {"skipped": "ESZSL chooses its (γ, λ) on pseudo-unseen seen classes itself (run_eszsl); nothing else to select"}
