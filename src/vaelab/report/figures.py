"""The report's own figures, drawn from saved records only, as PNG bytes: loss curves (from each run's
metrics.jsonl) and a bar chart of the main metrics (from results.json). The figures that need a
model (sample grids, reconstructions, traversals, latent maps, sequence strips) are made when a run
is evaluated (:mod:`vaelab.run_figures`) and copied from its directory.

Plots use matplotlib's ``Figure`` with the Agg canvas directly (:mod:`vaelab.plots`: no pyplot, so no
global state and no display).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..plots import figure, png


# ----- loss curves and metric bars ---------------------------------------------------------------------
def loss_curves(runs: dict[int, list[dict[str, Any]]], title: str = "", labels: dict[str, str] | None = None) -> bytes:
    """Train (solid) and test (dashed) loss per epoch, one colour per seed; phases one after another,
    separated by dotted lines. ``runs``: seed → metrics.jsonl records; ``labels``: phase → what its loss
    measures (the y-axis label; phases whose loss differs are named at their boundary)."""
    labels = labels or {}
    fig = figure(3.8, 2.6)
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
    return png(fig)


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
    fig = figure(max(7.0, 0.9 * len(names) + 3), 5.2)
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
    return png(fig)
