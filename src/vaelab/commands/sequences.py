"""vaelab sequences [--dataset moving-mnist] [--seeds 0,1,2] [--epochs 30] [--backbone dcgan-bn32] [--out DIR]"""
from __future__ import annotations

import argparse

from ..config import check_choice, check_int
from ..errors import ConfigError
from ..study.sequences import BACKBONE, EPOCHS, PRECISION, ROWS, SequenceStudy, run_study
from .compare import parse_seeds

ORDER = 32


def add_parser(sub) -> None:
    p = sub.add_parser("sequences", help="the sequence study: S3VAE, its ablations and DSVAE on Moving MNIST",
                       description="Trains S3VAE, S3VAE with each of its three regularisers removed, and DSVAE on a "
                                   "Moving-MNIST dataset for every seed, scores each with the dataset's judge (content "
                                   "and motion accuracy, IS, H(y|x), H(y)), and writes OUT/sequence-results.{json,md} and "
                                   "OUT/report/sequences.html with strips and GIFs. Resumable: run it again to finish.")
    p.add_argument("--dataset", default="moving-mnist", help="moving-mnist | moving-mnist-5k (default moving-mnist)")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs per run (default {EPOCHS})")
    p.add_argument("--backbone", default=BACKBONE, help=f"frame networks of every row (default {BACKBONE}; dcgan-bn: the "
                                                        "papers' 64→512, about 3× the cost; dcgan: the small 16→64)")
    p.add_argument("--precision", default=PRECISION, help=f"fp32 | bf16 (default {PRECISION})")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--rows", default=None, help="comma list of rows (default all: s3vae, s3vae-no-scc, s3vae-no-dfp, "
                                                "s3vae-no-mi, dsvae, dsvae-full)")
    p.add_argument("--n-samples", type=int, default=1000, help="prior samples for the FID-style metrics (default 1000)")
    p.add_argument("--iwae-k", type=int, default=50, help="importance samples of the IWAE bound (default 50)")
    p.add_argument("--iwae-n", type=int, default=200, help="test sequences for the IWAE bound (default 200)")
    p.add_argument("--retry-failed", action="store_true", help="train again the runs that failed before")
    p.add_argument("--out", default=None, help="output directory (default runs/sequences-DATASET)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from ..nn.backbones import BACKBONES  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..data import SEQUENCE_DATASETS  # local: torch; keeps `vaelab --help` at 0.1 s

    if args.dataset not in SEQUENCE_DATASETS:
        raise ConfigError(f"--dataset: {args.dataset!r} is not a sequence dataset; choose one of {', '.join(SEQUENCE_DATASETS)}")
    for name, val, lo in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 2), ("--n-samples", args.n_samples, 10),
                          ("--iwae-k", args.iwae_k, 0), ("--iwae-n", args.iwae_n, 0)):
        check_int(val, name, lo)
    check_choice(args.backbone, "--backbone", BACKBONES)
    check_choice(args.precision, "--precision", ("fp32", "bf16"))
    if not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    rows = tuple(r.strip() for r in args.rows.split(",") if r.strip()) if args.rows else tuple(r[0] for r in ROWS)
    st = SequenceStudy(out=Path(args.out or f"runs/sequences-{args.dataset}"), dataset=args.dataset,
                       seeds=parse_seeds(args.seeds), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, rows=rows,
                       backbone=args.backbone, precision=args.precision,
                       n_samples=args.n_samples, iwae_k=args.iwae_k, iwae_n=args.iwae_n, retry_failed=args.retry_failed,
                       command="vaelab " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    from ..report import write_sequence_page  # local: torch; keeps `vaelab --help` at 0.1 s

    res = run_study(st, finish=lambda out, results, say: write_sequence_page(out, results))  # the report: the page
    failed = sum(r["n_failed"] for r in res["rows"])
    print(Path(st.out) / "sequence-results.md")
    if failed:
        print(f"vaelab sequences: {failed} run(s) failed (recorded in their run dirs)", file=sys.stderr)
        return 1
    return 0
