"""The figures of a run that need its model, made when the run is evaluated
(:func:`vaelab.rundir.evaluate_run`; ``vaelab evaluate RUN --figures-only`` makes only them) and saved
in ``RUN/figures/`` beside an index, ``RUN/figures/index.json``, which the report
(:mod:`vaelab.report`) reads: the report copies these files and never loads a model.

An image model's figures: ``samples.png`` (100 prior samples, sample seed 0, 10 per row; the seed's
Figs 17/18), ``recon.png`` (the first 10 test images above their reconstructions), ``traversal.png``
(Fig. 5, Gaussian latents) and ``map.png`` (Fig. 16: the 2-d latent, the sphere S², or t-SNE); on
dSprites also ``factor-traversal.png`` (:func:`factor_traversal`: one seed image of each shape, every
latent dimension by mean KL from −2 to 2). A
sequence model's: frame strips (PNG) and GIFs of prior samples, reconstructions, swaps and content
with new dynamics (:func:`sequence_pictures`). The index names each file, or the reason a variant
cannot make that figure (``{"reason": ...}``; ``"failed": true`` when drawing raised).

The inputs are the test images as the model sees them, shown deterministically (static binarisation
where the run binarises). Every drawing seeds its own RNG stream and leaves the global one untouched,
and the model runs on the CPU, so the figures are the same whichever device evaluated the run.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from .data import binarize, to_tensor
from .errors import WriteFailed
from .images import grid_array, png_bytes, save_gif, save_grid
from .io import atomic_write_bytes, atomic_write_json
from .models.base import NotAvailable
from .nn.utils import batched
from .plots import figure, png
from .provenance import now

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset
    from .models.base import Variant

FOLDER, INDEX, SCHEMA = "figures", "index.json", 1
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


# ----- a run's figures and their index ---------------------------------------------------------------------
def _attempt(entries: dict[str, Any], names: tuple[str, ...], fn: Callable[[], Any], say: Callable[[str], None]) -> None:
    """``entries[name]`` for each of ``names`` from ``fn()`` (one entry, or a dict of them for several
    names), or the reason it could not be made; a failed write still fails the caller."""
    try:
        got = fn()
        entries.update(got if len(names) > 1 else {names[0]: got})
    except NotAvailable as e:
        entries.update({k: {"reason": str(e)} for k in names})
    except WriteFailed:
        raise
    except Exception as e:  # noqa: BLE001 — a figure that cannot be drawn must not fail the evaluation: recorded
        reason = f"could not draw: {type(e).__name__}: {e}".splitlines()[0][:500]
        say(f"figures: {', '.join(names)}: {reason}")
        entries.update({k: {"reason": reason, "failed": True} for k in names})


def write_figures(v: "Variant", run_dir: str | Path, test: "Dataset", binarize_mode: str = "none",
                  map_points: int = MAP_POINTS, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Draw the figures of the trained variant ``v`` (moved to the CPU) of the run in ``run_dir`` from its
    test split ``test`` into ``RUN/figures/``, then write ``RUN/figures/index.json`` (atomically, last:
    a run whose figures were interrupted has no index) and return the index."""
    say = log or (lambda msg: None)
    folder = Path(run_dir) / FOLDER
    (folder / INDEX).unlink(missing_ok=True)
    v = v.to("cpu").eval()
    entries: dict[str, Any] = {}
    settings: dict[str, Any] = {"sample_seed": 0}

    def put(name: str, data: bytes) -> str:
        atomic_write_bytes(folder / name, data)
        return name

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if v.data_kind == "sequence":
            names = tuple(n for n, _ in SEQUENCE_PICTURES)
            settings["n_sequences"] = N_SEQUENCES
            _attempt(entries, names, lambda: _sequences(v, test, folder), say)
        else:
            x = to_tensor(test.images)
            if binarize_mode != "none":
                x = binarize(x, "static")  # what the model sees, shown deterministically
            y = torch.as_tensor(test.labels)
            pick = np.random.default_rng(0).permutation(len(test))[:map_points]
            settings.update(n_recon=N_RECON, n_activity=N_ACTIVITY, map_points=len(pick),
                            inputs="static binarisation" if binarize_mode != "none" else "as stored")
            _attempt(entries, ("samples",), lambda: {"file": put("samples.png", sample_grid(v))}, say)
            _attempt(entries, ("recon",), lambda: {"file": put("recon.png", recon_grid(v, x[:N_RECON], y[:N_RECON])),
                                                   "n": N_RECON}, say)
            if getattr(v, "latent_kind", "gaussian") == "gaussian":
                _attempt(entries, ("traversal",), lambda: _traversal(v, x, y, put), say)
            else:
                entries["traversal"] = {"reason": f"latent_kind is {v.latent_kind!r}: traversals are drawn for Gaussian latents"}
            _attempt(entries, ("map",), lambda: _map(v, x[pick], y[pick], put), say)
            if has_factors(test):
                _attempt(entries, ("factor_traversal",), lambda: _factor_traversal(v, x, y, test.class_names, put), say)
    index = {"schema": SCHEMA, "variant": v.name, "kind": v.data_kind, "settings": settings, "figures": entries,
             "created": now()}
    atomic_write_json(folder / INDEX, index)
    return index


def _sequences(v, test: "Dataset", folder: Path) -> dict[str, Any]:
    sequence_pictures(v, test, N_SEQUENCES, 0, folder)
    return {name: {"file": f"{name}-0.png", "gif": f"{name}-0.gif"} for name, _ in SEQUENCE_PICTURES}


def _traversal(v, x: torch.Tensor, y: torch.Tensor, put) -> dict[str, Any]:
    dims, var = active_dims(v, x[:N_ACTIVITY], y[:N_ACTIVITY])
    i = traversal_image(x)
    data = traversal(v, x[i:i + 1], y[i:i + 1], dims, var, title=f"{v.name}: test image {i} (label {int(y[i])})")
    return {"file": put("traversal.png", data), "dims": len(dims), "latent_dims": int(var.shape[0]), "image": i}


def has_factors(test: "Dataset") -> bool:
    """Whether the test split carries dSprites' ground-truth factors (the factor traversal is drawn for it)."""
    from .data.dsprites import FACTOR_NAMES

    return set(FACTOR_NAMES) <= set(test.factors)


def _factor_traversal(v, x: torch.Tensor, y: torch.Tensor, names: tuple[str, ...], put) -> dict[str, Any]:
    if getattr(v, "latent_kind", "gaussian") != "gaussian":
        raise NotAvailable(f"latent_kind is {v.latent_kind!r}: traversals are drawn for Gaussian latents")
    if v.conditional:
        raise NotAvailable(f"{v.name} is conditional: the factor traversal decodes without a label")
    kl = kl_per_dim(v, x[:N_ACTIVITY], y[:N_ACTIVITY])
    dims = [int(d) for d in np.argsort(-kl, kind="stable")[:MAX_TRAVERSE_DIMS]]
    seeds = factor_seed_images(y.cpu().numpy())
    data = factor_traversal(v, x, y, seeds, dims, kl, names)
    return {"file": put("factor-traversal.png", data), "dims": len(dims), "latent_dims": int(kl.shape[0]),
            "images": seeds, "values": [float(val) for val in FACTOR_VALUES], "kl": [round(float(k), 4) for k in kl]}


def _map(v, x: torch.Tensor, y: torch.Tensor, put) -> dict[str, Any]:
    data, how = latent_map(v, x, y, title=v.name)
    return {"file": put("map.png", data), "how": how, "points": int(x.shape[0])}

