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
from .data.dsprites import FACTOR_NAMES
from .errors import WriteFailed
from .io import atomic_write_bytes, atomic_write_json
from .model_figures import (  # noqa: F401 (re-exported: the drawings are part of this module's API)
    FACTOR_SEEDS_PER_CLASS, FACTOR_VALUES, MAP_POINTS, MAX_TRAVERSE_DIMS, N_ACTIVITY, N_RECON, N_SEQUENCES, SAMPLE_N,
    SAMPLE_NROW, SEQUENCE_PICTURES, TRAVERSE_VALUES, active_dims, embed, factor_seed_images, factor_traversal,
    kl_per_dim, latent_map, project_2d, recon_grid, sample_grid, sequence_pictures, traversal, traversal_image)
from .models.base import NotAvailable
from .provenance import now

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset
    from .models.base import Variant

FOLDER, INDEX, SCHEMA = "figures", "index.json", 1


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

