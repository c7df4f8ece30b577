"""vaelab compare [--variants all|a,b] [--dataset] [--backbone] [--epochs N] [--seeds 0,1,2] [--protocol paper|fast] [--out DIR] [--quick]"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from .._cpu import flush_denormals
from ..config import check_choice, parse_value
from ..configfile import compare_settings_from_file
from ..errors import ConfigError
from ..registry import get, variants
from ..study import DEFAULTS, QUICK, Settings, run_study
from ..study.ray_executor import RayExecutor
from ..study.settings import config_fields, order_variants

ORDER = 40


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="train, evaluate and compare variants under one protocol; write tables and an HTML report",
        description="The seed paper's study (Table 2, Figs 5, 16, 17, 18) as a controlled experiment: every "
                    "(variant, seed) is trained with the same backbone, latent size, epochs, batch and optimizer, "
                    "evaluated, and summarised in OUT/results.{json,csv,md} and OUT/report/index.html. Resumable: "
                    "run the same command again to finish an interrupted study. Exit status 1 if a run failed "
                    "(it is recorded and the others go on).")
    p.add_argument("--config", metavar="FILE",
                   help="the study's options in a JSON or YAML file (option names with _ for -, or a study.json); "
                        "flags given here override it")
    p.add_argument("--variants", default=None, help="'all' (every registered variant) or a comma list (default all)")
    p.add_argument("--dataset", default=None, help="mnist | fashion-mnist | mnist-5k | dsprites | dsprites:FILE | folder:DIR | "
                   "npz:FILE[,TEST] (default mnist; --quick: mnist-5k); dsprites adds the disentanglement metrics and "
                   "factor traversals")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="folder:/npz: datasets: resize every image to N×N (needed when their sizes differ)")
    p.add_argument("--backbone", default=None, help="paper | small | mlp | dec | svae (default paper; --quick: small)")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size of every variant (default 16)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the main phase (default 10; --quick: 10)")
    p.add_argument("--seeds", default=None, help="comma list of seeds, e.g. 0,1,2 (default 0)")
    p.add_argument("--protocol", default=None,
                   help="paper: RMSprop, lr 1e-3, batch 100 for all (the seed's Table 1); fast: Adam, lr 1e-3, "
                        "batch 100 for all (default paper)")
    p.add_argument("--binarize", default=None, help="none | static | dynamic (default none)")
    p.add_argument("--phase-epochs", type=int, default=None, metavar="N",
                   help="cap every extra-phase budget (config keys *_epochs, e.g. VaDE pretrain, VQ-VAE prior) at N "
                        "(default: the variants' own; --quick: 5)")
    p.add_argument("--set", action="append", default=[], metavar="[VARIANT:]KEY=VALUE",
                   help="a model config value for one variant (vade:pretrain_epochs=3) or for every variant that has "
                        "KEY; repeatable")
    p.add_argument("--n-samples", type=int, default=None, help="samples for FID/IS/precision/recall (default 10000; --quick: 2000)")
    p.add_argument("--iwae-k", type=int, default=None, help="importance samples of the IWAE bound (default 1000; --quick: 100)")
    p.add_argument("--iwae-n", type=int, default=None, help="test images for the IWAE bound (default 1000; --quick: 200)")
    p.add_argument("--map-points", type=int, default=None, help="test images in the latent maps (default 2000; --quick: 1000)")
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="train every run on the first N training images only (default: all; dsprites' order is a "
                        "fixed uniform shuffle, so N of its 737,280 images are a random subset)")
    p.add_argument("--disentanglement", default=None, metavar="MODE",
                   help="dsprites: the disentanglement metrics' counts, standard | quick | none (default standard; "
                        "--quick: quick); see `vaelab evaluate --help`")
    p.add_argument("--out", default=None, help="output directory (default runs/compare-DATASET-PROTOCOL; --quick: runs/compare-quick)")
    p.add_argument("--quick", action="store_true",
                   help="every variant on mnist-5k, small backbone, 10 epochs, extra phases at most 5 epochs, one seed, smaller "
                        "evaluation: about 4 minutes on 2 idle cores")
    p.add_argument("--retry-failed", action="store_true", help="train runs that failed before again (default: reuse their record)")
    p.add_argument("--no-report", action="store_true", help="write the results tables only")
    p.add_argument("--no-progress", action="store_true", help="no per-batch progress bar")
    p.add_argument("--tensorboard", action="store_true",
                   help="each run logs to OUT/runs/RUN/tb/ as well: tensorboard --logdir OUT compares them (needs tensorboard)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N: where every run trains (default auto: "
                   "CUDA when available)")
    p.add_argument("--executor", default="serial", help="serial (one run after another, here) | ray (each run a Ray "
                   "task; needs pip install 'vaelab[ray]') (default serial)")
    p.add_argument("--address", default=None, help="--executor ray: a running Ray cluster (auto, or ray://HOST:10001); "
                   "default: start a local Ray with --num-cpus CPUs")
    p.add_argument("--num-cpus", type=int, default=None, help="--executor ray, local: CPUs Ray may use (default all)")
    p.add_argument("--cpus-per-run", type=int, default=1, help="--executor ray: CPUs (torch threads) per run (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0, help="--executor ray: GPUs per run (default 0: Ray then "
                   "hides the GPUs, and runs train on the CPU)")
    p.add_argument("--run-timeout", type=float, default=None, metavar="S",
                   help="--executor ray: stop a run still going S seconds after it started and record it as failed "
                        "(it keeps its checkpoint and resumes next time), so one hung run cannot hold up the study")
    p.set_defaults(run=run)


def make_executor(args: argparse.Namespace):
    """The executor ``--executor`` names (None for serial)."""
    if args.executor == "serial":
        for flag, val in (("--address", args.address), ("--run-timeout", args.run_timeout)):
            if val is not None:
                raise ConfigError(f"{flag}: only with --executor ray")
        return None
    if args.executor != "ray":
        raise ConfigError(f"--executor: {args.executor!r} is not valid; choose serial or ray")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ConfigError(f"--num-cpus must be >= 1, got {args.num_cpus}")
    import sys

    return RayExecutor(args.address, args.num_cpus, args.cpus_per_run, args.gpus_per_run, args.run_timeout,
                       args.device or "auto", say=lambda msg: print(f"vaelab compare: {msg}", file=sys.stderr))


def settings_from_args(args: argparse.Namespace):
    from pathlib import Path

    if getattr(args, "config", None):
        for key, val in compare_settings_from_file(args.config).items():
            cur = getattr(args, key)
            if cur is None or cur == [] or cur is False:  # not given on the command line
                setattr(args, key, val)
    for key, default in (("variants", "all"), ("latent_dim", 16), ("protocol", "paper"), ("binarize", "none")):
        if getattr(args, key) is None:
            setattr(args, key, default)
    base = QUICK if args.quick else DEFAULTS
    pick = lambda val, key: base[key] if val is None else val  # noqa: E731
    variants = parse_variants(args.variants)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else tuple(base["seeds"])
    dataset = pick(args.dataset, "dataset")
    protocol = args.protocol
    if protocol not in ("paper", "fast"):
        raise ConfigError(f"--protocol: {protocol!r} is not valid; choose one of paper, fast")
    out = args.out or ("runs/compare-quick" if args.quick else f"runs/compare-{dataset}-{protocol}")
    return Settings(
        variants=variants, out=Path(out), dataset=dataset, data_dir=args.data_dir, image_size=args.image_size, backbone=pick(args.backbone, "backbone"),
        latent_dim=args.latent_dim, epochs=pick(args.epochs, "epochs"), seeds=seeds, protocol=protocol,
        binarize=args.binarize, phase_epochs=args.phase_epochs if args.phase_epochs is not None else base["phase_epochs"],
        n_samples=pick(args.n_samples, "n_samples"), iwae_k=pick(args.iwae_k, "iwae_k"), iwae_n=pick(args.iwae_n, "iwae_n"),
        map_points=pick(args.map_points, "map_points"), train_size=args.train_size or 0,
        disentanglement=pick(args.disentanglement, "disentanglement"), overrides=parse_sets(args.set, variants), quick=args.quick,
        retry_failed=args.retry_failed, progress=not args.no_progress, tensorboard=args.tensorboard, command=command_line(),
        device=args.device,
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from ..data import BINARIZATIONS, check_dataset  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..report import finish_study  # local: torch; keeps `vaelab --help` at 0.1 s

    s = settings_from_args(args)
    from ..training.config import resolve_device  # local: torch; keeps `vaelab --help` at 0.1 s

    executor = make_executor(args)
    if executor is None:
        resolve_device(s.device)  # no CUDA where CUDA is asked for: refused before anything is written
    else:
        executor.start()  # (a Ray cluster without the GPUs asked for: refused before anything is written)
    check_dataset(s.dataset, "--dataset")
    check_choice(s.binarize, "--binarize", BINARIZATIONS)
    if s.tensorboard:
        from ..tensorboard_log import check_available  # local: numpy; keeps `vaelab --help` at 0.1 s

        check_available()
    flush_denormals()  # on the main thread and every OpenMP worker (see vaelab._cpu)
    extra = {} if executor is None else {"executor": executor}  # serial: run_study's default
    res = run_study(s, finish=None if args.no_report else finish_study, **extra)
    failed = sum(v["n_failed"] for v in res["variants"].values())
    total = sum(v["n_runs"] for v in res["variants"].values())
    print(f"{total - failed}/{total} runs ok; results in {s.out}/results.md"
          + ("" if args.no_report or "report_error" in res else f", report {s.out}/report/index.html"), file=sys.stderr)
    print(s.out / ("results.md" if args.no_report else "report/index.html"))
    if failed:
        print(f"vaelab compare: {failed} run(s) failed (recorded; see {s.out}/results.md)", file=sys.stderr)
        return 1
    return 0


# ----- parsing user input ------------------------------------------------------------------------
def parse_variants(text: str | None) -> list[str]:
    """``all`` (or None) → every registered variant; else a comma list of registered names."""
    known = [n for n in variants() if get(n).data_kind == "image"]  # feature generators belong to `vaelab zsl`
    if text is None or text.strip() == "all":
        return order_variants(known)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError("--variants: give 'all' or a comma-separated list of variant names")
    other = [n for n in names if n in variants() and n not in known]
    if other:
        raise ConfigError(f"--variants: {other[0]} " + ("models sequences; run it with `vaelab sequences`"
                                                         if get(other[0]).data_kind == "sequence" else
                                                         "generates feature vectors for zero-shot learning; run it with `vaelab zsl`"))
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"--variants: unknown variant {bad[0]!r}; valid: all, {', '.join(known)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--variants: {dup[0]!r} is listed twice")
    return names


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``0,1,2`` → (0, 1, 2); also ``0-2``. Seeds are distinct integers >= 0."""
    if text is None:
        return (0,)
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds += range(a, b + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers >= 0 (e.g. 0,1,2), got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: expected comma-separated integers >= 0 (e.g. 0,1,2), got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed is listed twice in {text!r}")
    return tuple(seeds)


def parse_sets(items: list[str], selected: list[str]) -> dict[str, dict[str, Any]]:
    """``--set [VARIANT:]KEY=VALUE`` → {variant: {key: value}}. Without VARIANT the value goes to every
    selected variant whose config has KEY (and it is an error if none has it)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected [VARIANT:]KEY=VALUE")
        lhs, val = item.split("=", 1)
        target, _, key = lhs.strip().rpartition(":")
        key = key.strip()
        value = parse_value(val.strip())
        if target:
            if target not in selected:
                raise ConfigError(f"--set {item!r}: {target!r} is not one of the compared variants ({', '.join(selected)})")
            if key not in config_fields(get(target)):
                raise ConfigError(f"--set {item!r}: {target} has no config key {key!r}; valid: {', '.join(sorted(config_fields(get(target))))}")
            out.setdefault(target, {})[key] = value
        else:
            hit = [n for n in selected if key in config_fields(get(n))]
            if not hit:
                raise ConfigError(f"--set {item!r}: none of the compared variants has a config key {key!r}")
            for n in hit:
                out.setdefault(n, {})[key] = value
    return out


def command_line(argv: list[str] | None = None) -> str | None:
    """The command line that started this process as ``vaelab compare ...``, or None when this process
    is not the vaelab CLI running compare (e.g. a test calling ``cli.main``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("vaelab", "__main__.py") and "compare" in argv[1:]:
        return "vaelab " + shlex.join(argv[1:])
    return None

