"""The original dSprites file (``dsprites:FILE``): read streaming into packed bits, its images made on
demand (:class:`PackedImages`)."""
from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np

from ...errors import DataError
from .procedural import FACTOR_SIZES, FILE_KEYS, N_COMBINATIONS, SIZE, LazyImages, combination_index


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
