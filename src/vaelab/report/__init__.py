"""The comparison report: ``write_report(OUT)`` turns a study's ``results.json`` and run dirs into
``OUT/report/index.html`` with its images beside it in ``OUT/report/img/`` — static HTML, no
scripts, no external resources, so it opens from disk.

Figures per variant are drawn from its first successful seed (the same test images, sample seed and
layout for every variant); loss curves show every seed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..study.results import ordered, write_results
from .html import render

N_RECON = 10  # test images shown with their reconstructions
N_ACTIVITY = 500  # test images over which latent activity (for the traversal's dims) is measured


def _img_name(variant: str, kind: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in variant)
    return f"img/{safe}-{kind}.png"


def write_report(out: str | Path, results: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Write ``OUT/report/index.html`` (and its images) for the study in ``OUT``; return its path."""
    import numpy as np
    import torch

    from ..data import binarize, load_dataset, to_tensor
    from ..io import atomic_write_bytes, atomic_write_text, read_json
    from ..models.base import NotAvailable
    from ..rundir import load, read_metrics
    from . import figures

    say = log or (lambda m: None)
    out = Path(out)
    results = results if results is not None else read_json(out / "results.json")
    s = results["settings"]
    rdir = out / "report"
    test = load_dataset(s["dataset"], "test", s.get("data_dir"), image_size=s.get("image_size"))
    x_all = to_tensor(test.images)
    if s.get("binarize", "none") != "none":
        x_all = binarize(x_all, "static")  # what the model sees, shown deterministically
    y_all = torch.as_tensor(test.labels)
    pick = np.random.default_rng(0).permutation(len(test))[: int(s.get("map_points", 2000))]
    x_map, y_map = x_all[pick], y_all[pick]

    figs: dict[str, dict[str, Any]] = {}

    def put(variant: str, kind: str, data: bytes) -> str:
        name = _img_name(variant, kind)
        atomic_write_bytes(rdir / name, data)
        return name

    for name, v in ordered(results):
        f: dict[str, Any] = {}
        figs[name] = f
        runs = [r for r in results["runs"] if r["variant"] == name]
        curves = {}
        for r in runs:
            try:
                curves[r["seed"]] = read_metrics(out / r["run_dir"] / "metrics.jsonl")
            except Exception:  # noqa: BLE001 — a run that never finished an epoch has no curve
                pass
        if curves:
            try:
                f["loss"] = put(name, "loss", figures.loss_curves(curves, v["label"], v.get("loss_labels")))
            except Exception as e:  # noqa: BLE001
                f["loss_reason"] = f"could not draw: {type(e).__name__}: {e}"
        else:
            f["loss_reason"] = "no epoch finished"
        ok = [r for r in runs if r["status"] == "ok"]
        if not ok:
            reason = "no successful run" + (f" ({runs[0].get('error')})" if runs and runs[0].get("error") else "")
            for k in ("samples", "recon", "traversal", "map"):
                f[f"{k}_reason"] = reason
            continue
        rep = ok[0]
        f["seed"] = rep["seed"]
        say(f"report: figures of {name} (seed {rep['seed']})")
        try:
            model = load(out / rep["run_dir"])
        except Exception as e:  # noqa: BLE001
            for k in ("samples", "recon", "traversal", "map"):
                f[f"{k}_reason"] = f"cannot load the run: {type(e).__name__}: {e}"
            continue
        steps = {
            "samples": lambda: figures.sample_grid(model),
            "recon": lambda: figures.recon_grid(model, x_all[:N_RECON], y_all[:N_RECON]),
        }
        for kind, fn in steps.items():
            try:
                f[kind] = put(name, kind, fn())
            except NotAvailable as e:
                f[f"{kind}_reason"] = str(e)
            except Exception as e:  # noqa: BLE001
                f[f"{kind}_reason"] = f"could not draw: {type(e).__name__}: {e}"
        kind_ = getattr(model, "latent_kind", "gaussian")
        if kind_ == "gaussian":
            try:
                dims, var = figures.active_dims(model, x_all[:N_ACTIVITY], y_all[:N_ACTIVITY])
                i = figures.traversal_image(x_all)
                f["traversal"] = put(name, "traversal", figures.traversal(model, x_all[i:i + 1], y_all[i:i + 1], dims, var,
                                                                          title=f"{v['label']}: test image {i} (label {int(y_all[i])})"))
                f["traversal_dims"] = len(dims)
                f["latent_dims"] = int(var.shape[0])
            except NotAvailable as e:
                f["traversal_reason"] = str(e)
            except Exception as e:  # noqa: BLE001
                f["traversal_reason"] = f"could not draw: {type(e).__name__}: {e}"
        else:
            f["traversal_reason"] = f"latent_kind is {kind_!r}: traversals are drawn for Gaussian latents"
        try:
            png, how = figures.latent_map(model, x_map, y_map, title=v["label"])
            f["map"], f["map_how"] = put(name, "map", png), how
        except NotAvailable as e:
            f["map_reason"] = str(e)
        except Exception as e:  # noqa: BLE001
            f["map_reason"] = f"could not draw: {type(e).__name__}: {e}"
        del model
    bars = None
    try:
        atomic_write_bytes(rdir / "img" / "metrics.png", figures.metric_bars(results["variants"], results["settings"]["variants"]))
        bars = "img/metrics.png"
    except Exception as e:  # noqa: BLE001
        say(f"report: bar chart failed: {type(e).__name__}: {e}")
    path = rdir / "index.html"
    zsl = read_json(out / "zsl-results.json") if (out / "zsl-results.json").is_file() else None  # `vaelab zsl --study --out OUT`
    seqs = read_json(out / "sequence-results.json") if (out / "sequence-results.json").is_file() else None  # `vaelab sequences --out OUT`
    atomic_write_text(path, render(results, figs, bars, n_recon=N_RECON, map_points=len(pick), zsl=zsl, sequences=seqs))
    return path


def write_zsl_page(out: str | Path) -> Path:
    """``OUT/report/zsl.html`` from ``OUT/zsl-results.json`` (``vaelab zsl --study``)."""
    from ..io import atomic_write_text, read_json
    from .html import zsl_page

    path = Path(out) / "report" / "zsl.html"
    atomic_write_text(path, zsl_page(read_json(Path(out) / "zsl-results.json")))
    return path


def finish_study(out: Path, results: dict[str, Any], say: Callable[[str], None]) -> None:
    """Write the report of a study whose tables are written (``run_study``'s ``finish``); if drawing
    it fails, say so and record the error in results.json, whose tables stay valid."""
    say(f"writing the report to {Path(out) / 'report' / 'index.html'}")
    try:
        write_report(out, results, log=say)
    except Exception as e:  # noqa: BLE001 — the tables are written; say what broke
        say(f"report: FAILED: {type(e).__name__}: {e}")
        results["report_error"] = f"{type(e).__name__}: {e}"
        write_results(results, out)


__all__ = ["write_report", "finish_study", "render"]


def write_sequence_page(out: str | Path, res: dict[str, Any]) -> Path:
    """``OUT/report/sequences.html`` from the results of ``vaelab sequences``."""
    from ..io import atomic_write_text
    from .html import sequence_page

    path = Path(out) / "report" / "sequences.html"
    atomic_write_text(path, sequence_page(res))
    return path
