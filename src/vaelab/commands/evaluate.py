"""vaelab evaluate RUN [--n-samples 10000] [--iwae-k 1000] [--iwae-n 1000] [--seed 0] [--disentanglement standard|quick|none]
[--figures-only | --no-figures]"""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..eval_schema import check_disentanglement_mode, format_table
from . import stderr_log

ORDER = 30


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="compute every metric of a trained run into RUN/eval.json, its figures into RUN/figures/",
                       description="Evaluate a run: classifier accuracy on reconstructions of the whole test set "
                                   "(the seed's Table 2 metric), FID / IS / precision-recall of prior samples on the "
                                   "reference classifier's features, test -ELBO and the IWAE bound, clustering and "
                                   "conditional accuracy where the variant has them, and training cost. Trains the "
                                   "dataset's reference classifier on first use (see `vaelab classifier`). Also draws "
                                   "the figures that need the model (sample grid, reconstructions, latent traversal and "
                                   "map; strips and GIFs for sequence models) into RUN/figures/ with an index.json, "
                                   "which the `vaelab compare` and `vaelab sequences` reports show.")
    p.add_argument("run_dir", metavar="RUN", help="run directory")
    p.add_argument("--n-samples", type=int, default=10000, metavar="N", help="prior samples for FID/IS/precision/recall (default 10000)")
    p.add_argument("--iwae-k", type=int, default=1000, metavar="K", help="importance samples per image for the IWAE bound (default 1000; 0 skips)")
    p.add_argument("--iwae-n", type=int, default=1000, metavar="N",
                   help="test images used for the IWAE bound (default 1000: with K=1000 that is 1M decoder passes, "
                        "the slowest part of the evaluation, and all 10,000 test images take ten times as long; "
                        "timings in docs/results/evaluation.md; 0 skips). The ELBO always uses the whole test set")
    p.add_argument("--disentanglement", default="standard", metavar="MODE",
                   help="a run on dsprites (or dsprites:FILE): the sample counts of the five disentanglement metrics "
                        "(BetaVAE, FactorVAE, MIG, DCI, SAP) on the encoder's posterior mean. standard (default: "
                        "disentanglement_lib's counts for MIG and SAP, a tenth of its BetaVAE/FactorVAE points, DCI on "
                        "5,000/2,500 draws with 10 boosting stages), quick (a few seconds' counts: a smoke test, not for "
                        "reporting) or none (skip them)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for samples and importance samples (default 0)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="directory holding the dataset's IDX files (default: the run's)")
    p.add_argument("--max-items", type=int, default=512, metavar="M",
                   help="images x importance samples per decoder call; bounds peak memory (default 512, ~0.1 GB "
                        "with the paper backbone)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N: where the model runs (default cpu, "
                   "bitwise reproducible; on CUDA the model's noise comes from the GPU's generator, so figures differ "
                   "slightly); the reference classifier and the pictures in RUN/figures/ are always made on the CPU")
    p.add_argument("--no-write", action="store_true", help="print the table without writing RUN/eval.json or figures")
    p.add_argument("--map-points", type=int, default=2000, metavar="N",
                   help="test images in the latent map, a fixed subsample (default 2000)")
    figs = p.add_mutually_exclusive_group()
    figs.add_argument("--figures-only", action="store_true",
                      help="only draw RUN/figures/, leaving eval.json as it is (e.g. for a run evaluated before "
                           "figures were saved with the evaluation)")
    figs.add_argument("--no-figures", action="store_true", help="the metrics only, no RUN/figures/")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write the numbers to RUN/tb/ (automatic when the run was trained with --tensorboard)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..rundir import evaluate_run, make_figures  # local: torch; keeps `vaelab --help` at 0.1 s

    check_disentanglement_mode(args.disentanglement)
    if args.max_items < 1:
        raise ConfigError(f"--max-items must be >= 1, got {args.max_items}")
    if args.map_points < 10:
        raise ConfigError(f"--map-points must be >= 10, got {args.map_points}")
    if args.figures_only:
        if args.no_write:
            raise ConfigError("--figures-only writes the figures: it cannot go with --no-write")
        index = make_figures(args.run_dir, map_points=args.map_points, data_dir=args.data_dir,
                             log=None if args.quiet else stderr_log)
        for name, f in index["figures"].items():
            print(f"  {name:<16} " + (f"{args.run_dir}/figures/{f['file']}" if "file" in f else f"n/a: {f['reason']}"))
        return 0
    for opt, val, lo in (("--n-samples", args.n_samples, 10), ("--iwae-k", args.iwae_k, 0), ("--iwae-n", args.iwae_n, 0),
                         ("--seed", args.seed, 0)):
        if val < lo:
            raise ConfigError(f"{opt} must be >= {lo}, got {val}")
    res = evaluate_run(args.run_dir, n_samples=args.n_samples, iwae_k=args.iwae_k, iwae_n=args.iwae_n, seed=args.seed,
                       data_dir=args.data_dir, write=not args.no_write, max_items=args.max_items,
                       log=None if args.quiet else stderr_log, tensorboard=args.tensorboard, device=args.device,
                       figures=not args.no_figures, map_points=args.map_points, disentanglement=args.disentanglement)
    print(format_table(res))
    return 0
