"""Training a variant into a run directory (:func:`train`), or resuming one, and what it derives
from the data (:func:`load_splits`, :func:`data_defaults`)."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from .. import parallel
from ..data import SEQUENCE_DATASETS, dsprites, head, load_dataset
from ..errors import ConfigError, DataError, RunDirError, WriteFailed
from ..io import RunLock, atomic_write_json, read_json
from ..provenance import now, versions
from ..registry import get, make_config
from ..tensorboard_log import TensorBoardLogger, check_available
from ..training.checkpoint import CHECKPOINT
from ..training.config import TrainConfig, resolve_device
from ..training.runtime import Runtime
from ..training.trainer import Trainer
from .records import _stored, run_config

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import Variant


def _early_shape(model_cfg: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The model config to check before the data is loaded: with the data's shape where the dataset
    fixes it without loading (dsprites: 1×64×64), so that a backbone for 64×64 images passes."""
    if dsprites.is_spec(dataset) and "data_shape" not in model_cfg:
        return {**model_cfg, "data_shape": (1, dsprites.SIZE, dsprites.SIZE)}
    return model_cfg


def build_variant(name: str, model_cfg: dict[str, Any], seed: int) -> "Variant":
    """Build a variant with its weights initialised from ``seed`` (deterministic)."""
    return _seeded_variant(name, make_config(name, **model_cfg), seed)


def _seeded_variant(name: str, conf, seed: int) -> "Variant":
    """The variant ``name`` of ``conf`` (a config :func:`vaelab.registry.make_config` made), its weights
    initialised from ``seed``."""
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
    if tensorboard:
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
    model_cfg["data_shape"] = tuple(model_cfg["data_shape"])  # once, here: a tuple from now on (a file or --set gives a list)
    conf = make_config(variant, **model_cfg)  # the config with the data's shape, made once: checked now, trained below
    joined = parallel.init_from_env(parallel.local_device(dev))
    rt = Runtime.resolve(train_cfg, dev)  # device, precision, processes: resolved once, owned by the trainer
    if rt.world > 1:  # one of several processes: a variant and batch that can be shared, before anything is written
        parallel.check_shareable(get(variant), train_cfg.batch_size, len(train_set))
    try:
        _train_locked(run_dir, variant, conf, train_cfg, resume, on_event, tensorboard, rt, train_set, test_set)
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


def _train_locked(run_dir: Path, variant: str, conf, train_cfg: TrainConfig, resume: bool,
                  on_event, tensorboard: bool, rt: Runtime, train_set, test_set) -> None:
    """The part of :func:`train` that holds the run lock (rank 0): config.json, the log, the trainer of the
    variant of ``conf`` (the model config :func:`train` made)."""
    main = rt.main
    with RunLock(run_dir) if main else contextlib.nullcontext():
        if not resume and (run_dir / CHECKPOINT).exists():
            raise RunDirError(f"{run_dir}: already holds a run; resume it with --resume or pick another --out")
        v = _seeded_variant(variant, conf, train_cfg.seed)
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
        if rt.world > 1:
            logging.getLogger("vaelab").info("data-parallel: %d processes (%s), this is rank %d", rt.world,
                                             torch.distributed.get_backend(), parallel.rank())
        listeners = [f for f in (on_event,) if f is not None]
        tb = None
        if tensorboard and main:
            tb = TensorBoardLogger(run_dir)
            listeners.append(tb)
        try:
            Trainer(v, train_cfg, run_dir, train_set, test_set,
                    on_event=lambda ev: [f(ev) for f in listeners], runtime=rt).fit(resume=resume)
        finally:
            logging.getLogger("vaelab").removeHandler(handler)
            handler.close()
            if tb is not None:
                tb.close()


def load_splits(train_cfg: TrainConfig, data_dir: str | None = None):
    """(train, test) :class:`vaelab.data.Dataset` of a run's data; a DataError when the two splits
    differ in image shape or classes (a folder dataset whose test images have another size or colour)."""
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
