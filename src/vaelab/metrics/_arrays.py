"""Array plumbing shared by the metrics: anything array-like (NumPy, torch, lists) → float64 NumPy."""
from __future__ import annotations

import numpy as np


def as_f64(a, name: str = "array", ndim: int | None = None) -> np.ndarray:
    """``a`` as a float64 NumPy array (torch tensors are detached and moved to CPU first)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        if hasattr(a, "double"):
            a = a.double()
        a = a.cpu().numpy()
    out = np.asarray(a, dtype=np.float64)
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {out.shape}")
    return out


def as_int(a, name: str = "array") -> np.ndarray:
    """``a`` as a 1-d int64 NumPy array."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    out = np.asarray(a)
    if out.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {out.shape}")
    if not np.issubdtype(out.dtype, np.integer):
        if not np.all(np.mod(out, 1) == 0):
            raise ValueError(f"{name}: expected integer labels")
        out = out.astype(np.int64)
    return out.astype(np.int64, copy=False)
