"""vaelab sample RUN [--n 64] [--out grid.png]

For a sequence model (S3VAE, DSVAE) it writes, beside the run (or into --out, a directory), frame
strips (PNG, one row per sequence) and animated GIFs of: prior samples, reconstructions of test
sequences (original row, then its reconstruction), swaps (the content of one test sequence with the
motion of another: content row, motion row, swap row), and each test sequence's content with new
dynamics from the prior."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

ORDER = 20


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid")
    p.add_argument("run_dir", metavar="RUN", help="run directory")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default=None, help="PNG path (default RUN/samples-SEED.png); for sequence models a "
                   "directory (default RUN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nrow", type=int, default=None, help="images per row")
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional variants)")
    p.add_argument("--per-cluster", action="store_true", help="one row per cluster (clustering variants)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N: where the model runs (default cpu; "
                   "a seed draws the same pictures on the CPU every time, other devices draw other noise)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..images import save_grid  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..rundir import load, run_config  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..models.base import NotAvailable  # local: torch; keeps `vaelab --help` at 0.1 s

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    v = load(args.run_dir, args.device)
    dev = v.device
    if v.data_kind == "sequence":
        from ..data import load_dataset  # local: torch; keeps `vaelab --help` at 0.1 s
        from ..run_figures import sequence_pictures  # local: torch; keeps `vaelab --help` at 0.1 s

        train = run_config(args.run_dir)["train"]
        test = load_dataset(train["dataset"], "test", train.get("data_dir"))
        for path in sequence_pictures(v, test, min(args.n, 16), args.seed, args.out or args.run_dir):
            print(path)
        return 0
    g = torch.Generator(dev).manual_seed(args.seed)
    torch.manual_seed(args.seed)
    y, nrow = None, args.nrow
    try:
        if args.per_cluster:
            if not v.clusters:
                raise ConfigError(f"--per-cluster: {v.name} does not assign clusters")
            x = v.sample_per_cluster(args.n, generator=g)  # (K * n, C, H, W)
            nrow = nrow or args.n
        else:
            if args.label is not None:
                if not v.conditional:
                    raise ConfigError(f"--label: {v.name} is not a conditional variant")
                if not 0 <= args.label < v.config.n_classes:
                    raise ConfigError(f"--label must be in 0..{v.config.n_classes - 1}, got {args.label}")
                y = torch.full((args.n,), args.label, dtype=torch.int64, device=dev)
            elif v.conditional:
                y = torch.arange(args.n, device=dev) % v.config.n_classes
            x = v.sample(args.n, y=y, generator=g)
    except NotAvailable as e:
        raise ConfigError(str(e)) from None
    out = Path(args.out) if args.out else Path(args.run_dir) / f"samples-{args.seed}.png"
    save_grid(x, out, nrow=nrow)
    print(out)
    return 0

