"""The user's own image datasets: ``folder:DIR`` and ``npz:FILE[,TEST_FILE]``.

Both become the same in-memory uint8 (N, C, H, W) arrays as the built-in datasets.

``folder:DIR``
    PNG/JPEG/BMP/GIF/TIFF/WebP files read with Pillow. Either one sub-folder per class (the class
    names, sorted, give labels 0..K-1) or the images directly in DIR (no labels). When DIR holds
    ``train/`` and ``test/`` sub-folders they are the two splits; otherwise the split is fixed by
    :func:`holdout` (10% of each class, at least one image, chosen by a seeded permutation of the
    sorted file names).
``npz:FILE`` or ``npz:FILE,TEST_FILE``
    A NumPy ``.npz`` with ``x`` of shape (N, H, W) or (N, H, W, C) (C = 1 or 3), uint8 or floats in
    [0, 1] (stored as round(255·x)), and optionally ``y`` (N,) integer labels 0..K-1. The test split
    is ``x_test``/``y_test`` in the same file, else the arrays of TEST_FILE, else :func:`holdout`.

Colour: greyscale images give C = 1; if any image of a folder has colour, all are converted to RGB
(C = 3). Size: every image must have the same size unless ``image_size`` is given, in which case
each is resized to ``image_size`` × ``image_size`` with Pillow's bilinear filter (antialiased when
shrinking). Any bad input is a one-line :class:`vaelab.errors.DataError` naming the file.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError

PREFIXES = ("folder:", "npz:")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 20200101
UNLABELLED = -1  # the label of every image of an unlabelled dataset


def is_user_spec(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIXES)


def check_spec(name: str, key: str = "dataset") -> None:
    """A ConfigError unless ``name`` is ``folder:DIR`` or ``npz:FILE[,TEST]`` with something after the colon."""
    kind, _, rest = name.partition(":")
    if not rest.strip():
        raise ConfigError(f"{key}: {name!r} names no path; write {kind}:PATH")


def short_name(name: str) -> str:
    """A file-name-safe stem for caches: ``folder-<last part>-<hash of the spec>``."""
    kind, _, rest = name.partition(":")
    tail = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(rest.split(",")[0]).stem)[:40]
    return f"{kind}-{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def holdout(labels: np.ndarray, fraction: float = HOLDOUT_FRACTION) -> np.ndarray:
    """Boolean mask of the test rows: within each class (or all rows when unlabelled), ``fraction``
    of the rows (at least one, and never all of a class of two or more) picked by a permutation
    seeded with HOLDOUT_SEED."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    test = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * rows.size))) if rows.size > 1 else 0
        test[rows[rng.permutation(rows.size)[:k]]] = True
    return test


def _fit(arr: np.ndarray, image_size: int | None, where: str) -> np.ndarray:
    """(N, C, H, W) uint8, resized to image_size² when given."""
    if image_size is None or arr.shape[2:] == (image_size, image_size):
        return arr
    out = np.empty((arr.shape[0], arr.shape[1], image_size, image_size), dtype=np.uint8)
    for i, a in enumerate(arr):
        img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        out[i] = _as_chw(img.resize((image_size, image_size), Image.Resampling.BILINEAR), a.shape[0] == 3)
    return out


def _as_chw(img: Image.Image, rgb: bool) -> np.ndarray:
    a = np.asarray(img.convert("RGB" if rgb else "L"), dtype=np.uint8)
    return a.transpose(2, 0, 1) if rgb else a[None]


# ----- folders ----------------------------------------------------------------------------------
def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _scan(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """(files, labels, class names) of one folder: class sub-folders, or flat images (labels −1)."""
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    flat = _image_files(root)
    if subdirs and flat:
        raise DataError(f"{root}: holds both images ({flat[0].name}) and class folders ({subdirs[0].name}); use one layout")
    if not subdirs:
        if not flat:
            raise DataError(f"{root}: no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        return flat, np.full(len(flat), UNLABELLED, dtype=np.int64), []
    files, labels = [], []
    for c, d in enumerate(subdirs):
        imgs = _image_files(d)
        if not imgs:
            raise DataError(f"{d}: class folder holds no images")
        files += imgs
        labels += [c] * len(imgs)
    return files, np.asarray(labels, dtype=np.int64), [d.name for d in subdirs]


def _read_images(files: list[Path], image_size: int | None) -> np.ndarray:
    """Decode ``files`` into uint8 (N, C, H, W): C = 3 if any image has colour, else 1."""
    decoded = []
    for p in files:
        try:
            with Image.open(p) as img:
                img.load()
                decoded.append(img.copy())
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None
    rgb = any(img.mode not in GREY_MODES for img in decoded)
    if image_size is None:
        size0 = decoded[0].size
        for p, img in zip(files, decoded):
            if img.size != size0:
                raise DataError(f"{p}: is {img.size[0]}×{img.size[1]} but {files[0].name} is {size0[0]}×{size0[1]}; "
                                f"give --image-size N to resize every image to N×N")
    else:
        decoded = [img if img.size == (image_size, image_size) else
                   img.convert("RGB" if rgb else "L").resize((image_size, image_size), Image.Resampling.BILINEAR)
                   for img in decoded]
    return np.stack([_as_chw(img, rgb) for img in decoded])


def load_folder(spec: str, split: str, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory (--dataset folder:DIR)")
    if (root / "train").is_dir() and (root / "test").is_dir():
        files, labels, names = _scan(root / split)
        other = _scan(root / ("test" if split == "train" else "train"))[2]
        if names != other:
            raise DataError(f"{root}: train/ and test/ have different class folders ({names} vs {other})")
        return _read_images(files, image_size), labels, names
    files, labels, names = _scan(root)
    mask = holdout(labels)
    mask = mask if split == "test" else ~mask
    files = [f for f, m in zip(files, mask) if m]
    if not files:
        raise DataError(f"{root}: too few images for a {split} split (need at least 2 per class)")
    return _read_images(files, image_size), labels[mask], names


# ----- npz --------------------------------------------------------------------------------------
def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (--dataset npz:FILE)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def _images_from_array(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 / float in [0, 1] → uint8 (N, C, H, W)."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{path}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C = 1 or 3")
    if x.shape[0] == 0:
        raise DataError(f"{path}: {key} holds no images")
    if x.dtype == np.uint8:
        u8 = x
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"{path}: {key} is float but not within [0, 1] (min {np.nanmin(x):g}, max {np.nanmax(x):g})")
        u8 = np.round(x * 255.0).astype(np.uint8)
    else:
        raise DataError(f"{path}: {key} has dtype {x.dtype}; expected uint8 or float in [0, 1]")
    return np.ascontiguousarray(u8.transpose(0, 3, 1, 2))


def _labels_from_array(y: np.ndarray | None, n: int, path: Path, key: str) -> np.ndarray:
    if y is None:
        return np.full(n, UNLABELLED, dtype=np.int64)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {key} must be a 1-d integer array, got shape {y.shape} dtype {y.dtype}")
    if y.shape[0] != n:
        raise DataError(f"{path}: {key} has {y.shape[0]} labels but there are {n} images")
    if y.min() < 0:
        raise DataError(f"{path}: {key} holds negative labels (min {int(y.min())})")
    return y.astype(np.int64)


def load_npz(spec: str, split: str, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    parts = [p for p in spec.split(",") if p]
    if len(parts) > 2:
        raise ConfigError(f"--dataset npz:{spec}: expected npz:FILE or npz:FILE,TEST_FILE")
    path = Path(parts[0])
    z = _npz_arrays(path)
    if "x" not in z:
        raise DataError(f"{path}: no array named 'x' (found: {', '.join(sorted(z)) or 'none'})")
    if "x_test" in z and len(parts) == 2:
        raise DataError(f"{path}: holds x_test, and a test file {parts[1]} was given too; keep one")
    if split == "train" or "x_test" in z or len(parts) == 2:
        if split == "train":
            src, x, y, kx, ky = path, z["x"], z.get("y"), "x", "y"
        elif "x_test" in z:
            src, x, y, kx, ky = path, z["x_test"], z.get("y_test"), "x_test", "y_test"
        else:
            src = Path(parts[1])
            t = _npz_arrays(src)
            if "x" not in t:
                raise DataError(f"{src}: no array named 'x' (found: {', '.join(sorted(t)) or 'none'})")
            x, y, kx, ky = t["x"], t.get("y"), "x", "y"
        images = _images_from_array(x, src, kx)
        labels = _labels_from_array(y, images.shape[0], src, ky)
        if split == "train" and "x_test" not in z and len(parts) == 1:
            keep = ~holdout(labels)
            images, labels = images[keep], labels[keep]
    else:
        images = _images_from_array(z["x"], path, "x")
        labels = _labels_from_array(z.get("y"), images.shape[0], path, "y")
        mask = holdout(labels)
        images, labels = images[mask], labels[mask]
    if images.shape[0] == 0:
        raise DataError(f"{path}: too few images for a {split} split (need at least 2 per class)")
    return _fit(images, image_size, str(path)), labels, []


def load_user(name: str, split: str, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, int, tuple[str, ...]]:
    """One split of a ``folder:`` or ``npz:`` dataset: (images uint8 (N, C, H, W), labels (N,), number of
    classes (0 when unlabelled), class names)."""
    check_spec(name)
    kind, _, rest = name.partition(":")
    images, labels, names = (load_folder if kind == "folder" else load_npz)(rest, split, image_size)
    labelled = bool((labels != UNLABELLED).all())
    if not labelled and (labels != UNLABELLED).any():
        raise DataError(f"{rest}: some images have labels and some do not")
    n_classes = (max(len(names), int(labels.max()) + 1) if labelled else 0)
    return np.ascontiguousarray(images), labels, n_classes, tuple(names)
