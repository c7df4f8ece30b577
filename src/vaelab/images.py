"""Image grids written with Pillow (no torchvision)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .io import atomic_write_bytes


def grid_array(images: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] → one uint8 (H', W') or (H', W', 3) grid, ``nrow`` images per row.
    Sequences (N, T, C, H, W) give one row of T frames per sequence (``nrow`` is ignored)."""
    a = images.detach().cpu().float().numpy() if torch.is_tensor(images) else np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim == 5:
        nrow = a.shape[1]
        a = a.reshape(-1, *a.shape[2:])
    n, c, h, w = a.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / nrow))
    out = np.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = a[i]
    out = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def png_bytes(arr: np.ndarray, scale: int = 1) -> bytes:
    img = Image.fromarray(arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a PNG grid atomically."""
    atomic_write_bytes(path, png_bytes(grid_array(images, nrow), scale))
    return Path(path)


def gif_bytes(sequences: torch.Tensor | np.ndarray, nrow: int | None = None, scale: int = 2, frame_ms: int = 200) -> bytes:
    """Sequences (N, T, C, H, W) in [0, 1] → an animated GIF (looping) whose frame t is the grid of
    every sequence's frame t, ``nrow`` sequences per row."""
    a = sequences.detach().cpu().float() if torch.is_tensor(sequences) else torch.as_tensor(np.asarray(sequences, np.float32))
    if a.dim() != 5:
        raise ValueError(f"gif_bytes takes sequences (N, T, C, H, W), got shape {tuple(a.shape)}")
    frames = []
    for t in range(a.shape[1]):
        img = Image.fromarray(grid_array(a[:, t], nrow))
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        frames.append(img)
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return buf.getvalue()


def save_gif(sequences, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write an animated GIF of sequences atomically (see :func:`gif_bytes`)."""
    atomic_write_bytes(path, gif_bytes(sequences, nrow, scale))
    return Path(path)
