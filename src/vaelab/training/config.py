"""How a run is trained: :class:`TrainConfig` (saved in config.json as ``train``) and its precision."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..config import check_choice, check_int, check_range
from ..errors import ConfigError
from ..data import BINARIZATIONS, check_dataset
from ..optim import OPTIMIZERS, RUN_LR_SCHEDULES

PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """How a variant is trained. The ``paper`` protocol of the seed's Table 1 is RMSprop, lr 1e-3, batch 100."""

    dataset: str = "mnist-5k"
    data_dir: str | None = None
    image_size: int | None = None  # folder:/npz: datasets: resize every image to this square size
    epochs: int = 10
    train_size: int = 0  # use only the first N training images (0 = all); for quick runs and tests
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | rmsprop (rmsprop uses alpha=0.9, eps=1e-7: the Keras/TF defaults the seed used)
    adam_eps: float = 1e-8  # Adam's ε (torch's default; the IWAE paper used 1e-4)
    # constant | iwae: the run's lr multiplier by epoch of each phase, times the variant's own schedule;
    # iwae = Burda et al. 2016's 3^i epochs at 10^(−i/7), i = 0..7 (3,280 epochs, then the last rate)
    lr_schedule: str = "constant"
    seed: int = 0
    binarize: str = "none"  # none | static | dynamic (resampled each epoch; use it for likelihood numbers)
    precision: str = "fp32"  # fp32 | bf16 (autocast for networks; losses stay fp32)
    fused: bool = True  # fused Adam kernel (one pass over the parameters); ignored for RMSprop
    channels_last: bool = False  # NHWC memory format for conv nets
    compile: bool = False  # torch.compile the variant's submodules (falls back to eager if it fails)
    checkpoint_every_s: float = 0.0  # extra mid-epoch checkpoints; 0 = only at epoch end and on Ctrl-C
    eval_every: int = 1  # test-set loss every N epochs (0 = never)
    progress: bool = True
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:N: where the model and the dataset live

    def validate(self) -> None:
        check_dataset(self.dataset, "dataset")
        check_int(self.image_size, "image_size", 4, optional=True)
        check_int(self.epochs, "epochs", 0)
        check_int(self.train_size, "train_size", 0)
        check_int(self.batch_size, "batch_size", 1)
        check_range(self.lr, "lr", lo=0, lo_open=True)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_range(self.adam_eps, "adam_eps", lo=0, lo_open=True)
        check_choice(self.lr_schedule, "lr_schedule", RUN_LR_SCHEDULES)
        check_int(self.seed, "seed", 0)
        check_choice(self.binarize, "binarize", BINARIZATIONS)
        check_choice(self.precision, "precision", PRECISIONS)
        check_range(self.checkpoint_every_s, "checkpoint_every_s", lo=0)
        check_int(self.eval_every, "eval_every", 0)
        check_device(self.device)


def check_device(name: str, key: str = "device") -> None:
    """A ConfigError unless ``name`` is auto, cpu, cuda or cuda:N (the device itself is checked by
    :func:`resolve_device`)."""
    ok = name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())
    if not ok:
        raise ConfigError(f"{key}: {name!r} is not valid; choose auto, cpu, cuda or cuda:N")


def resolve_device(name: str, key: str = "--device") -> torch.device:
    """The torch device ``name`` asks for: ``auto`` is CUDA when available, else the CPU. Asking for a
    CUDA device this machine does not have is a ConfigError."""
    check_device(name, key)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"{key}: {name} asked for, but this machine has no CUDA device (torch.cuda.is_available() "
                          f"is False with torch {torch.__version__}); use --device cpu")
    index = int(name[5:]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"{key}: {name} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def autocast(precision: str, device_type: str = "cpu"):
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
