"""Figures of the comparison report, as PNG bytes: sample grids (the seed's Figs 17/18),
reconstructions beside originals, latent traversals (Fig. 5), 2-D latent maps (Fig. 16), loss
curves and a bar chart of the main metrics.

Image grids go through :mod:`vaelab.images`; plots use matplotlib's ``Figure`` with the Agg canvas
directly (no pyplot, so no global state and no display). Every function that draws from a model
seeds its own RNG stream and leaves the global one untouched.
"""
from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch

from ..images import grid_array, png_bytes
from ..nn.utils import batched

SAMPLE_N, SAMPLE_NROW = 100, 10  # one layout for every variant; conditional variants get class = column
TRAVERSE_VALUES = np.linspace(-3.0, 3.0, 9)
MAX_TRAVERSE_DIMS = 16


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _batched(fn, x: torch.Tensor, y: torch.Tensor | None, batch: int = 500) -> torch.Tensor:
    """``fn(x_slice, y_slice)`` over batches of the rows of x (and y), concatenated."""
    return batched(lambda i, j: fn(x[i:j], None if y is None else y[i:j]), x.shape[0], batch)


# ----- image grids ------------------------------------------------------------------------------
@torch.no_grad()
def sample_grid(v, n: int = SAMPLE_N, nrow: int = SAMPLE_NROW, seed: int = 0) -> bytes:
    """``n`` prior samples in a grid of ``nrow`` columns; for a conditional variant column j is class j mod n_classes."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % nrow % v.config.n_classes if v.conditional else None
        x = v.sample(n, y=y, generator=g).float()
    return png_bytes(grid_array(x, nrow), scale=1)


@torch.no_grad()
def recon_grid(v, x: torch.Tensor, y: torch.Tensor) -> bytes:
    """Originals (top row) above their reconstructions (bottom row)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rec = v.reconstruct(x, y if v.conditional else None).float()
    return png_bytes(grid_array(torch.cat([x, rec.to(x.dtype)]), x.shape[0]), scale=1)


# ----- latent traversals (Fig. 5) -------------------------------------------------------------------
@torch.no_grad()
def traversal_image(x: torch.Tensor, first: int = 100) -> int:
    """Index of the image to traverse from: the one of median ink among the first ``first`` test images
    (a generic rule that avoids both a thin "1" and a blob)."""
    ink = x[:first].flatten(1).sum(1)
    return int(torch.argsort(ink)[(ink.shape[0] - 1) // 2])


@torch.no_grad()
def active_dims(v, x: torch.Tensor, y: torch.Tensor, k: int = MAX_TRAVERSE_DIMS) -> tuple[list[int], np.ndarray]:
    """The ``k`` latent dimensions whose posterior means vary most over ``x`` (most active first), and
    every dimension's variance."""
    mu = _batched(lambda a, b: v.encode(a, b if v.conditional else None).mean.float(), x, y).cpu().numpy()
    var = mu.var(0)
    return [int(i) for i in np.argsort(-var, kind="stable")[:k]], var


@torch.no_grad()
def traversal(v, x1: torch.Tensor, y1: torch.Tensor, dims: list[int], var: np.ndarray,
              values: np.ndarray = TRAVERSE_VALUES, title: str = "") -> bytes:
    """One row per latent dimension in ``dims``: that dimension set to each of ``values``, the others
    fixed at the posterior mean of the image ``x1`` (1, C, H, W)."""
    yc = y1 if v.conditional else None
    z0 = v.encode(x1, yc).mean.float()  # (1, D)
    zs = z0.repeat(len(dims) * len(values), 1)
    for r, d in enumerate(dims):
        zs[r * len(values):(r + 1) * len(values), d] = torch.as_tensor(values, dtype=zs.dtype)
    ys = None if yc is None else yc.repeat(zs.shape[0])
    imgs = torch.sigmoid(v.decode(zs, ys).float())
    grid = grid_array(imgs, len(values))
    h, w = grid.shape[:2]
    fig = _figure(0.8 + w / 85, 0.6 + h / 85)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    cell = (h - 2) / len(dims)
    ax.set_yticks([2 + cell * (r + 0.5) for r in range(len(dims))], [f"z{d}" for d in dims], fontsize=7)
    colw = (w - 2) / len(values)
    ax.set_xticks([2 + colw * (c + 0.5) for c in range(len(values))], [f"{val:g}" for val in values], fontsize=7)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)


# ----- latent maps (Fig. 16) ------------------------------------------------------------------------
@torch.no_grad()
def embed(v, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return _batched(lambda a, b: v.embed(a, b if v.conditional else None).float().reshape(a.shape[0], -1), x, y).cpu().numpy()


def project_2d(z: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, D) → (N, 2): as is for D ≤ 2, else t-SNE (after PCA to 50 dimensions when D > 50)."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] == 1:
        return np.concatenate([z, np.zeros_like(z)], 1), "the 1-d latent"
    if z.shape[1] == 2:
        return z, "the 2-d latent itself"
    from sklearn.manifold import TSNE

    how = f"t-SNE of the {z.shape[1]}-d latent"
    if z.shape[1] > 50:
        from sklearn.decomposition import PCA

        z = PCA(50, random_state=seed).fit_transform(z)
        how += " via PCA-50"
    perplexity = float(min(30.0, max(2.0, (z.shape[0] - 1) / 3)))
    return TSNE(2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(z), how


def latent_map(v, x: torch.Tensor, y: torch.Tensor, seed: int = 0, title: str = "") -> tuple[bytes, str]:
    """Embeddings of ``x`` coloured by label: the sphere itself for a 3-d spherical latent, the latent for
    a 2-d one, else t-SNE. Returns (PNG, how it was drawn)."""
    z = embed(v, x, y)
    labels = np.asarray(y)
    cmap = "tab10"
    fig = _figure(3.7, 3.3)
    if getattr(v, "latent_kind", "gaussian") == "sphere" and z.shape[1] == 3:
        how = "the 3-d latent on the sphere S²"
        ax = fig.add_subplot(projection="3d")
        sc = ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=labels, cmap=cmap, vmin=-0.5, vmax=9.5, s=3, depthshade=False)
        ax.set_box_aspect((1, 1, 1))
        ax.tick_params(labelsize=6)
    else:
        p, how = project_2d(z, seed)
        ax = fig.add_subplot()
        sc = ax.scatter(p[:, 0], p[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=9.5, s=3, linewidths=0)
        ax.set_xticks([])
        ax.set_yticks([])
        if how.startswith("the 2-d"):
            ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(sc, ax=ax, ticks=range(10), shrink=0.8, label="label")
    ax.set_title(f"{title}\n{how}, {len(labels)} test images" if title else how, fontsize=8)
    return _png(fig), how


# ----- loss curves and metric bars ---------------------------------------------------------------------
def loss_curves(runs: dict[int, list[dict[str, Any]]], title: str = "", labels: dict[str, str] | None = None) -> bytes:
    """Train (solid) and test (dashed) loss per epoch, one colour per seed; phases one after another,
    separated by dotted lines. ``runs``: seed → metrics.jsonl records; ``labels``: phase → what its loss
    measures (the y-axis label; phases whose loss differs are named at their boundary)."""
    labels = labels or {}
    fig = _figure(3.8, 2.6)
    ax = fig.add_subplot()
    colors = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    boundaries: dict[float, str] = {}
    for i, (seed, recs) in enumerate(sorted(runs.items())):
        phases: list[str] = []
        for r in recs:
            if r.get("phase", "train") not in phases:
                phases.append(r.get("phase", "train"))
        offset = 0
        for ph in phases:
            rs = sorted((r for r in recs if r.get("phase", "train") == ph), key=lambda r: r["epoch"])
            ep = [offset + r["epoch"] for r in rs]
            tr = [r.get("train", {}).get("loss", np.nan) for r in rs]
            te = [r.get("test", {}).get("loss", np.nan) for r in rs]
            c = colors[i % len(colors)]
            ax.plot(ep, tr, "-", color=c, lw=1.2, marker="." if len(ep) < 3 else None,
                    label=f"seed {seed} train" if ph == phases[0] else None)
            if any(not math.isnan(t) for t in te):
                ax.plot(ep, te, "--", color=c, lw=1.0, marker="." if len(ep) < 3 else None,
                        label=f"seed {seed} test" if ph == phases[0] else None)
            if len(phases) > 1:
                boundaries.setdefault(offset + 0.5, ph)
            offset += max((r["epoch"] for r in rs), default=0)
    for xline, ph in boundaries.items():
        ax.axvline(xline, color="0.6", ls=":", lw=0.8)
        ax.text(xline, 1.0, f" {ph}", transform=ax.get_xaxis_transform(), fontsize=6, va="top", color="0.4")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(axis_label(labels), fontsize=6 if len(set(labels.values())) > 1 else 7)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    return _png(fig)


def axis_label(labels: dict[str, str]) -> str:
    """The y-axis label of a loss curve from phase → loss label: the label when every phase shares it,
    else one "phase: label" line per phase."""
    distinct = list(dict.fromkeys(labels.values()))
    if not distinct:
        return "loss"
    if len(distinct) == 1:
        return distinct[0]
    return "\n".join(f"{ph}: {lab}" for ph, lab in labels.items())


#: The bar chart's panels: (metric key, title, scale, paper key or None).
BAR_PANELS = [
    ("recon_accuracy", "Recon accuracy (%)", 100, "recon_accuracy"),
    ("seconds_per_epoch", "Seconds per epoch (this machine)", 1, None),
    ("fid", "FID (lower is better)", 1, None),
    ("inception_score", "Inception score", 1, None),
]


def metric_bars(variants: dict[str, Any], order: list[str] | None = None) -> bytes:
    """Bars (mean ± sd over seeds) of the main metrics per variant; the seed paper's Table 2 accuracies
    as black diamonds (its seconds, a P100's on other epochs, are not drawn). A variant without the
    metric gets no bar, only the word "n/a" above its tick."""
    names = [n for n in (order or list(variants)) if n in variants]
    fig = _figure(max(7.0, 0.9 * len(names) + 3), 5.2)
    axes = fig.subplots(2, 2).ravel()
    x = np.arange(len(names))
    for ax, (key, title, scale, paper_key) in zip(axes, BAR_PANELS):
        means, sds = [], []
        for n in names:
            m = variants[n]["metrics"].get(key)
            ok = isinstance(m, dict) and "mean" in m
            means.append(m["mean"] * scale if ok else np.nan)
            sds.append((m["sd"] or 0.0) * scale if ok else 0.0)
        means_a, sds_a = np.asarray(means), np.asarray(sds)
        have = ~np.isnan(means_a)
        if have.any():
            ax.bar(x[have], means_a[have], yerr=sds_a[have], color="C0", alpha=0.85, capsize=3, label="vaelab (this machine)")
        for xi in x[~have]:
            ax.text(xi, 0.5, "n/a", ha="center", va="center", fontsize=6, color="0.5", rotation=90,
                    transform=ax.get_xaxis_transform())
        if paper_key:
            pv = [(variants[n].get("paper") or {}).get(paper_key, np.nan) for n in names]
            if any(not math.isnan(p) for p in pv):
                ax.scatter(x, pv, marker="D", color="k", s=18, zorder=3, label="seed paper (Table 2)")
                ax.legend(fontsize=6)
        ax.set_xticks(x, [variants[n].get("label", n) for n in names], rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(title, fontsize=9)
        if key == "seconds_per_epoch":
            ax.set_yscale("log")
    return _png(fig)
