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

import functools
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .factors import FactorSampler

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


class PackedImages(LazyImages):
    """Rows ``rows`` of ``packed`` (M, 64, 8), binary images packed 8 pixels a byte, unpacked when indexed."""

    def __init__(self, packed: np.ndarray, rows: np.ndarray):
        super().__init__(rows)
        self.packed = packed

    def _make(self, rows: np.ndarray) -> np.ndarray:
        return (np.unpackbits(self.packed[rows], axis=-1) * np.uint8(255))[:, None]

    def _view(self, rows: np.ndarray) -> "PackedImages":
        return PackedImages(self.packed, rows)

    def _hash_source(self, h) -> None:
        """Every image of the file, packed (an eighth of its pixels' bytes; about a second for the original)."""
        h.update(repr(self.packed.shape).encode())
        h.update(np.ascontiguousarray(self.packed).data)


# ----- the original file ------------------------------------------------------------------------
def _read_imgs(f, path: Path) -> np.ndarray:
    """The ``imgs.npy`` member, streamed into packed bits (N, 64, 8)."""
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(f)
    if len(shape) != 3 or tuple(shape[1:]) != (SIZE, SIZE) or dtype != np.uint8 or fortran:
        raise DataError(f"{path}: imgs is {dtype} {shape}; expected uint8 (N, {SIZE}, {SIZE})")
    packed = np.empty((shape[0], SIZE, SIZE // 8), dtype=np.uint8)
    step = 8192
    for lo in range(0, shape[0], step):
        k = min(step, shape[0] - lo)
        buf = f.read(k * SIZE * SIZE)
        if len(buf) != k * SIZE * SIZE:
            raise DataError(f"{path}: imgs is truncated (ends before image {lo + len(buf) // (SIZE * SIZE)} of {shape[0]})")
        a = np.frombuffer(buf, dtype=np.uint8).reshape(k, SIZE, SIZE)
        if a.max(initial=0) > 1:
            raise DataError(f"{path}: imgs holds values other than 0 and 1 (e.g. {int(a.max())})")
        packed[lo:lo + k] = np.packbits(a, axis=-1)
    return packed


def _read_classes(f, path: Path, n: int) -> np.ndarray:
    """The ``latents_classes`` member as the combination of each image (n,)."""
    lc = np.lib.format.read_array(f, allow_pickle=False)
    if lc.ndim != 2 or lc.shape[1] != 1 + len(FACTOR_SIZES) or not np.issubdtype(lc.dtype, np.integer):
        raise DataError(f"{path}: latents_classes is {lc.dtype} {lc.shape}; expected integers (N, 6)")
    if lc.shape[0] != n:
        raise DataError(f"{path}: latents_classes has {lc.shape[0]} rows but imgs has {n} images")
    if (lc[:, 0] != 0).any():
        raise DataError(f"{path}: latents_classes column 0 (color) must be 0 everywhere")
    try:
        combos = combination_index(lc[:, 1:])
    except ValueError as e:
        raise DataError(f"{path}: latents_classes: {e}") from None
    if np.unique(combos).size != n:
        raise DataError(f"{path}: latents_classes repeats a factor combination")
    return combos


@functools.lru_cache(maxsize=2)
def _read_file(path: str, stamp: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            for key in FILE_KEYS:
                if key + ".npy" not in names:
                    found = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "none"
                    raise DataError(f"{p}: no array named {key!r} (found: {found})")
            with z.open("imgs.npy") as f:
                packed = _read_imgs(f, p)
            with z.open("latents_classes.npy") as f:
                combos = _read_classes(f, p, packed.shape[0])
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None
    packed.flags.writeable = combos.flags.writeable = False
    return packed, combos


def read_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images packed 8 pixels a byte (N, 64, 8), combination of each (N,)) of an original dSprites
    .npz; a one-line DataError naming the file and the missing or bad array. Cached per file version."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found (--dataset dsprites:FILE)")
    st = p.stat()
    return _read_file(str(p), (st.st_mtime_ns, st.st_size))


def _lookup(combos: np.ndarray) -> np.ndarray:
    """int64 (737,280,): the row of each combination in ``combos``, −1 where absent."""
    table = np.full(N_COMBINATIONS, -1, dtype=np.int64)
    table[combos] = np.arange(combos.shape[0])
    return table


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
