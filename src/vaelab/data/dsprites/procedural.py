"""Procedural dSprites: the factors, their combinations and splits, and the drawing rule
(:mod:`vaelab.data.dsprites` describes them); images made on demand (:class:`LazyImages`).
"""
from __future__ import annotations

import functools

import numpy as np

from ...errors import DataError

SIZE = 64
SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
N_COMBINATIONS = int(np.prod(FACTOR_SIZES))  # 737,280
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.arange(40) * (2 * np.pi / 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
LOW, SPAN, HALF = 10.0, 44.0, 7.0  # the centre's range [LOW, LOW + SPAN] px; h = HALF·scale px
HEART_GAIN, HEART_SHIFT = 1.14, 0.12
TEST_SIZE = 10_000
SEED = 2017
MAX_EAGER = 65_536  # the most images np.asarray may make of on-demand images (256 MiB)
PREFIX = "dsprites:"
FILE_KEYS = ("imgs", "latents_classes")
HASH_ROWS = 256  # images drawn to fingerprint the drawing rule (LazyImages.update_hash)
_CHUNK = 512  # images drawn at once (keeps the float32 grids in cache)
_WINDOW = 24  # the side of the square of pixels tested around a sprite's centre
_COS, _SIN = np.cos(ORIENTATIONS).astype(np.float32), np.sin(ORIENTATIONS).astype(np.float32)
_RADIX = np.array([int(np.prod(FACTOR_SIZES[k + 1:])) for k in range(len(FACTOR_SIZES))], dtype=np.int64)


# ----- factors ----------------------------------------------------------------------------------
def check_factors(factors: np.ndarray) -> np.ndarray:
    """``factors`` as int64 (n, 5), or a ValueError naming what is wrong."""
    f = np.asarray(factors)
    if f.ndim != 2 or f.shape[1] != len(FACTOR_SIZES) or not (np.issubdtype(f.dtype, np.integer) or f.size == 0):
        raise ValueError(f"factors must be an integer array (n, {len(FACTOR_SIZES)}), got {f.dtype} {f.shape}")
    f = f.astype(np.int64)
    bad = (f < 0) | (f >= np.asarray(FACTOR_SIZES))
    if bad.any():
        k = int(np.flatnonzero(bad.any(0))[0])
        raise ValueError(f"factors: {FACTOR_NAMES[k]} must be in 0..{FACTOR_SIZES[k] - 1}, got {int(f[bad[:, k], k][0])}")
    return f


def combination_index(factors: np.ndarray) -> np.ndarray:
    """int64 (n,) combination of each row of factors (n, 5)."""
    return check_factors(factors) @ _RADIX


def combination_factors(index: np.ndarray) -> np.ndarray:
    """int64 (n, 5) factors of combinations ``index`` (n,)."""
    index = np.asarray(index, dtype=np.int64)
    return (index[:, None] // _RADIX) % np.asarray(FACTOR_SIZES)


def factor_values(factors: np.ndarray) -> dict[str, np.ndarray]:
    """The factors' values: shape index, scale, orientation (radians), posX, posY in [0, 1]."""
    f = check_factors(factors)
    return {"shape": f[:, 0], "scale": SCALES[f[:, 1]], "orientation": ORIENTATIONS[f[:, 2]],
            "posX": POSITIONS[f[:, 3]], "posY": POSITIONS[f[:, 4]]}


@functools.lru_cache(maxsize=1)
def train_order() -> np.ndarray:
    """The training split's combinations: a permutation of all of them, seeded with SEED (read-only)."""
    order = np.random.default_rng(SEED).permutation(N_COMBINATIONS)
    order.flags.writeable = False
    return order


@functools.lru_cache(maxsize=1)
def test_combinations() -> np.ndarray:
    """The test split's TEST_SIZE combinations, in the order drawn (read-only)."""
    pick = np.random.default_rng(SEED + 1).choice(N_COMBINATIONS, TEST_SIZE, replace=False)
    pick.flags.writeable = False
    return pick


# ----- drawing ----------------------------------------------------------------------------------
def _draw(f: np.ndarray) -> np.ndarray:
    """bool (b, 64, 64) ink of factors f (b, 5); the inside tests run on the _WINDOW² pixels around
    each centre, which hold the whole sprite (it reaches at most √2·7 < 10 px from its centre)."""
    b = f.shape[0]
    h = (HALF * SCALES[f[:, 1]]).astype(np.float32)[:, None]
    cx = (LOW + SPAN * POSITIONS[f[:, 3]]).astype(np.float32)[:, None]
    cy = (LOW + SPAN * POSITIONS[f[:, 4]]).astype(np.float32)[:, None]
    cols = np.clip(np.floor(cx).astype(np.int64) - _WINDOW // 2, 0, SIZE - _WINDOW) + np.arange(_WINDOW)  # (b, W)
    rows = np.clip(np.floor(cy).astype(np.int64) - _WINDOW // 2, 0, SIZE - _WINDOW) + np.arange(_WINDOW)
    dx = ((cols.astype(np.float32) + 0.5 - cx) / h)[:, None, :]  # (b, 1, W): right, in units of h
    dy = ((cy - rows.astype(np.float32) - 0.5) / h)[:, :, None]  # (b, W, 1): up
    c, s = _COS[f[:, 2]][:, None, None], _SIN[f[:, 2]][:, None, None]
    p = c * dx + s * dy  # (b, W, W): the offset rotated by −orientation
    q = c * dy - s * dx
    ink = np.empty(p.shape, dtype=bool)
    for k in range(len(SHAPES)):
        sel = np.flatnonzero(f[:, 0] == k)
        if sel.size == 0:
            continue
        pk, qk = p[sel], q[sel]
        if k == 0:
            ink[sel] = (np.abs(pk) <= 1) & (np.abs(qk) <= 1)
        elif k == 1:
            ink[sel] = pk * pk + 4 * qk * qk <= 1
        else:
            x2 = np.square(pk * HEART_GAIN)
            y = qk * HEART_GAIN + HEART_SHIFT
            t = x2 + y * y - 1
            ink[sel] = t * t * t <= x2 * (y * y * y)
    out = np.zeros((b, SIZE, SIZE), dtype=bool)
    out[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]] = ink
    return out


def render(factors: np.ndarray) -> np.ndarray:
    """uint8 (n, 1, 64, 64) images, 0 or 255, of factors (n, 5)."""
    f = check_factors(factors)
    out = np.empty((f.shape[0], 1, SIZE, SIZE), dtype=np.uint8)
    for lo in range(0, f.shape[0], _CHUNK):
        np.multiply(_draw(f[lo:lo + _CHUNK]), np.uint8(255), out=out[lo:lo + _CHUNK, 0], dtype=np.uint8)
    return out


# ----- images on demand -------------------------------------------------------------------------
class LazyImages:
    """A read-only uint8 (N, 1, 64, 64) array-like whose rows are made when indexed: an int gives one
    image (1, 64, 64), a slice or an integer/boolean index array gives (k, 1, 64, 64). ``rows`` (N,)
    says which images of the source the rows are; :meth:`take` is a view on some of them."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, rows: np.ndarray):
        self.rows = np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (int(self.rows.shape[0]), 1, SIZE, SIZE)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def _make(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _view(self, rows: np.ndarray) -> "LazyImages":
        raise NotImplementedError

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._make(self.rows[[int(key)]])[0]
        if isinstance(key, slice):
            return self._make(self.rows[key])
        idx = np.asarray(key)
        if idx.dtype != bool and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{type(self).__name__} takes an int, a slice or an integer/boolean index array, not {key!r}")
        return self._make(self.rows[idx])

    def take(self, rows) -> "LazyImages":
        """The images at ``rows`` (a slice or an index array), still made on demand."""
        return self._view(self.rows[rows])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if len(self) > MAX_EAGER:
            raise DataError(f"dsprites: the {len(self):,} training images are drawn on demand and are not made into one "
                            f"array ({len(self) * SIZE * SIZE / 2**30:.1f} GiB); index them in batches, or give "
                            f"--train-size {MAX_EAGER} or less")
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"

    def update_hash(self, h) -> None:
        """Feed what determines these images into the hashlib object ``h``, without making them all:
        the class, the rows, and what the subclass draws them from (:meth:`_hash_source`)."""
        h.update(type(self).__name__.encode())
        h.update(np.ascontiguousarray(self.rows).tobytes())
        self._hash_source(h)

    def _hash_source(self, h) -> None:
        raise NotImplementedError


class ProceduralImages(LazyImages):
    """The images of combinations ``rows``, drawn by :func:`render` when indexed; holds only ``rows``."""

    def _make(self, rows: np.ndarray) -> np.ndarray:
        return render(combination_factors(rows))

    def _view(self, rows: np.ndarray) -> "ProceduralImages":
        return ProceduralImages(rows)

    def _hash_source(self, h) -> None:
        """The drawing rule, by its output: HASH_ROWS images spread over the rows (a changed renderer
        changes them), drawn now; the rows themselves fix everything else."""
        pick = np.linspace(0, len(self) - 1, min(HASH_ROWS, len(self))).astype(np.int64)
        h.update(self[pick].tobytes())
