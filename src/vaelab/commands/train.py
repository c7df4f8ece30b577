"""vaelab train VARIANT [...] | vaelab train --resume RUN_DIR"""
from __future__ import annotations

import argparse

from ..config import parse_overrides
from ..configfile import train_config_from_file
from ..errors import ConfigError
from ..io import read_json, read_metrics
from ..registry import get, make_config
from . import stderr_log

ORDER = 10


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a variant into a run directory",
                       description="Train a variant. Model settings: --backbone, --latent-dim, and --set key=value "
                                   "for any config key (see `vaelab list`).")
    p.add_argument("variant", nargs="?", help="variant name (see `vaelab list`)")
    p.add_argument("--resume", metavar="RUN_DIR", help="resume an interrupted run from its last checkpoint")
    p.add_argument("--config", metavar="FILE",
                   help="a run config (JSON or YAML) with the keys of a run's config.json: variant, model, train; "
                        "flags given here override it (RUN/config.json re-creates that run)")
    p.add_argument("--dataset", default=None,
                   help="mnist | fashion-mnist | mnist-5k | dsprites (procedural; dsprites:FILE: the original .npz) | "
                        "folder:DIR (class sub-folders, or flat) | npz:FILE[,TEST_FILE] (default mnist-5k)")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="folder:/npz: datasets: resize every image to N×N (needed when their sizes differ)")
    p.add_argument("--backbone", default=None, help="paper | small | mlp | dec | svae | iwae (default paper)")
    p.add_argument("--latent-dim", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="epochs of the main phase (default 10)")
    p.add_argument("--batch-size", type=int, default=None, help="default 100")
    p.add_argument("--train-size", type=int, default=None, metavar="N", help="use only the first N training images")
    p.add_argument("--lr", type=float, default=None, help="default 1e-3")
    p.add_argument("--optimizer", default=None, help="adam | rmsprop (default adam)")
    p.add_argument("--adam-eps", type=float, default=None, metavar="EPS", help="Adam's epsilon (default 1e-8, torch's)")
    p.add_argument("--lr-schedule", default=None,
                   help="constant | iwae (default constant). iwae: the IWAE paper's decay, 3^i epochs at lr·10^(-i/7) "
                        "for i = 0..7; --epochs 3280 is the whole schedule, later epochs keep the last rate")
    p.add_argument("--binarize", default=None, help="none | static | dynamic (default none)")
    p.add_argument("--precision", default=None, help="fp32 | bf16 (default fp32)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N: where the model and the dataset live "
                   "(default auto: CUDA when available); with --resume, moves the run there")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel training in N processes on this machine (gloo on the CPU, NCCL with one GPU each "
                        "on CUDA), started through torch.distributed.run; the same as "
                        "`torchrun --nproc_per_node N -m vaelab train ...`. --batch-size stays the global batch")
    p.add_argument("--no-fused", dest="fused", action="store_false", default=None,
                   help="plain (foreach) Adam instead of the fused kernel")
    p.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format for conv nets")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the networks (needs a C compiler; falls back to eager mode)")
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="leave glibc malloc's thresholds alone (same as VAELAB_MALLOC_TUNING=0)")
    p.add_argument("--no-flush-denormal", action="store_true",
                   help="keep subnormal floats (same as VAELAB_FLUSH_DENORMAL=0); flushing them is faster")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="test-set loss every N epochs (default 1; 0: never)")
    p.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                   help="also checkpoint inside epochs this often (default: epoch end and Ctrl-C only)")
    p.add_argument("--out", default=None, help="run directory (default runs/VARIANT-DATASET-sSEED)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model config value, repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log losses, learning rates, test metrics, costs and grids to RUN/tb/ "
                        "(view: tensorboard --logdir RUN; needs the tensorboard package)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os

    from .. import parallel  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..rundir import train  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..training.config import TrainConfig  # local: torch; keeps `vaelab --help` at 0.1 s

    if args.no_malloc_tuning:
        os.environ["VAELAB_MALLOC_TUNING"] = "0"
    if args.no_flush_denormal:
        os.environ["VAELAB_FLUSH_DENORMAL"] = "0"
    if args.nproc is not None and not parallel.launched():
        return _launch(args)
    main = parallel.is_main()  # of several processes, only rank 0 reports
    progress = _Progress(quiet=args.no_progress or not main)
    if args.resume:
        if args.config:
            raise ConfigError("give either --config FILE or --resume RUN_DIR, not both (a resumed run keeps its config.json)")
        if args.variant:
            raise ConfigError("give either VARIANT or --resume RUN_DIR, not both")
        done = _finished(args.resume, args.epochs)
        if done:
            if main:
                stderr_log(done)
                print(args.resume)
            return 0
        run_dir = train(None, resume=True, run_dir=args.resume, extra_epochs=args.epochs, on_event=progress,
                        tensorboard=args.tensorboard, device=args.device)
        if main:
            stderr_log(summary(run_dir, progress.seconds))
            print(run_dir)
        return 0
    model, file_train = {}, {}
    if args.config:
        file_variant, model, file_train = train_config_from_file(args.config)
        args.variant = args.variant or file_variant
    if not args.variant:
        raise ConfigError("VARIANT is required (or --resume RUN_DIR, or --config FILE naming one); see `vaelab list`")
    if args.config:
        try:
            make_config(args.variant, **model)  # (train_config_from_file made data_shape a tuple)
        except ConfigError as e:
            raise ConfigError(f"{args.config}: model: {e}") from None
    tc = TrainConfig(**file_train)
    for key, val in (("dataset", args.dataset), ("data_dir", args.data_dir), ("image_size", args.image_size), ("epochs", args.epochs),
                     ("batch_size", args.batch_size), ("train_size", args.train_size), ("lr", args.lr), ("optimizer", args.optimizer),
                     ("adam_eps", args.adam_eps), ("lr_schedule", args.lr_schedule), ("eval_every", args.eval_every),
                     ("binarize", args.binarize), ("precision", args.precision), ("seed", args.seed),
                     ("checkpoint_every_s", args.checkpoint_every), ("fused", args.fused),
                     ("channels_last", args.channels_last), ("compile", args.compile), ("device", args.device)):
        if val is not None:
            setattr(tc, key, val)
    tc.progress = not args.no_progress and main
    model.update(parse_overrides(args.set))
    if args.backbone is not None:
        model["backbone"] = args.backbone
    if args.latent_dim is not None:
        model["latent_dim"] = args.latent_dim
    run_dir = train(args.variant, model, tc, args.out, on_event=progress, tensorboard=args.tensorboard)
    if main:
        stderr_log(summary(run_dir, progress.seconds))
        print(run_dir)
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``--nproc N``: the same command in N processes through ``torch.distributed.run`` (torchrun).
    What can be checked here is checked first, so bad input stays a one-line error (exit 2)."""
    import subprocess
    import sys

    from .. import parallel  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..rundir import run_config  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..training.config import resolve_device  # local: torch; keeps `vaelab --help` at 0.1 s

    n = args.nproc
    if n < 1:
        raise ConfigError(f"--nproc: {n} is not valid; give a number of processes ≥ 1")
    variant = run_config(args.resume)["variant"] if args.resume else args.variant
    if variant is not None and n > 1:  # (an unknown variant is a one-line error here too)
        parallel.check_shareable(get(variant), args.batch_size or 100, args.train_size or 0, n)
    if resolve_device(args.device or "auto").type == "cuda" and n > 1:  # (no CUDA where it is asked for: refused here)
        import torch

        if torch.cuda.device_count() < n:
            raise ConfigError(f"--nproc {n}: this machine has {torch.cuda.device_count()} CUDA device(s); each process takes one")
    argv, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "vaelab", *argv]
    return subprocess.run(cmd, preexec_fn=parallel.die_with_parent).returncode


class _Progress:
    """One line per finished epoch on stderr when no progress bar shows it (output piped, or
    --no-progress); the seconds of training so far either way."""

    def __init__(self, quiet: bool):
        import sys

        self.lines = quiet or not sys.stderr.isatty()
        self.seconds, self.epochs = 0.0, {}

    def __call__(self, ev: dict) -> None:
        if ev["event"] == "phase":
            self.epochs[ev["phase"]] = ev["epochs"]
        elif ev["event"] == "epoch":
            self.seconds += ev["seconds"]
            if self.lines:
                test = f", test loss {ev['test']['loss']:.2f}" if "loss" in ev.get("test", {}) else ""
                stderr_log(f"{ev['phase']} epoch {ev['epoch']}/{self.epochs.get(ev['phase'], '?')}: "
                           f"train loss {ev['train'].get('loss', float('nan')):.2f}{test} ({ev['seconds']:.1f}s)")


def _finished(run_dir: str, epochs: int | None) -> str | None:
    """A message when the run at ``run_dir`` is complete and ``--epochs`` asks for no more, else None."""
    from pathlib import Path

    from ..rundir import run_config  # local: torch; keeps `vaelab --help` at 0.1 s

    conf = run_config(run_dir)
    ck = Path(run_dir) / "checkpoint.json"
    state = read_json(ck) if ck.is_file() else {}
    # the epochs the checkpoint was trained to (config.json may already name more: a resume with more
    # --epochs that stopped, e.g. on a full disk, before its first checkpoint)
    trained = state.get("train", conf.get("train", {})).get("epochs")
    if state.get("done") and (epochs is None or (isinstance(trained, int) and epochs <= trained)):
        return (f"{run_dir}: already complete ({trained} epochs); nothing to do — "
                f"resume with --epochs N (N > {trained}) to train further")
    return None


def summary(run_dir, seconds: float) -> str:
    """The end-of-training lines: epochs, final losses, time, and where the pictures are."""
    from pathlib import Path

    from ..rundir import run_config  # local: torch; keeps `vaelab --help` at 0.1 s

    run_dir = Path(run_dir)
    recs = read_metrics(run_dir / "metrics.jsonl")
    conf = run_config(run_dir)
    last = recs[-1] if recs else {}
    test = f", test {last['test']['loss']:.2f}" if "loss" in last.get("test", {}) else ""
    pics = ", ".join(str(run_dir / f) for f in ("samples.png", "reconstructions.png") if (run_dir / f).is_file())
    return (f"{conf['variant']}: {len(recs)} epoch(s) in {sum(float(r['seconds']) for r in recs):.1f}s "
            f"(this invocation {seconds:.1f}s); final loss: train {last.get('train', {}).get('loss', float('nan')):.2f}{test}"
            + (f"\n  pictures: {pics}" if pics else "") + f"\n  evaluate it: vaelab evaluate {run_dir}")
