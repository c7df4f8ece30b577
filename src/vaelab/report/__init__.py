"""The comparison report: ``write_report(OUT)`` turns a study's ``results.json`` and run dirs into
``OUT/report/index.html`` with its images beside it in ``OUT/report/img/`` — static HTML, no
scripts, no external resources, so it opens from disk.

The report renders saved artefacts only and loads no model: the tables from results.json, loss
curves (every seed) from each run's metrics.jsonl, and the figures that need a model — sample grids,
reconstructions, traversals, latent maps, sequence strips — copied from the directory of each
variant's first successful seed, where its evaluation saved them (``RUN/figures/``,
:mod:`vaelab.run_figures`; the same test images, sample seed and layout for every variant). A run
evaluated before figures were saved with the evaluation has none: the page says so, in place of
each figure, with the command that makes them (:mod:`.saved`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..io import atomic_write_bytes, atomic_write_text, read_json, read_metrics
from ..study.results import ordered, write_results
from . import figures
from .html import render, sequence_page, zsl_page
from .saved import copy, entry, read_index
from .sequences import gather as gather_sequence_pictures

MODEL_FIGURES = ("samples", "recon", "traversal", "map", "factor_traversal")  # factor_traversal: dsprites runs only
N_RECON = 10  # what the page says when no run saved a reconstruction grid (run_figures.N_RECON)


def _img_name(variant: str, kind: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in variant)
    return f"img/{safe}-{kind}.png"


def _saved_figures(f: dict[str, Any], run: Path, rdir: Path, name: str, command: str) -> dict[str, Any] | None:
    """Copy the saved figures of variant ``name``'s run ``run`` into the report dir ``rdir``; fill ``f`` with
    their image paths (or the reasons they are absent). Returns the run's figure settings (None without
    figures); ``command`` writes the report (named in the text of a run without figures)."""
    index = read_index(run)
    for kind in MODEL_FIGURES:
        e, reason = entry(run, index, kind, command)
        if reason is None:
            reason = copy(run, e["file"], rdir / _img_name(name, kind))
        if reason is not None:
            f[f"{kind}_reason"] = reason
            continue
        f[kind] = _img_name(name, kind)
        if kind == "traversal":
            f["traversal_dims"], f["latent_dims"] = e.get("dims"), e.get("latent_dims")
        if kind == "map":
            f["map_how"] = e.get("how")
    return None if index is None else {**index.get("settings", {}), "n_recon": (index["figures"].get("recon") or {}).get("n")}


def write_report(out: str | Path, results: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Write ``OUT/report/index.html`` (and its images) for the study in ``OUT``; return its path."""
    say = log or (lambda m: None)
    out = Path(out)
    results = results if results is not None else read_json(out / "results.json")
    s = results["settings"]
    rdir = out / "report"
    figs: dict[str, dict[str, Any]] = {}
    shown: list[dict[str, Any]] = []  # the figure settings of the runs shown

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
            for k in MODEL_FIGURES:
                f[f"{k}_reason"] = reason
            continue
        rep = ok[0]
        f["seed"] = rep["seed"]
        say(f"report: figures of {name} (seed {rep['seed']})")
        settings = _saved_figures(f, out / rep["run_dir"], rdir, name, "vaelab compare")
        if settings:
            shown.append(settings)
    bars = None
    try:
        atomic_write_bytes(rdir / "img" / "metrics.png", figures.metric_bars(results["variants"], results["settings"]["variants"]))
        bars = "img/metrics.png"
    except Exception as e:  # noqa: BLE001
        say(f"report: bar chart failed: {type(e).__name__}: {e}")
    path = rdir / "index.html"
    zsl = read_json(out / "zsl-results.json") if (out / "zsl-results.json").is_file() else None  # `vaelab zsl --study --out OUT`
    seqs = read_json(out / "sequence-results.json") if (out / "sequence-results.json").is_file() else None  # `vaelab sequences --out OUT`
    if seqs:
        seqs = {**seqs, "pictures": gather_sequence_pictures(out, seqs)}
    n_recon = next((x["n_recon"] for x in shown if x.get("n_recon")), N_RECON)
    map_points = next((x["map_points"] for x in shown if x.get("map_points")), s.get("map_points"))
    atomic_write_text(path, render(results, figs, bars, n_recon=n_recon, map_points=map_points, zsl=zsl, sequences=seqs))
    return path


def write_zsl_page(out: str | Path) -> Path:
    """``OUT/report/zsl.html`` from ``OUT/zsl-results.json`` (``vaelab zsl --study``)."""
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
    """``OUT/report/sequences.html`` from the results of ``vaelab sequences``, with the pictures that
    each row's shown run saved when it was evaluated (copied to ``OUT/report/img/ROW/``)."""
    path = Path(out) / "report" / "sequences.html"
    atomic_write_text(path, sequence_page({**res, "pictures": gather_sequence_pictures(Path(out), res)}))
    return path
