"""Procedural dSprites: the 737,280 binary 64×64 sprites of Matthey et al. (2017), drawn on demand.

**Factors** (``FACTOR_NAMES``, ``FACTOR_SIZES`` = (3, 6, 40, 32, 32)), each a class index 0..size−1:

* ``shape``: square, ellipse, heart (``SHAPES``);
* ``scale``: 6 values linearly spaced in [0.5, 1];
* ``orientation``: 40 angles k·2π/40 in [0, 2π), counter-clockwise as displayed;
* ``posX``, ``posY``: 32 values linearly spaced in [0, 1]; posX = 0 is the left, posY = 0 the top.

The original's sixth factor, ``color``, has a single value; it is left out of the factors everywhere here
(of ``FACTOR_SIZES``, of ``Dataset.factors`` and of the sampler), since a constant tells a metric nothing.
Combination c has the mixed-radix digits of the factors, posY fastest, as the original file orders them.

**Drawing rule** (pixel (row, col) covers [row, row+1) × [col, col+1); a pixel is ink, 255, when its
centre is inside the sprite, else 0). The sprite's centre is at x = 10 + 44·posX, y = 10 + 44·posY
pixels (the central 44×44 pixels; one posX step is 44/31 ≈ 1.42 px). With h = 7·scale pixels and
(p, q) the pixel centre's offset from the sprite's centre in units of h, rotated by −orientation
(q pointing up on screen), the sprite is:

* square: max(|p|, |q|) ≤ 1 — 14×14 px at scale 1, about a fifth of the canvas;
* ellipse: p² + (2q)² ≤ 1 — axes 2h along the orientation and h across it;
* heart: (x² + y² − 1)³ ≤ x²·y³ with x = 1.14·p, y = 1.14·q + 0.12 (the implicit heart curve,
  lobes up at orientation 0, filling about the same 2h × 2h box).

Rendering is vectorised numpy over a batch (float32 coordinate grids); it is deterministic.

**Splits.** The original has none. ``train`` is all 737,280 combinations in a fixed order (a
permutation seeded with ``SEED``, so ``--train-size N`` takes a uniform random N); ``test`` is a fixed
subset of 10,000 combinations (``TEST_SIZE``, drawn without replacement with seed SEED + 1, in the
order drawn, so any first rows are a mixed sample) — part of the training set, as disentanglement work uses the one set. Labels: the
shape (3 classes, ``SHAPES``), the one categorical factor, so label-based metrics run;
``Dataset.factors`` holds all five factors per example (int64). Training images are never held:
:class:`ProceduralImages` draws the rows it is indexed with; the test split is an ordinary array (40 MB).

**The original file.** ``dsprites:FILE`` reads ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``
(``imgs`` (N, 64, 64) uint8 0/1, ``latents_classes`` (N, 6)) streaming, bit-packed in memory (an
eighth of its 3 GB), with the same splits over the combinations it holds; :class:`DSpritesSampler`
(``FactorSampler``) then reads its images by factors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError
from ..factors import FactorSampler
from .npz import (  # noqa: F401 (re-exported: vaelab.data.dsprites is where the rest of vaelab looks)
    PackedImages, _lookup, read_file)
from .procedural import (  # noqa: F401 (re-exported: vaelab.data.dsprites is where the rest of vaelab looks)
    FACTOR_NAMES, FACTOR_SIZES, FILE_KEYS, HALF, HASH_ROWS, HEART_GAIN, HEART_SHIFT, LOW, MAX_EAGER,
    N_COMBINATIONS, ORIENTATIONS, POSITIONS, PREFIX, SCALES, SEED, SHAPES, SIZE, SPAN, TEST_SIZE, LazyImages,
    ProceduralImages, check_factors, combination_factors, combination_index, factor_values, render,
    test_combinations, train_order)


# ----- datasets ---------------------------------------------------------------------------------
def is_spec(name: object) -> bool:
    return isinstance(name, str) and (name == "dsprites" or name.startswith(PREFIX))


def check_spec(name: str, key: str = "dataset") -> None:
    if name.startswith(PREFIX) and not name[len(PREFIX):].strip():
        raise ConfigError(f"{key}: {name!r} names no file; write dsprites:FILE (the original .npz)")


def load(name: str, split: str) -> tuple[np.ndarray | LazyImages, np.ndarray, dict[str, np.ndarray]]:
    """(images, labels (the shape), factors by name) of split ``split`` of ``dsprites`` or ``dsprites:FILE``:
    on-demand images for ``train``, a uint8 array for ``test``."""
    check_spec(name)
    if name == "dsprites":
        combos = np.asarray(train_order() if split == "train" else test_combinations())
        images: np.ndarray | LazyImages = ProceduralImages(combos)
    else:
        path = name[len(PREFIX):]
        packed, file_combos = read_file(path)
        table = _lookup(file_combos)
        rows = table[train_order() if split == "train" else test_combinations()]
        rows = rows[rows >= 0]
        if rows.size == 0:
            raise DataError(f"{path}: holds none of the {TEST_SIZE:,} test combinations (see vaelab.data.dsprites)")
        images = PackedImages(packed, rows)
        combos = file_combos[rows]
    if split == "test":
        images = images[:]
    f = combination_factors(combos)
    return images, f[:, 0].copy(), {n: f[:, k].copy() for k, n in enumerate(FACTOR_NAMES)}


class DSpritesSampler:
    """:class:`FactorSampler` of dSprites: procedural, or the images of an original file (``path``).

    ``factor_sizes`` leaves out the constant color. With a file, ``sample_factors`` draws rows of the
    file, which is uniform over each factor when the file holds every combination (the original does)."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def __init__(self, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self._packed = self._combos = self._table = None
        if self.path is not None:
            self._packed, self._combos = read_file(self.path)
            self._table = _lookup(self._combos)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self._combos is not None and self._combos.shape[0] < N_COMBINATIONS:
            return combination_factors(self._combos[rng.integers(0, self._combos.shape[0], n)])
        return rng.integers(0, np.asarray(FACTOR_SIZES), size=(n, len(FACTOR_SIZES)), dtype=np.int64)

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self._table is None:
            images = render(factors)
        else:
            rows = self._table[combination_index(factors)]
            if (rows < 0).any():
                raise DataError(f"{self.path}: holds no image of factors {check_factors(factors)[rows < 0][0].tolist()}")
            images = PackedImages(self._packed, rows)[:]
        return (images > 0).astype(np.float32)


def sampler(name: str) -> FactorSampler:
    """The factor sampler of ``dsprites`` or ``dsprites:FILE``."""
    if not is_spec(name):
        raise ConfigError(f"dataset: {name!r} has no ground-truth factors; use dsprites or dsprites:FILE")
    check_spec(name)
    return DSpritesSampler(None if name == "dsprites" else name[len(PREFIX):])


__all__ = ["FactorSampler", "DSpritesSampler", "ProceduralImages", "PackedImages", "LazyImages", "render", "load",
           "sampler", "read_file", "FACTOR_NAMES", "FACTOR_SIZES", "SHAPES", "N_COMBINATIONS", "TEST_SIZE",
           "combination_index", "combination_factors", "factor_values", "train_order", "test_combinations"]
