"""The reference classifier behind the classifier metrics (the seed's Table 2 metric, FID, IS, precision/recall).

One small CNN per dataset, trained deterministically on the dataset's training split and cached in
``vaelab.data.sources.cache_dir() / "classifiers"`` as ``<stem>.safetensors`` (weights) plus
``<stem>.json`` (recipe, test accuracy, a sha256 of the training data and of the weights file,
versions). A cached classifier is used only if its recorded data hash and recipe match the data and
recipe asked for and its weights file matches its recorded hash; otherwise it is retrained. Both
files are written atomically, weights first: a crash between the two leaves a JSON whose weights
hash does not match, which is detected.

Architecture (``ClassifierNet``): Conv(1→32, 5×5, stride 2) → BN → ReLU → Conv(32→64, 5×5, stride 2) →
BN → ReLU → FC(3136→128) → ReLU [the 128-d penultimate features used for FID and precision/recall] →
Dropout(0.3) → FC(128→10). About 0.45M parameters and 3.1M multiply-adds per image: strided
convolutions instead of full-resolution ones + max-pooling make it several times cheaper to train on
CPU (docs/results/reference-classifier.md).

Sequence datasets (Moving MNIST) get a **judge** instead (``SequenceJudgeNet``, the S3VAE paper's
evaluation classifier): the content (digit) logits from ``ClassifierNet`` run on each frame's
28×28 window around its ink, its 128-d features averaged over frames (the features behind FID-style
metrics); the motion (direction) logits from a small conv trunk over whole frames and an MLP over
the frames' position-keeping features. Trained on both labels at once (the sum of the two
cross-entropies); its record holds ``test_accuracy`` (content) and ``motion_accuracy``.

Training (the network, the recipe and the loop): :mod:`vaelab.classifier_training`, whose names this
module re-exports.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .classifier_training import (  # noqa: F401 (re-exported: the tests and the rest of vaelab look here)
    RECIPES, USER_MAX_EPOCHS, USER_UPDATES, Recipe, accuracy, default_recipe, make_net, n_motions, train_classifier)
from .data import Dataset, LazyImages, dsprites, load_dataset, sources, to_tensor, user
from .errors import DataError
from .io import atomic_write_bytes, atomic_write_json
from .nn.classifier import FEATURE_DIM, ClassifierNet
from .nn.utils import batched
from .provenance import now, versions


def data_hash(ds: Dataset) -> str:
    """sha256 over the training images' shape and bytes and the labels' bytes. Images drawn on demand
    (dsprites' :class:`~vaelab.data.LazyImages`) are hashed by what determines them (their rows and their
    source: :meth:`~vaelab.data.LazyImages.update_hash`) rather than made into one array."""
    h = hashlib.sha256()
    h.update(repr(tuple(ds.images.shape)).encode())
    if isinstance(ds.images, LazyImages):
        ds.images.update_hash(h)
    else:
        h.update(np.ascontiguousarray(ds.images).tobytes())
    h.update(np.ascontiguousarray(ds.labels.astype(np.int64)).tobytes())
    return h.hexdigest()


class Classifier:
    """A trained :class:`ClassifierNet` (eval mode) with batched, no-grad helpers and its record ``meta``."""

    def __init__(self, net: ClassifierNet, meta: dict[str, Any]):
        self.net = net.eval()
        self.meta = meta

    @property
    def test_accuracy(self) -> float:
        return float(self.meta["test_accuracy"])

    @property
    def n_classes(self) -> int:
        return int(self.net.out.out_features)

    @property
    def is_judge(self) -> bool:
        """Whether this is a sequence judge (it also predicts motion)."""
        return hasattr(self.net, "motion_logits")

    @torch.no_grad()
    def predict_motion(self, sequences: torch.Tensor | np.ndarray, batch_size: int = 500) -> np.ndarray:
        """A judge's predicted motion class (N,) int64 of sequences in [0, 1] (uint8 scaled)."""
        if not self.is_judge:
            raise TypeError("predict_motion needs a sequence judge")
        x = torch.as_tensor(sequences).cpu()
        x = to_tensor(x) if x.dtype == torch.uint8 else x
        return batched(lambda i, j: self.net.motion_logits(x[i:j].float()).argmax(1), x.shape[0], batch_size).cpu().numpy()

    @torch.no_grad()
    def run(self, images: torch.Tensor | np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, 128) float64, class probabilities (N, n_classes) float64) of images in [0, 1].

        uint8 arrays are scaled to [0, 1] first; tensors on another device are brought to the CPU."""
        x = torch.as_tensor(images).cpu()
        if x.dtype == torch.uint8:
            x = to_tensor(x)
        feats, probs = [], []
        for i in range(0, x.shape[0], batch_size):
            f = self.net.features(x[i:i + batch_size].float())
            feats.append(f.double())
            probs.append(torch.softmax(self.net.out(f).double(), dim=1))
        if not feats:
            return np.zeros((0, FEATURE_DIM)), np.zeros((0, self.n_classes))
        return torch.cat(feats).cpu().numpy(), torch.cat(probs).cpu().numpy()

    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
        """Predicted classes (N,) int64."""
        return self.run(images, batch_size)[1].argmax(1)


# ----- the cache --------------------------------------------------------------------------------
ARCH = "ClassifierNet-v1"  # bump when ClassifierNet changes: cached weights of another architecture are retrained
JUDGE_ARCH = "SequenceJudgeNet-v5"  # the same for the sequence judge


def classifier_dir() -> Path:
    return sources.cache_dir() / "classifiers"


def cache_stem(dataset: str, recipe: Recipe) -> str:
    """``<dataset>`` for the dataset's standard recipe, ``<dataset>-<recipe hash>`` for any other."""
    if user.is_user_spec(dataset) or (dsprites.is_spec(dataset) and dataset != "dsprites"):
        return f"{user.short_name(dataset)}-{recipe.tag()}"
    return dataset if recipe == default_recipe(dataset) else f"{dataset}-{recipe.tag()}"


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _expected(train_set: Dataset, test_set: Dataset, recipe: Recipe) -> dict[str, Any]:
    return {"arch": JUDGE_ARCH if train_set.is_sequence else ARCH, "recipe": recipe.to_dict(), "data_sha256": data_hash(train_set), "test_sha256": data_hash(test_set)}


def _try_load(stem: str, expected: dict[str, Any]) -> tuple[Classifier | None, str]:
    """The cached classifier if it matches ``expected``; else (None, why not)."""
    d = classifier_dir()
    jpath, wpath = d / f"{stem}.json", d / f"{stem}.safetensors"
    if not jpath.is_file() or not wpath.is_file():
        return None, "not cached"
    try:
        meta = json.loads(jpath.read_text())
        for k, v in expected.items():
            if meta.get(k) != v:
                return None, f"cached {k} does not match (the {'data' if 'sha' in k else k} changed)"
        blob = wpath.read_bytes()
        if _sha256(blob) != meta.get("weights_sha256"):
            return None, "cached weights do not match their record"
        net = make_net(tuple(meta["shape"]), int(meta["n_classes"]), int(meta.get("n_motions", 0)))
        net.load_state_dict(st_load(blob), strict=True)
    except Exception as e:  # unreadable or inconsistent cache entry: retrain rather than trust it
        return None, f"cached classifier unreadable ({type(e).__name__}: {e})"
    return Classifier(net, meta), "cached"


def obtain(
    train_set: Dataset,
    test_set: Dataset,
    recipe: Recipe | None = None,
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
) -> Classifier:
    """The reference classifier for ``train_set``'s dataset: from the cache when its recorded data hash,
    recipe and weights match, else trained now and cached (weights, then JSON; both atomic)."""
    recipe = recipe or default_recipe(train_set.name, len(train_set))
    stem = cache_stem(train_set.name, recipe)
    expected = _expected(train_set, test_set, recipe)
    if not retrain:
        clf, why = _try_load(stem, expected)
        if clf is not None:
            return clf
        if log and why != "not cached":
            log(f"classifier {stem}: {why}; retraining")
    if log:
        log(f"classifier {stem}: training on {len(train_set)} images ({recipe.epochs} epochs)")
    t0 = time.perf_counter()
    net = train_classifier(train_set, recipe, log)
    seconds = time.perf_counter() - t0
    acc = accuracy(net, test_set.images, test_set.labels)
    extra = {}
    if test_set.is_sequence:
        extra = {"n_motions": n_motions(test_set),
                 "motion_accuracy": float((Classifier(net, {}).predict_motion(test_set.images) == test_set.factors["motion"]).mean())}
    blob = st_save({k: v.contiguous() for k, v in net.state_dict().items()})
    meta = {**expected, "dataset": train_set.name, "stem": stem, "test_accuracy": acc,
            "n_train": len(train_set) if recipe.n_train <= 0 else min(recipe.n_train, len(train_set)),
            "n_test": len(test_set), "shape": list(train_set.shape), "n_classes": int(train_set.n_classes),
            "feature_dim": FEATURE_DIM, "train_seconds": round(seconds, 2), "torch_threads": torch.get_num_threads(),
            "weights_sha256": _sha256(blob), "created": now(), "versions": versions(), **extra}
    d = classifier_dir()
    atomic_write_bytes(d / f"{stem}.safetensors", blob)
    atomic_write_json(d / f"{stem}.json", meta)
    if log:
        motion = f", motion {extra['motion_accuracy']:.4f}" if extra else ""
        log(f"classifier {stem}: test accuracy {acc:.4f}{motion} ({seconds:.0f}s); cached in {d}")
    return Classifier(net, meta)


def load_or_train(
    dataset: str,
    data_dir: str | None = None,
    recipe: Recipe | None = None,
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
    image_size: int | None = None,
) -> Classifier:
    """The reference classifier of dataset ``dataset`` (``mnist``, ``fashion-mnist``, ``mnist-5k``, or a
    labelled ``folder:``/``npz:`` dataset, at ``image_size``), trained on its training split on first
    use and cached; see :func:`obtain`."""
    sequences = (recipe or default_recipe(dataset)).sequences or None  # 0 for every image dataset
    train_set = load_dataset(dataset, "train", data_dir, image_size=image_size, sequences=sequences)
    test_set = load_dataset(dataset, "test", data_dir, image_size=image_size)
    if len(train_set) == 0 or len(test_set) == 0:
        raise DataError(f"{dataset}: empty split; cannot train a classifier")
    if not train_set.labelled:
        raise DataError(f"{dataset}: has no labels; a reference classifier needs them")
    return obtain(train_set, test_set, recipe, retrain, log)
