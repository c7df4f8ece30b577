"""The figures of a trained variant, each drawn from the model and test tensors into PNG (or GIF) bytes or
files: prior samples, reconstructions, latent traversals, the factor traversal, the latent map and a
sequence model's pictures. :mod:`vaelab.run_figures` draws them for a run into ``RUN/figures/`` (which
describes them) and re-exports their names."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import to_tensor
from .images import grid_array, png_bytes, save_gif, save_grid
from .nn.utils import batched
from .plots import figure, png

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset
    from .models.base import Variant


SAMPLE_N, SAMPLE_NROW = 100, 10  # one layout for every variant; conditional variants get class = column
N_RECON = 10  # test images shown with their reconstructions
N_ACTIVITY = 500  # test images over which latent activity (for the traversal's dims) is measured
MAP_POINTS = 2000  # test images of the latent map (a fixed subsample)
TRAVERSE_VALUES = np.linspace(-3.0, 3.0, 9)
MAX_TRAVERSE_DIMS = 16
#: A sequence model's pictures: (name, sequences per GIF row).
SEQUENCE_PICTURES = (("samples", 4), ("reconstructions", 2), ("swaps", 3), ("content-fixed", 2))
N_SEQUENCES = 6  # examples per sequence picture


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
    fig = figure(0.8 + w / 85, 0.6 + h / 85)
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
    return png(fig)


# ----- traversals against known factors (dSprites) --------------------------------------------------
FACTOR_VALUES = np.linspace(-2.0, 2.0, 7)  # each dimension's values in the factor traversal
FACTOR_SEEDS_PER_CLASS = 1  # seed images per label (dSprites: one of each shape)


@torch.no_grad()
def kl_per_dim(v, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Mean over ``x`` of KL(q(z_d|x) ‖ N(0, 1)) per latent dimension d (D,): a dimension the encoder
    ignores has about 0. A posterior without a log-variance gives the variance of its means instead."""
    def one(a, b):
        q = v.encode(a, b if v.conditional else None)
        mu = q.mean.float()
        if not hasattr(q, "logvar"):
            return torch.cat([mu, torch.full_like(mu[:, :1], float("nan"))], 1)
        lv = q.logvar.float()
        return 0.5 * (mu * mu + lv.exp() - 1.0 - lv)
    per = _batched(one, x, y).cpu().numpy()
    if np.isnan(per).any():  # no log-variance: the activity of the means
        return _batched(lambda a, b: v.encode(a, b if v.conditional else None).mean.float(), x, y).cpu().numpy().var(0)
    return per.mean(0)


def factor_seed_images(labels: np.ndarray, per_class: int = FACTOR_SEEDS_PER_CLASS) -> list[int]:
    """The first ``per_class`` test images of each label, in label order (dSprites: a square, an ellipse, a heart)."""
    return [int(i) for c in np.unique(labels) for i in np.flatnonzero(labels == c)[:per_class]]


@torch.no_grad()
def factor_traversal(v, x: torch.Tensor, y: torch.Tensor, seeds: list[int], dims: list[int], kl: np.ndarray,
                     names: tuple[str, ...] = (), values: np.ndarray = FACTOR_VALUES) -> bytes:
    """One panel per seed image ``x[i]``: its input (top left), then one row per latent dimension in
    ``dims`` (labelled with its mean KL), that dimension set to each of ``values`` and the others at the
    image's posterior mean, decoded (probabilities). ``names``: each label's name, for the titles."""
    fig = figure(0.6 + 1.25 * len(seeds) * (len(values) + 1) * 64 / 110, 0.9 + len(dims) * 0.62)
    axes = fig.subplots(1, len(seeds), squeeze=False)[0]
    for ax, i in zip(axes, seeds):
        z0 = v.encode(x[i:i + 1]).mean.float()
        zs = z0.repeat(len(dims) * len(values), 1)
        for r, d in enumerate(dims):
            zs[r * len(values):(r + 1) * len(values), d] = torch.as_tensor(values, dtype=zs.dtype)
        imgs = torch.sigmoid(v.decode(zs).float()).reshape(len(dims), len(values), *x.shape[1:])
        first = torch.zeros(len(dims), 1, *x.shape[1:])
        first[0, 0] = x[i].float()
        grid = grid_array(torch.cat([first, imgs], 1).flatten(0, 1), len(values) + 1)
        h, w = grid.shape[:2]
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        cell_h, cell_w = (h - 2) / len(dims), (w - 2) / (len(values) + 1)
        ax.set_xticks([2 + cell_w * (c + 0.5) for c in range(len(values) + 1)],
                      ["input"] + [f"{val:.2g}" for val in values], fontsize=7)
        ax.set_yticks([2 + cell_h * (r + 0.5) for r in range(len(dims))],
                      [f"z{d}  KL {kl[d]:.2f}" for d in dims] if ax is axes[0] else [], fontsize=7)
        ax.tick_params(length=0)
        for sp in ax.spines.values():
            sp.set_visible(False)
        label = int(y[i])
        ax.set_title(f"{names[label] if label < len(names) else f'label {label}'} (test image {i})", fontsize=9)
    fig.suptitle(f"{v.name}: each latent dimension from {values[0]:g} to {values[-1]:g}, the others at the input's "
                 "posterior mean; rows by mean KL, largest first", fontsize=9)
    return png(fig)


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
    fig = figure(3.7, 3.3)
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
    return png(fig), how


# ----- sequences --------------------------------------------------------------------------------------
def sequence_pictures(v: "Variant", test: "Dataset", n: int, seed: int, folder: str | Path) -> list[Path]:
    """Frame strips (PNG) and GIFs of a sequence model ``v`` into ``folder``, ``n`` examples each, from
    the test sequences ``test``: prior samples; test sequences and their reconstructions; swaps (content
    row, motion row, the content's z_f with the motion's z_1:T); each test sequence with its z_f kept and
    new dynamics from the prior. Files ``NAME-SEED.png`` and ``NAME-SEED.gif``; returns their paths."""
    dev = v.device
    g = torch.Generator(dev).manual_seed(seed)
    pick = torch.randperm(len(test), generator=g, device=dev)[:2 * n]
    x = to_tensor(test.images[pick.cpu().numpy()]).to(dev)
    a, b = x[:n], x[n:2 * n]
    torch.manual_seed(seed)
    with torch.no_grad():
        sets = {
            "samples": v.sample(n, generator=g),
            "reconstructions": torch.stack([a, v.reconstruct(a)], 1).flatten(0, 1),
            "swaps": torch.stack([a, b, v.swap(a, b)], 1).flatten(0, 1),
            "content-fixed": torch.stack([a, v.fix_static(a, generator=g)], 1).flatten(0, 1),
        }
    paths = []
    for name, per_row in SEQUENCE_PICTURES:
        paths.append(save_grid(sets[name], Path(folder) / f"{name}-{seed}.png"))
        paths.append(save_gif(sets[name], Path(folder) / f"{name}-{seed}.gif", nrow=per_row))
    return paths
