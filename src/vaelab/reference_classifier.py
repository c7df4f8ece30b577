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
CPU (benchmarks/README.md, "Reference classifier").

Sequence datasets (Moving MNIST) get a **judge** instead (``SequenceJudgeNet``, the S3VAE paper's
evaluation classifier): every frame through a small conv trunk; the content (digit) logits from
position-invariant frame features averaged over frames (the 128-d features behind FID-style
metrics), the motion (direction) logits from an MLP over the frames' position-keeping features. Trained on both labels at once (the sum of the
two cross-entropies); its record holds ``test_accuracy`` (content) and ``motion_accuracy``.

Recipe (``Recipe``): AdamW (weight decay 1e-4), one-cycle learning rate peaking at 3e-3, batch 128,
random translations of up to ±``shift`` pixels, a fixed seed; epochs per dataset in ``RECIPES``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.nn import functional as F

from .data import Dataset, load_dataset, sources, to_tensor
from .errors import DataError
from .io import atomic_write_bytes, atomic_write_json
from .nn.judge import SequenceJudgeNet
from .nn.utils import batched

FEATURE_DIM = 128


class ClassifierNet(nn.Module):
    """A small CNN: images (B, C, 28, 28) in [0, 1] → logits (B, n_classes); ``features`` gives (B, 128)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, size: tuple[int, int] = (28, 28)):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, stride=2, padding=2), nn.BatchNorm2d(32), nn.ReLU(),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 5, stride=2, padding=2), nn.BatchNorm2d(64), nn.ReLU(),  # (B, 64, H/4, W/4)
            nn.Flatten(),
            nn.Linear(64 * (size[0] // 4) * (size[1] // 4), FEATURE_DIM), nn.ReLU(),
        )
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.float() - 0.5)  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(x)))  # (B, n_classes)


def make_net(shape: tuple[int, ...], n_classes: int, n_motions: int = 0) -> nn.Module:
    """The classifier of data of ``shape``: :class:`ClassifierNet` for images (C, H, W), the
    :class:`SequenceJudgeNet` for sequences (T, C, H, W) with ``n_motions`` direction classes."""
    if len(shape) == 4:
        return SequenceJudgeNet(tuple(shape), n_classes, n_motions)
    return ClassifierNet(shape[0], n_classes, tuple(shape[1:]))


@dataclass(frozen=True)
class Recipe:
    """How a reference classifier is trained. ``n_train`` (0 = all) trains on the first n images only."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    shift: int = 2  # random translation of up to ±shift pixels (zero padded)
    seed: int = 0
    n_train: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def tag(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]


# Per dataset. Measured test accuracies: benchmarks/README.md, "Reference classifier" (and each cached classifier's JSON).
RECIPES = {
    "mnist": Recipe(epochs=6),
    "fashion-mnist": Recipe(epochs=10, shift=0),  # centred garments: translations cost accuracy here
    "mnist-5k": Recipe(epochs=25),  # 4,000 training images: more passes for a comparable number of steps
    "moving-mnist": Recipe(epochs=8, batch_size=64, shift=0),  # the judge (sequences already move)
    "moving-mnist-5k": Recipe(epochs=20, batch_size=64, shift=0),
}


#: The user's datasets (folder:, npz:): as many epochs as give about this many updates (as mnist-5k's
#: recipe does), within [Recipe().epochs, USER_MAX_EPOCHS].
USER_UPDATES = 800
USER_MAX_EPOCHS = 200


def default_recipe(dataset: str, n_train: int | None = None) -> Recipe:
    """The recipe of a built-in dataset; for another with ``n_train`` training images, the default
    recipe with enough epochs for about USER_UPDATES updates."""
    if dataset in RECIPES or not n_train:
        return RECIPES.get(dataset, Recipe())
    base = Recipe()
    per_epoch = math.ceil(n_train / base.batch_size)
    return dataclasses.replace(base, epochs=min(USER_MAX_EPOCHS, max(base.epochs, math.ceil(USER_UPDATES / per_epoch))))


def data_hash(ds: Dataset) -> str:
    """sha256 over the training images' shape and bytes and the labels' bytes."""
    h = hashlib.sha256()
    h.update(repr(tuple(ds.images.shape)).encode())
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
        return batched(lambda i, j: self.net.motion_logits(x[i:j].float()).argmax(1), x.shape[0], batch_size).numpy()

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
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
        """Predicted classes (N,) int64."""
        return self.run(images, batch_size)[1].argmax(1)


# ----- training ---------------------------------------------------------------------------------
def _shift(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Translate each image by an independent random offset in [-s, s]² (zero padding)."""
    if s <= 0:
        return x
    if x.dim() != 4:  # sequences: no translation augmentation
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=g)
    rows = dy[:, None, None] + torch.arange(h)[None, :, None]  # (B, H, 1)
    cols = dx[:, None, None] + torch.arange(w)[None, None, :]  # (B, 1, W)
    bi = torch.arange(b)[:, None, None]
    return padded[bi, :, rows, cols].permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) → (B, C, H, W)


@torch.no_grad()
def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> float:
    net.eval()
    x = to_tensor(images)
    pred = batched(lambda i, j: net(x[i:j]).argmax(1), x.shape[0], batch_size)
    return int((pred.numpy() == labels).sum()) / max(len(labels), 1)


def n_motions(ds: Dataset) -> int:
    """The number of motion classes of a sequence dataset (0 for images)."""
    if not ds.is_sequence:
        return 0
    from .data.moving_mnist import N_MOTIONS

    return N_MOTIONS


def train_classifier(train_set: Dataset, recipe: Recipe, log: Callable[[str], None] | None = None) -> ClassifierNet:
    """Train a :class:`ClassifierNet` on ``train_set`` with ``recipe``.

    Bitwise deterministic on CPU for a given seed and thread count (a different thread count sums in a
    different order, which can change the test accuracy slightly; see benchmarks/README.md)."""
    n = len(train_set) if recipe.n_train <= 0 else min(recipe.n_train, len(train_set))
    x = to_tensor(train_set.images[:n])
    y = torch.as_tensor(train_set.labels[:n])
    motion = torch.as_tensor(train_set.factors["motion"][:n]) if train_set.is_sequence else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = make_net(train_set.shape, int(train_set.n_classes), n_motions(train_set))
        g = torch.Generator().manual_seed(recipe.seed + 1)
        steps_per_epoch = math.ceil(n / recipe.batch_size)
        opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(recipe.epochs * steps_per_epoch, 1))
        for epoch in range(recipe.epochs):
            net.train()
            perm = torch.randperm(n, generator=g)
            t0, tot = time.perf_counter(), 0.0
            for b in range(steps_per_epoch):
                idx = perm[b * recipe.batch_size:(b + 1) * recipe.batch_size]
                if motion is None:
                    loss = F.cross_entropy(net(_shift(x[idx], recipe.shift, g)), y[idx])
                else:
                    content, moves = net.both(x[idx])
                    loss = F.cross_entropy(content, y[idx]) + F.cross_entropy(moves, motion[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * idx.numel()
            if log:
                log(f"classifier {train_set.name} epoch {epoch + 1}/{recipe.epochs}: loss {tot / n:.4f} ({time.perf_counter() - t0:.1f}s)")
    return net.eval()


# ----- the cache --------------------------------------------------------------------------------
ARCH = "ClassifierNet-v1"  # bump when ClassifierNet changes: cached weights of another architecture are retrained
JUDGE_ARCH = "SequenceJudgeNet-v2"  # the same for the sequence judge


def classifier_dir() -> Path:
    return sources.cache_dir() / "classifiers"


def cache_stem(dataset: str, recipe: Recipe) -> str:
    """``<dataset>`` for the dataset's standard recipe, ``<dataset>-<recipe hash>`` for any other."""
    from .data import user

    if user.is_user_spec(dataset):
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
    from .provenance import now, versions

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
    train_set = load_dataset(dataset, "train", data_dir, image_size=image_size)
    test_set = load_dataset(dataset, "test", data_dir, image_size=image_size)
    if len(train_set) == 0 or len(test_set) == 0:
        raise DataError(f"{dataset}: empty split; cannot train a classifier")
    if not train_set.labelled:
        raise DataError(f"{dataset}: has no labels; a reference classifier needs them")
    return obtain(train_set, test_set, recipe, retrain, log)
