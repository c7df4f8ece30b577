"""Reader for the IDX format of MNIST and Fashion-MNIST (LeCun et al.), with validation.

Every problem is reported as a one-line :class:`DataError` naming the file.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

_DTYPES = {0x08: np.uint8}


def read_bytes(path: str | os.PathLike) -> bytes:
    """Raw (uncompressed) bytes of an IDX file, gzip or not (decided by the magic bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip stream ({e})") from None
    return raw


def parse_idx(raw: bytes, name: str, ndim: int) -> np.ndarray:
    """Parse IDX bytes into an array with ``ndim`` dimensions (1 for labels, 3 for images)."""
    if len(raw) < 4:
        raise DataError(f"{name}: truncated file ({len(raw)} bytes, no IDX header)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: wrong magic number 0x{raw[:4].hex()} (not an IDX file)")
    dtype_code, nd = raw[2], raw[3]
    if dtype_code not in _DTYPES:
        raise DataError(f"{name}: unsupported IDX element type 0x{dtype_code:02x} (expected 0x08, unsigned byte)")
    if nd != ndim:
        raise DataError(f"{name}: wrong dims: header says {nd} dimensions, expected {ndim}")
    header = 4 + 4 * nd
    if len(raw) < header:
        raise DataError(f"{name}: truncated file (header needs {header} bytes, got {len(raw)})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd))
    count = int(np.prod(shape))
    body = len(raw) - header
    if body < count:
        raise DataError(f"{name}: truncated file (shape {shape} needs {count} data bytes, got {body})")
    if body > count:
        raise DataError(f"{name}: {body - count} unexpected trailing bytes after shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(shape)


def load_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from an IDX image/label file pair."""
    images = parse_idx(read_bytes(images_path), str(images_path), 3)
    labels = parse_idx(read_bytes(labels_path), str(labels_path), 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{labels_path}: count mismatch: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}"
        )
    return images[:, None, :, :].copy(), labels.astype(np.int64)
