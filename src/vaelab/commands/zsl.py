"""vaelab zsl --dataset D --method M --setting S --shots K --fold F --seed S --out DIR | vaelab zsl --features res101.mat
--splits att_splits.mat --method M ... [--preset METHOD/DATASET] | vaelab zsl --study --out DIR; any of them with --select
[--select-grid AXIS=V1,V2]"""
from __future__ import annotations

import argparse

from ..config import parse_overrides
from ..errors import ConfigError
from ..zsl.presets import apply_preset
from . import stderr_log

ORDER = 45


def add_parser(sub) -> None:
    p = sub.add_parser("zsl", help="zero-shot learning on the MNIST / Fashion-MNIST ZSL benchmark",
                       description="Zero-shot learning: generate features of unseen classes from their attribute vectors "
                                   "(f-VAEGAN-D2, Zero-VAE-GAN, f-CLSWGAN) or embed features in attribute space "
                                   "(ESZSL), then score ZSL top-1 (T1) and GZSL u, s, H. One run writes OUT/zsl.json; "
                                   "--study runs the grid (resumable) and writes OUT/zsl-results.{json,md} and OUT/report/zsl.html (and a `vaelab compare` report in the same OUT shows the same section). The "
                                   "benchmark (attributes, folds, features): docs/zsl.md.")
    p.add_argument("--dataset", default="mnist-5k", help="mnist | fashion-mnist | mnist-5k (default mnist-5k)")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument("--features", default=None, metavar="FILE.mat",
                   help="a standard benchmark's features (Xian et al.'s res101.mat: features, labels); with --splits, "
                        "run on it instead of --dataset/--fold")
    p.add_argument("--splits", default=None, metavar="FILE.mat",
                   help="its proposed split (att_splits.mat: att, trainval_loc, test_seen_loc, test_unseen_loc, train_loc, val_loc)")
    p.add_argument("--method", default=None, help="f-vaegan-d2 | zero-vae-gan | f-clswgan | eszsl | ridge (default f-vaegan-d2, or the preset's)")
    p.add_argument("--preset", default=None, metavar="METHOD/DATASET",
                   help="a published recipe on --features/--splits files, e.g. f-vaegan-d2/cub (CUB, AWA2, SUN, FLO; "
                        "docs/zsl.md, Presets); explicit flags and --set values override it")
    p.add_argument("--setting", default="inductive", help="inductive | transductive (default inductive)")
    p.add_argument("--shots", type=int, default=0, help="any-shot: labelled examples per unseen class, 0 | 1 | 5 | 10 (inductive; default 0)")
    p.add_argument("--fold", type=int, default=0, help="seen/unseen split 0 | 1 | 2 (default 0)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--epochs", type=int, default=None, help="generator epochs (default 30 on mnist-5k and on --features files, 5 on mnist and fashion-mnist)")
    p.add_argument("--lr", type=float, default=None, help="generator learning rate (default 1e-3)")
    p.add_argument("--n-synth", type=int, default=None, help="generated features per unseen class (default: as many as the real labelled features of the average seen class)")
    p.add_argument("--self-training", default=None, help="Zero-VAE-GAN, transductive: none | generator | classifier | both (default both)")
    p.add_argument("--pseudo-fraction", type=float, default=None,
                   help="self-training: share of each class's assigned unlabelled features kept, most confident first (default 0.5)")
    p.add_argument("--refine-epochs", type=int, default=None, help="self-training: generator epochs on the pseudo-labelled set (default 5)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a generator config value, repeatable")
    p.add_argument("--select", action="store_true",
                   help="first choose epochs, lr, f-VAEGAN-D2's gamma, the synthetic count and Zero-VAE-GAN's pseudo-label "
                        "fraction on pseudo-unseen classes carved from the seen ones (OUT/select/, resumable; docs/zsl.md); "
                        "with --study, for every run")
    p.add_argument("--select-grid", action="append", default=[], metavar="AXIS=V1,V2",
                   help="--select: replace one axis of the grid (lr, epochs, gamma, n_synth_factor, pseudo_fraction), repeatable")
    p.add_argument("--extractor", default="supervised",
                   help="the benchmark's features: supervised (a CNN trained on the seen classes' labels, the default) | "
                        "contrastive (the same network trained on the seen classes' images without labels; docs/zsl.md)")
    p.add_argument("--out", default=None, help="output directory (default runs/zsl/...)")
    p.add_argument("--study", action="store_true", help="run the whole grid into --out")
    p.add_argument("--datasets", default="mnist,fashion-mnist", help="--study: comma list (default mnist,fashion-mnist)")
    p.add_argument("--methods", default="all", help="--study: comma list or all")
    p.add_argument("--settings", default="inductive,transductive", help="--study: comma list")
    p.add_argument("--folds", default="0,1,2", help="--study: comma list (default 0,1,2)")
    p.add_argument("--seeds", default="0,1,2", help="--study: comma list (default 0,1,2)")
    p.add_argument("--any-shots", default="1,5,10", help="--study: any-shot k values (default 1,5,10; 0 for none)")
    p.add_argument("--any-shot-methods", default="f-vaegan-d2", help="--study: methods run any-shot (default f-vaegan-d2)")
    p.add_argument("--retry-failed", action="store_true", help="--study: run again the runs that failed before (default: "
                   "keep their failure record; a failing run is recorded and the study goes on)")
    p.set_defaults(run=run)


def _list(text: str, opt: str, choices, conv=str) -> list:
    try:
        items = [conv(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--{opt}: {text!r} is not a comma list of {'integers' if conv is int else 'numbers'}") from None
    if choices is not None:
        bad = [t for t in items if t not in choices]
        if bad:
            raise ConfigError(f"--{opt}: {bad[0]!r} is not valid; choose from {', '.join(map(str, choices))}")
    if not items:
        raise ConfigError(f"--{opt}: empty list")
    return items


def _grid(items: list[str]) -> dict[str, list]:
    """--select-grid AXIS=V1,V2 ... → {axis: [values]} (epochs as integers); checked by ZSLConfig.validate."""
    out: dict[str, list] = {}
    for item in items:
        axis, eq, text = item.partition("=")
        axis = axis.strip()
        if not eq or not axis:
            raise ConfigError(f"--select-grid: {item!r} is not AXIS=V1,V2,...")
        if axis in out:
            raise ConfigError(f"--select-grid: {axis} given twice")
        out[axis] = _list(text, f"select-grid {axis}", None, int if axis == "epochs" else float)
    return out


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    from ..zsl.benchmark import DATASETS  # local: numpy; keeps `vaelab --help` at 0.1 s
    from ..zsl.features import SETTINGS, SHOTS  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..zsl.run import METHODS, ZSLConfig  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..zsl.run import run as run_one  # local: torch; keeps `vaelab --help` at 0.1 s

    base = ZSLConfig(data_dir=args.data_dir, model=parse_overrides(args.set), features=args.features, splits=args.splits,
                     select=args.select, select_grid=_grid(args.select_grid), extractor=args.extractor)
    for key in ("epochs", "lr", "n_synth", "self_training", "pseudo_fraction", "refine_epochs"):
        val = getattr(args, key)
        if val is not None:
            base = dataclasses.replace(base, **{key: val})
    if args.study:
        from ..zsl.study import StudyGrid, run_study  # local: torch; keeps `vaelab --help` at 0.1 s

        if args.preset is not None:
            raise ConfigError("--preset: presets are the published recipes for --features/--splits runs; --study runs "
                              "vaelab's MNIST benchmark with its own defaults")

        if base.on_mat:
            raise ConfigError("--study runs vaelab's MNIST / Fashion-MNIST benchmark; drop --features/--splits, "
                              "or run each method on the .mat files without --study")
        methods = list(METHODS) if args.methods.strip() == "all" else _list(args.methods, "methods", METHODS)
        if args.data_dir and len(_list(args.datasets, "datasets", DATASETS)) > 1:
            raise ConfigError("--data-dir holds one dataset's IDX files; for several --datasets set $VAELAB_DATA "
                              "(its mnist/ and fashion-mnist/ subdirectories) instead")
        g = StudyGrid(datasets=_list(args.datasets, "datasets", DATASETS), methods=methods,
                      settings=_list(args.settings, "settings", SETTINGS), folds=_list(args.folds, "folds", (0, 1, 2), int),
                      seeds=_list(args.seeds, "seeds", None, int), shots=_list(args.any_shots, "any-shots", SHOTS, int), base=base,
                      shot_methods=_list(args.any_shot_methods, "any-shot-methods", METHODS))
        out = args.out or ("runs/zsl-study-select" if base.select else "runs/zsl-study")
        from ..report import write_zsl_page as write_page  # local: torch; keeps `vaelab --help` at 0.1 s

        rows = run_study(g, out, stderr_log, command=" ".join(["vaelab", *sys.argv[1:]]) if sys.argv else None,
                         retry_failed=args.retry_failed)
        page = write_page(out)
        print(f"{out}/zsl-results.md\n{page}")
        failed = sum(r.get("n_failed", 0) for r in rows)
        if failed:
            print(f"vaelab zsl: {failed} run(s) failed (recorded in their run dirs, failed.json; see {out}/zsl-results.md; "
                  f"--retry-failed runs them again)", file=sys.stderr)
        return 1 if failed else 0
    cfg = dataclasses.replace(base, dataset=args.dataset, method=args.method or "f-vaegan-d2", setting=args.setting,
                              shots=args.shots, fold=args.fold, seed=args.seed)
    if args.preset is not None:
        explicit = [k for k in ("method", "epochs", "lr", "n_synth") if getattr(args, k) is not None]
        cfg = apply_preset(cfg, args.preset, explicit)
    cfg.validate()
    if cfg.on_mat:
        from pathlib import Path

        name = Path(cfg.features).resolve().parent.name or Path(cfg.features).stem
        out = args.out or f"runs/zsl/{name}-{cfg.method}-{cfg.setting}-s{cfg.seed}"
    else:
        out = args.out or f"runs/zsl/{cfg.dataset}-{cfg.method}-{cfg.setting}-k{cfg.shots}-f{cfg.fold}-s{cfg.seed}"
    rec = run_one(cfg, out, stderr_log)
    d = rec["diagnostics"]
    diag = "" if "skipped" in d else f"  gen→real s {d['gen_seen_to_real_seen']:.4f}  probe u {d['probe_unseen']:.2f}"
    chosen = rec.get("selection", {}).get("chosen")
    sel = "  selected " + " ".join(f"{k}={v:g}" for k, v in chosen.items()) if chosen else ""
    print(f"T1 {rec['T1']:.4f}  u {rec['u']:.4f}  s {rec['s']:.4f}  H {rec['H']:.4f}  calibrated u {rec['u_cal']:.4f}  "
          f"s {rec['s_cal']:.4f}  H {rec['H_cal']:.4f}  AUSUC {rec['AUSUC']:.4f}{diag}{sel}  ->  {out}/zsl.json")
    return 0
