"""The benchmark's features and splits: a CNN trained on one fold's seen classes only, its
128-d penultimate features of every image, cached on disk, and the ZSL splits built from them.

Two extractors (``EXTRACTORS``), both trained on the seen classes' training images only, so no image
of an unseen class reaches either:

* ``supervised`` (the benchmark's): the reference classifier's network and recipe
  (:mod:`vaelab.reference_classifier`) trained on those images with their labels renumbered 0..6;
* ``contrastive``: the same network's body trained without labels (SimCLR,
  :mod:`vaelab.zsl.contrastive`), the alternative docs/zsl.md measures against it.

Features are cached in ``cache_dir()/zsl/`` as safetensors (arrays) plus JSON (what they were
computed from), keyed by dataset, fold, extractor, recipe, benchmark version and a hash of the
images; a cache entry that does not match is recomputed.

Features are scaled to [0, 1] per dimension by the largest value each dimension takes on the seen
classes' training features (the features are ReLU outputs, so their minimum is 0), and clipped.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from ..data import Dataset, load_dataset, sources, to_tensor
from ..errors import ConfigError
from ..io import atomic_write_bytes, atomic_write_json, read_json
from ..nn.utils import batched
from ..reference_classifier import ARCH, data_hash, default_recipe, train_classifier
from .benchmark import VERSION, class_attributes, fold_classes
from .contrastive import ContrastiveRecipe, train_contrastive

SETTINGS = ("inductive", "transductive")
EXTRACTORS = ("supervised", "contrastive")
SHOTS = (0, 1, 5, 10)


@dataclass
class Features:
    """One fold's cached features: every split of the dataset with its true labels (only
    :func:`make_split` decides what a method may see)."""

    dataset: str
    fold: int
    seen: list[int]
    unseen: list[int]
    attributes: np.ndarray  # (10, A) unit rows
    x_train: np.ndarray  # (N, F) all training images' features
    y_train: np.ndarray  # (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict


@dataclass
class Split:
    """What a ZSL method gets. ``x_unlabelled`` (transductive only) are the unseen classes' training
    features, shuffled, with no labels. ``x_train``/``y_train`` hold the seen classes' labelled
    training features plus, in the any-shot mode, ``shots`` labelled examples of each unseen class."""

    seen: list[int]
    unseen: list[int]
    attributes: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_unlabelled: np.ndarray | None
    x_test_seen: np.ndarray
    y_test_seen: np.ndarray
    x_test_unseen: np.ndarray
    y_test_unseen: np.ndarray

    @property
    def feature_dim(self) -> int:
        return int(self.x_train.shape[1])


def extractor_training_set(train: Dataset, seen: list[int]) -> Dataset:
    """The seen classes' training images, labels renumbered 0..len(seen)-1: all the extractor sees."""
    keep = np.isin(train.labels, seen)
    remap = np.full(max(seen) + 1, -1, dtype=np.int64)
    remap[seen] = np.arange(len(seen))
    return Dataset(name=f"{train.name}-seen", split="train", images=train.images[keep], labels=remap[train.labels[keep]],
                   n_classes=len(seen))


def load_features(dataset: str, fold: int, data_dir: str | None = None, log: Callable[[str], None] | None = None,
                  extractor: str = "supervised") -> Features:
    """The fold's features of every training and test image by ``extractor`` (``EXTRACTORS``): from
    the cache, or computed now and cached."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"zsl features: unknown extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)}")
    seen, unseen = fold_classes(dataset, fold)
    train, test = load_dataset(dataset, "train", data_dir), load_dataset(dataset, "test", data_dir)
    recipe = default_recipe(dataset) if extractor == "supervised" else ContrastiveRecipe()
    expected = {"benchmark_version": VERSION, "dataset": dataset, "fold": fold, "seen": seen, "unseen": unseen,
                "recipe": recipe.to_dict(), "arch": ARCH, "images_sha256": [data_hash(train), data_hash(test)]}
    if extractor != "supervised":  # the supervised entries keep their keys (and so their cache files)
        expected["extractor"] = extractor
    key = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()[:12]
    d = sources.cache_dir() / "zsl"
    stem = f"{dataset}-fold{fold}-{key}"
    arrays = None
    if (d / f"{stem}.json").is_file() and (d / f"{stem}.safetensors").is_file():
        meta = read_json(d / f"{stem}.json")
        blob = (d / f"{stem}.safetensors").read_bytes()
        if {k: meta.get(k) for k in expected} == expected and meta.get("sha256") == hashlib.sha256(blob).hexdigest():
            arrays = st_load(blob)
    if arrays is None:
        if log:
            log(f"zsl features {stem}: training the {extractor} extractor on the {len(seen)} seen classes of {dataset}")
        t0 = time.perf_counter()
        seen_train = extractor_training_set(train, seen)
        net = train_classifier(seen_train, recipe, log) if extractor == "supervised" else \
            train_contrastive(seen_train.images, recipe, log)  # the images only: no label is read
        with torch.no_grad():
            feats = [batched(lambda i, j, x=to_tensor(ds.images): net.features(x[i:j]), len(ds), 1000).cpu().numpy()
                     for ds in (train, test)]
        arrays = {"x_train": feats[0].astype(np.float32), "x_test": feats[1].astype(np.float32)}
        blob = st_save(arrays)
        meta = {**expected, "sha256": hashlib.sha256(blob).hexdigest(), "seconds": round(time.perf_counter() - t0, 1)}
        atomic_write_bytes(d / f"{stem}.safetensors", blob)
        atomic_write_json(d / f"{stem}.json", meta)
    return Features(dataset, fold, seen, unseen, class_attributes(dataset), arrays["x_train"], train.labels.astype(np.int64),
                    arrays["x_test"], test.labels.astype(np.int64), meta)


def check_setting(setting: str, shots: int) -> None:
    if setting not in SETTINGS:
        raise ConfigError(f"--setting: {setting!r} is not valid; choose one of {', '.join(SETTINGS)}")
    if shots not in SHOTS:
        raise ConfigError(f"--shots: {shots!r} is not valid; choose one of {', '.join(map(str, SHOTS))}")


def normaliser(f: Features) -> Callable[[np.ndarray], np.ndarray]:
    """The benchmark's feature scaling: each dimension divided by its largest value on the seen
    classes' training features, clipped to [0, 1] (float32)."""
    scale = f.x_train[np.isin(f.y_train, f.seen)].max(0)
    scale[scale <= 0] = 1.0
    return lambda x: np.clip(x / scale, 0.0, 1.0).astype(np.float32)


def make_split(f: Features, setting: str = "inductive", shots: int = 0, seed: int = 0) -> Split:
    """The data a method may use in ``setting`` with ``shots`` labelled examples per unseen class.

    The unseen classes' training labels are read only to pick the ``shots`` examples per class; the
    rest of those images become the unlabelled set (transductive) in a seeded order, or are unused."""
    check_setting(setting, shots)
    rng = np.random.default_rng(seed)
    seen_mask = np.isin(f.y_train, f.seen)
    unseen_idx = np.flatnonzero(~seen_mask)
    few = np.concatenate([rng.choice(unseen_idx[f.y_train[unseen_idx] == c], shots, replace=False) for c in f.unseen]) \
        if shots else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(unseen_idx, few)
    labelled = np.concatenate([np.flatnonzero(seen_mask), few])
    norm = normaliser(f)
    test_seen = np.isin(f.y_test, f.seen)
    return Split(
        seen=f.seen, unseen=f.unseen, attributes=f.attributes,
        x_train=norm(f.x_train[labelled]), y_train=f.y_train[labelled],
        x_unlabelled=norm(f.x_train[rng.permutation(rest)]) if setting == "transductive" else None,
        x_test_seen=norm(f.x_test[test_seen]), y_test_seen=f.y_test[test_seen],
        x_test_unseen=norm(f.x_test[~test_seen]), y_test_unseen=f.y_test[~test_seen],
    )


