"""The run directory: everything that reads or writes one run's files.

A run directory holds ``config.json`` (the resolved variant and training configs, versions, command),
``checkpoint.safetensors`` + ``checkpoint.json`` (weights, optimizer and RNG state), ``metrics.jsonl``
(one record per epoch), ``train.log``, ``samples.png`` / ``reconstructions.png`` and, once evaluated,
``eval.json`` (schema in :mod:`vaelab.scoring`) and ``figures/`` (:mod:`vaelab.run_figures`).

* :func:`train` — train a variant into a run directory, or resume one;
* :func:`load` — the trained variant of a run (its stored config validated as :func:`vaelab.build` does);
* :func:`evaluate_run` — every metric of a run, a composition of :mod:`vaelab.scoring`'s stages, and its
  figures (:func:`make_figures`: the figures alone);
* :func:`run_config`, :func:`read_metrics` — the run's records.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from . import parallel
from .data import load_dataset
from .errors import ConfigError, RunDirError, WriteFailed
from .io import RunLock, atomic_write_json, read_json, read_metrics  # noqa: F401 (read_metrics: part of this module's API)
from .provenance import now, versions
from .registry import get, make_config, stored_model_config
from .run_figures import MAP_POINTS, write_figures
from .training.checkpoint import CHECKPOINT, load_model_weights, read_checkpoint
from .training.config import TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import Variant
    from .reference_classifier import Classifier


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config.json; a one-line RunDirError when the directory is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.json").is_file():
        raise RunDirError(f"{run_dir}: not a vaelab run directory (no config.json)")
    return read_json(run_dir / "config.json")


def _stored(run_dir: Path, conf: dict[str, Any], with_train: bool = True) -> tuple[str, dict[str, Any], TrainConfig | None]:
    """(variant, model config, TrainConfig or None) of a stored config.json, validated as a new one
    would be; a one-line RunDirError naming the file and the bad entry."""
    from .config import from_dict

    where = run_dir / "config.json"
    try:
        variant = conf["variant"]
        model = stored_model_config(variant, conf["model"])
        model["data_shape"] = tuple(model["data_shape"])
        make_config(variant, **model)
        train_cfg = None
        if with_train:
            train_cfg = from_dict(TrainConfig, conf["train"])
            train_cfg.validate()
    except (KeyError, TypeError, AttributeError) as e:
        raise RunDirError(f"{where}: missing or malformed entry ({type(e).__name__}: {e})") from None
    except ConfigError as e:
        raise RunDirError(f"{where}: {e}") from None
    return variant, model, train_cfg


def _early_shape(model_cfg: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The model config to check before the data is loaded: with the data's shape where the dataset
    fixes it without loading (dsprites: 1×64×64), so that a backbone for 64×64 images passes."""
    from .data import dsprites

    if dsprites.is_spec(dataset) and "data_shape" not in model_cfg:
        return {**model_cfg, "data_shape": (1, dsprites.SIZE, dsprites.SIZE)}
    return model_cfg


def build_variant(name: str, model_cfg: dict[str, Any], seed: int) -> "Variant":
    """Build a variant with its weights initialised from ``seed`` (deterministic)."""
    conf = make_config(name, **model_cfg)
    torch.manual_seed(seed)
    return get(name)(conf)


def _setup_logging(run_dir: Path) -> logging.Handler:
    h = logging.FileHandler(run_dir / "train.log")
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("vaelab").addHandler(h)
    logging.getLogger("vaelab").setLevel(logging.INFO)
    return h


def train(
    variant: str | None,
    model_cfg: dict[str, Any] | None = None,
    train_cfg: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    extra_epochs: int | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    tensorboard: bool = False,
    device: str | None = None,
) -> Path:
    """Train ``variant`` into ``run_dir`` (or resume it) and return the run dir.

    ``tensorboard``: also log the trainer's events to ``run_dir/tb`` (:mod:`vaelab.tensorboard_log`).
    ``device``: overrides the TrainConfig's (or the resumed run's) device.
    Started by torchrun as one of several processes, it joins their process group and trains its
    share of every batch (:mod:`vaelab.parallel`); only rank 0 writes ``run_dir``.

    ``config.json`` records every resolved hyperparameter and the library versions; resuming reads
    it back (``extra_epochs`` may raise the epoch count of a resumed run). ``on_event`` receives the
    trainer's progress events (see :mod:`vaelab.training.trainer`).
    """
    from .data import SEQUENCE_DATASETS, head

    if tensorboard:
        from .tensorboard_log import check_available

        check_available()  # a one-line error before anything is written
    if resume:
        run_dir = Path(run_dir)
        variant, model_cfg, train_cfg = _stored(run_dir, run_config(run_dir))
        model_cfg = dict(model_cfg)
        if extra_epochs is not None:
            train_cfg.epochs = extra_epochs
    else:
        train_cfg = train_cfg or TrainConfig()
        model_cfg = dict(model_cfg or {})
        make_config(variant, **_early_shape(model_cfg, train_cfg.dataset))  # fail on a bad model config before anything is written
        if get(variant).data_kind == "features":
            raise ConfigError(f"{variant}: generates feature vectors for zero-shot learning, not images; train and "
                              f"score it with `vaelab zsl --method {variant}`")
        run_dir = Path(run_dir) if run_dir is not None else Path("runs") / f"{variant}-{train_cfg.dataset}-s{train_cfg.seed}"
    if device is not None:  # where to train now; a run may move between devices (checkpoints hold CPU tensors)
        train_cfg.device = device
    train_cfg.validate()  # (a resumed run's stored config was checked by _stored; this checks extra_epochs)
    from .training.config import resolve_device

    dev = resolve_device(train_cfg.device)  # no CUDA where CUDA is asked for: a one-line error before anything is written
    # the data first: missing data must not leave an empty run directory behind
    train_set, test_set = load_splits(train_cfg)
    if train_cfg.train_size:
        train_set = head(train_set, train_cfg.train_size)
    if (get(variant).data_kind == "sequence") != train_set.is_sequence:
        raise ConfigError(f"{variant}: models {'sequences' if get(variant).data_kind == 'sequence' else 'images'}, but "
                          f"{train_cfg.dataset} holds {'sequences' if train_set.is_sequence else 'images'}"
                          + (f"; choose one of {', '.join(SEQUENCE_DATASETS)}" if not train_set.is_sequence else ""))
    if not resume:
        model_cfg = data_defaults(variant, model_cfg, train_set)
        make_config(variant, **{**model_cfg, "data_shape": tuple(model_cfg["data_shape"])})  # the config with the data's shape
    joined = parallel.init_from_env(parallel.local_device(dev))
    if parallel.world_size() > 1:  # one of several processes: a variant and batch that can be shared, before anything is written
        parallel.check_shareable(get(variant), train_cfg.batch_size, len(train_set))
    main = parallel.is_main()
    try:
        _train_locked(run_dir, variant, model_cfg, train_cfg, resume, on_event, tensorboard, main, train_set, test_set)
    except KeyboardInterrupt:  # (with several processes, all stop together at one batch: they leave in order)
        if joined:
            parallel.close()
        raise
    except BaseException as e:
        err = e
        if isinstance(e, WriteFailed):  # say how to go on
            kept = (run_dir / CHECKPOINT).exists()
            err = WriteFailed(f"{e}; " + (f"the last complete checkpoint in {run_dir} is kept: make room, then resume with "
                                          f"`vaelab train --resume {run_dir}`" if kept else
                                          f"nothing was checkpointed in {run_dir} yet: make room and start again"))
        if parallel.launched() and parallel.world_size() > 1:  # the others wait in a collective: end at once
            parallel.abort(err)
        if err is e:
            raise
        raise err from None
    if joined:  # this call joined the process group: it leaves it
        parallel.close()
    return run_dir


def _train_locked(run_dir: Path, variant: str, model_cfg: dict[str, Any], train_cfg: TrainConfig, resume: bool,
                  on_event, tensorboard: bool, main: bool, train_set, test_set) -> None:
    """The part of :func:`train` that holds the run lock (rank 0): config.json, the log, the trainer."""
    from .training.trainer import Trainer

    with RunLock(run_dir) if main else contextlib.nullcontext():
        if not resume and (run_dir / CHECKPOINT).exists():
            raise RunDirError(f"{run_dir}: already holds a run; resume it with --resume or pick another --out")
        model_cfg["data_shape"] = tuple(model_cfg["data_shape"])
        v = build_variant(variant, model_cfg, train_cfg.seed)
        resolved = {"variant": variant, "model": v.config.to_dict(), "train": dataclasses.asdict(train_cfg),
                    "versions": versions(), "parameters": v.num_parameters(),
                    "command": " ".join(sys.argv) if sys.argv and "vaelab" in sys.argv[0] else None,
                    "created": now()}
        if resume and (run_dir / "config.json").exists():
            old = read_json(run_dir / "config.json")
            resolved["created"] = old.get("created", resolved["created"])
            resolved["command"] = old.get("command")
        if main:
            atomic_write_json(run_dir / "config.json", resolved)
        handler = _setup_logging(run_dir) if main else logging.NullHandler()
        if parallel.world_size() > 1:
            logging.getLogger("vaelab").info("data-parallel: %d processes (%s), this is rank %d", parallel.world_size(),
                                             torch.distributed.get_backend(), parallel.rank())
        listeners = [f for f in (on_event,) if f is not None]
        tb = None
        if tensorboard and main:
            from .tensorboard_log import TensorBoardLogger

            tb = TensorBoardLogger(run_dir)
            listeners.append(tb)
        try:
            Trainer(v, train_cfg, run_dir, train_set, test_set,
                    on_event=lambda ev: [f(ev) for f in listeners]).fit(resume=resume)
        finally:
            logging.getLogger("vaelab").removeHandler(handler)
            handler.close()
            if tb is not None:
                tb.close()


def load_splits(train_cfg: TrainConfig, data_dir: str | None = None):
    """(train, test) :class:`vaelab.data.Dataset` of a run's data; a DataError when the two splits
    differ in image shape or classes (a folder dataset whose test images have another size or colour)."""
    from .errors import DataError

    where = data_dir if data_dir is not None else train_cfg.data_dir
    train_set = load_dataset(train_cfg.dataset, "train", where, image_size=train_cfg.image_size)
    test_set = load_dataset(train_cfg.dataset, "test", where, image_size=train_cfg.image_size)
    if train_set.shape != test_set.shape:
        raise DataError(f"{train_cfg.dataset}: training images are {train_set.shape} (C, H, W) but test images are "
                        f"{test_set.shape}; give --image-size, and one colour mode for both")
    if train_set.n_classes != test_set.n_classes:
        raise DataError(f"{train_cfg.dataset}: the training split has {train_set.n_classes} classes, the test split "
                        f"{test_set.n_classes}")
    return train_set, test_set


def data_defaults(variant: str, model_cfg: dict[str, Any], train_set) -> dict[str, Any]:
    """The model config completed from the data: ``data_shape``, ``n_classes`` and the likelihood
    (Bernoulli for greyscale, the discretised logistic for RGB: :mod:`vaelab.losses.likelihood`).
    A conditional or clustering variant on unlabelled data is a ConfigError."""
    cls = get(variant)
    out = dict(model_cfg)
    out.setdefault("data_shape", train_set.shape)
    if not train_set.labelled:
        if cls.conditional:
            raise ConfigError(f"{variant}: needs class labels, and {train_set.name} has none (give it class folders, "
                              f"or a 'y' array)")
        if cls.clusters and out.get("n_clusters") is None:
            raise ConfigError(f"{variant}: {train_set.name} has no labels to count clusters from; give --set n_clusters=K")
        out.setdefault("n_classes", 1)
    out.setdefault("n_classes", train_set.n_classes)
    if len(train_set.shape) == 3 and train_set.shape[0] == 3 and "logistic" in cls.likelihoods:
        out.setdefault("likelihood", "logistic")
    return out


def load(run_dir: str | Path, device: str = "cpu") -> "Variant":
    """The trained variant of a run directory (weights from its checkpoint), in eval mode, on ``device``
    (``auto | cpu | cuda | cuda:N``; checkpoints hold CPU tensors, so any run loads anywhere). The stored
    config is validated as :func:`vaelab.build` validates a new one."""
    from .config import from_dict
    from .training.config import resolve_device

    run_dir = Path(run_dir)
    dev = resolve_device(device)  # no CUDA where CUDA is asked for: a one-line error before reading anything
    variant, model_cfg, _ = _stored(run_dir, run_config(run_dir), with_train=False)
    v = get(variant)(from_dict(get(variant).Config, model_cfg))
    tensors, _ = read_checkpoint(run_dir)
    load_model_weights(v, tensors)
    return v.to(dev).eval()


def evaluate_run(
    run_dir: str | Path,
    n_samples: int = 10000,
    iwae_k: int = 1000,
    iwae_n: int = 1000,
    seed: int = 0,
    data_dir: str | None = None,
    classifier: "Classifier | None" = None,
    write: bool = True,
    tensorboard: bool | None = None,
    batch_size: int = 500,
    max_items: int = 512,
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
    figures: bool = True,
    map_points: int = MAP_POINTS,
    disentanglement: str = "standard",
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and return the eval.json dict (written atomically into the run
    dir when ``write``; with ``figures`` also the figures that need the model, drawn on the CPU into
    ``RUN/figures/`` with their index: :mod:`vaelab.run_figures`, ``map_points`` test images in the
    latent map). ``classifier``: a :class:`vaelab.reference_classifier.Classifier` to use instead of the
    cached reference one of the run's dataset. ``iwae_n=0`` or ``iwae_k=0`` skips the IWAE bound.
    ``device``: where the model runs (``auto | cpu | cuda | cuda:N``); the test inputs (and their
    binarisation) are the same on every device, the model's noise comes from that device's generator,
    and the reference classifier stays on the CPU. Deterministic for a given ``seed`` and device
    (apart from the timings). ``disentanglement``: the sample counts of the disentanglement metrics on a
    dataset with ground-truth factors (dsprites), a mode of :data:`vaelab.scoring.DISENTANGLEMENT_MODES`
    (``none`` skips them)."""
    from . import scoring
    from .reference_classifier import load_or_train
    from .config import check_int
    from .data import binarize, dsprites, factor_sampler, to_tensor
    from .metrics.cost import cost_scores

    for name, val, lo in (("n_samples", n_samples, 10), ("iwae_k", iwae_k, 0), ("iwae_n", iwae_n, 0), ("seed", seed, 0),
                          ("map_points", map_points, 10)):
        check_int(val, name, lo)
    scoring.check_disentanglement_mode(disentanglement, "disentanglement")
    say = log or (lambda msg: None)
    run_dir = Path(run_dir)
    conf = run_config(run_dir)
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    last = [t_start]

    def lap(name: str) -> None:
        t = time.perf_counter()
        stages[name], last[0] = round(t - last[0], 2), t

    with (RunLock(run_dir) if write else contextlib.nullcontext()):  # no writing, no lock: a training run may go on
        v = load(run_dir, device)
        dev = v.device
        dataset, mode = conf["train"]["dataset"], conf["train"].get("binarize", "none")
        ck_path = run_dir / "checkpoint.json"
        ck_state = read_json(ck_path) if ck_path.is_file() else {}
        data_dir = data_dir if data_dir is not None else conf["train"].get("data_dir")
        image_size = conf["train"].get("image_size")
        test = load_dataset(dataset, "test", data_dir, image_size=image_size)
        has_factors = dsprites.is_spec(dataset)
        if classifier is None and test.labelled:
            classifier = load_or_train(dataset, data_dir, log=say, image_size=image_size)
        n_test = len(test)
        lap("load")
        out: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seed)

            def gen(s: int) -> torch.Generator:
                return torch.Generator(dev).manual_seed(s)

            x_grey = to_tensor(test.images)
            y = torch.as_tensor(test.labels).to(dev)
            # what the model sees: binarised on the CPU, so the same inputs on every device
            x_in = binarize(x_grey, mode, torch.Generator().manual_seed(scoring.BINARIZE_SEED)).to(dev)
            yc = y if v.conditional else None
            if classifier is None:
                out.update(scoring.unlabelled_scores(v, dataset))
            else:
                say(f"reconstructing {n_test} test images")
                rec = scoring.reconstructions(v, x_in, yc, batch_size)  # made once, scored by both stages
                out.update(scoring.reconstruction_scores(v, classifier, x_in, test.labels, yc, batch_size, rec))
                real_feats, _ = classifier.run(x_grey)
                lap("reconstruction")
                say(f"drawing {n_samples} samples")
                out.update(scoring.sample_scores(v, classifier, real_feats, test.labels, n_samples, gen(seed), batch_size))
                lap("samples")
            if classifier is not None and test.is_sequence:
                say("sequence metrics (content and motion)")
                out.update(scoring.sequence_scores(v, classifier, x_in, test.labels, test.factors["motion"],
                                                   gen(seed + 4), batch_size, rec))
                lap("sequences")
            out.update(scoring.likelihood_scores(v, x_in, yc, iwae_k, iwae_n, seed, max_items, lap, say, progress=log is not None))
            if classifier is not None:
                out.update(scoring.cluster_scores(v, x_in, test.labels, batch_size))
                lap("clusters")
            if classifier is not None and scoring.has_task_metrics(v):
                say("task metrics")
                out.update(scoring.task_scores(v, x_in, y, gen(seed + 3), set(out)))
                lap("task")
            if has_factors:
                say(f"disentanglement metrics ({disentanglement})")
                out.update(scoring.disentanglement_scores(v, factor_sampler(dataset), disentanglement, seed, batch_size))
                lap("disentanglement")
        if write and figures:
            say("figures")
            write_figures(v, run_dir, test, mode, map_points, say)
            lap("figures")
        out["parameters"] = int(v.num_parameters())
        try:
            out.update(cost_scores(read_metrics(run_dir / "metrics.jsonl")))
        except (RunDirError, ValueError, KeyError) as e:
            out.update({k: scoring.absent(f"no usable metrics.jsonl ({e})") for k in scoring.COST_KEYS[1:]})
        out = scoring.finite_or_absent(out)
        out["meta"] = {
            "schema": scoring.SCHEMA, "variant": v.name, "run_dir": str(run_dir), "dataset": dataset, "n_test": n_test,
            "binarization": mode, "binarize_seed": scoring.BINARIZE_SEED if mode == "dynamic" else None,
            "n_samples": n_samples, "sample_labels": "balanced (i mod n_classes)" if v.conditional else None,
            "iwae_k": iwae_k, "iwae_n": min(iwae_n, n_test), "seed": seed, "device": str(dev),
            "disentanglement": {"mode": disentanglement, "options": scoring.disentanglement_options(disentanglement)}
            if has_factors else None,
            "classifier_test_accuracy": None if classifier is None else classifier.test_accuracy,
            "classifier": None if classifier is None else {
                k: classifier.meta.get(k) for k in ("stem", "arch", "data_sha256", "recipe", "n_train", "test_accuracy", "created")},
            "checkpoint": {k: ck_state.get(k) for k in ("done", "phase", "epoch", "step")},
            "eval_seconds": round(time.perf_counter() - t_start, 2), "stage_seconds": stages,
            "created": now(), "versions": versions(),
        }
        if write:
            atomic_write_json(run_dir / "eval.json", out)
            if tensorboard or (tensorboard is None and (run_dir / "tb").is_dir()):
                from .tensorboard_log import log_evaluation

                log_evaluation(run_dir, out, conf)
    return out


def make_figures(run_dir: str | Path, map_points: int = MAP_POINTS, data_dir: str | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Only the figures of :func:`evaluate_run` (``RUN/figures/``), eval.json untouched: for a run
    evaluated before figures were saved with the evaluation. Returns their index."""
    tc = run_config(run_dir)["train"]
    with RunLock(run_dir):
        test = load_dataset(tc["dataset"], "test", tc.get("data_dir") if data_dir is None else data_dir, image_size=tc.get("image_size"))
        return write_figures(load(run_dir), run_dir, test, tc.get("binarize", "none"), map_points, log)
