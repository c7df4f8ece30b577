"""Paired differences of the IWAE bound between an image study's variants, image by image.

Each evaluated run saves its per-image values (``RUN/likelihood.safetensors``, :data:`PER_IMAGE_FILE`).
:func:`paired_iwae` compares every variant with the study's reference variant, the first one of the
study (``settings.variants[0]``): per test image, each variant's IWAE NLL averaged over the seeds both
variants have, then the difference d = b − a (b's NLL minus the reference's, nats: positive when b's
bound is higher, i.e. worse), its mean over the n images and a 95% t-interval,
mean ± t_{0.975, n−1} · sd(d) / √n (sd with ddof = 1). A pair is left out, with the reason in its
record, when the two are not on the same images (n, K, dataset, binarisation, inputs digest), when a
variant's bound is conditional (−log p(x | y)), or when no seed has files for both. The renderers here
(:func:`markdown_lines`, :func:`table_rows`) read only results.json's ``paired_iwae``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from ..eval_schema import PER_IMAGE_FILE, PER_IMAGE_META

#: The metadata of a per-image file that must agree for two runs' values to be paired, image by image.
PAIRING_KEYS = ("dataset", "n_test", "iwae_n", "iwae_k", "binarization", "binarize_seed", "inputs_sha256")
KEY = "iwae_nll"


def read_iwae(run_dir: str | Path) -> tuple[np.ndarray, dict[str, str]] | None:
    """A run's per-image IWAE NLL (float64, nats) and the metadata that pairs it; None when it has none."""
    path = Path(run_dir) / PER_IMAGE_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "numpy") as f:
            if KEY not in f.keys():
                return None
            meta = f.metadata() or {}  # one JSON key; files of the first version held the strings as keys
            return np.asarray(f.get_tensor(KEY), dtype=np.float64), json.loads(meta[PER_IMAGE_META]) if PER_IMAGE_META in meta else meta
    except (OSError, SafetensorError, ValueError):
        return None


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Mean of d = b − a over the images with its ``level`` t-interval: mean ± t_{(1+level)/2, n−1} · sd/√n."""
    from scipy.stats import t  # local: scipy.stats costs 0.3 s, and only a study with per-image files needs it

    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = len(d)
    mean = float(d.mean())
    half = float(t.ppf((1 + level) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return {"mean_diff": mean, "ci_low": mean - half, "ci_high": mean + half}


def _mismatch(metas: list[dict[str, str]]) -> str | None:
    for k in PAIRING_KEYS:
        if any(k not in m for m in metas):
            return f"cannot tell whether they are on the same test images: a file does not record {k}"
        vals = sorted({m[k] for m in metas})
        if len(vals) > 1:
            return f"not on the same test images: {k} differs ({', '.join(vals)})"
    return None


def paired_iwae(variants: list[str], conditional: dict[str, bool], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of results.json's ``paired_iwae``: each variant ``b`` after the first against ``a`` =
    the first, {a, b, n_images, seeds, mean_diff, ci_low, ci_high} or {a, b, reason}; [] when no run of
    the study has per-image IWAE values (then results.json has no such key)."""
    per: dict[str, dict[int, tuple[np.ndarray, dict[str, str]]]] = {name: {} for name in variants}
    for r in runs:
        if r.get("status") == "ok" and r.get("variant") in per:
            got = read_iwae(r["run_dir"])
            if got is not None:
                per[r["variant"]][int(r["seed"])] = got
    if not any(per.values()) or len(variants) < 2:
        return []
    ref, out = variants[0], []
    for b in variants[1:]:
        rec: dict[str, Any] = {"a": ref, "b": b}
        seeds = sorted(set(per[ref]) & set(per[b]))
        cond = [n for n in (ref, b) if conditional.get(n)]
        why = (f"{cond[0]} is conditional: its bound is on −log p(x | y), not −log p(x)" if cond
               else "no seed with per-image IWAE values for both" if not seeds
               else _mismatch([per[n][s][1] for n in (ref, b) for s in seeds]))
        if why is None:
            xa = np.mean([per[ref][s][0] for s in seeds], axis=0)
            xb = np.mean([per[b][s][0] for s in seeds], axis=0)
            why = None if xa.shape == xb.shape and len(xa) > 1 else f"{len(xa)} and {len(xb)} images: no interval"
        if why is not None:
            out.append({**rec, "reason": why})
            continue
        out.append({**rec, "n_images": int(len(xa)), "seeds": seeds, **paired_difference(xa, xb)})
    return out


PAIRED_TITLE = "Paired IWAE NLL differences"


def paired_note(results: dict[str, Any]) -> str:
    """What the paired table shows, for results.md and the report."""
    recs = results.get("paired_iwae") or []
    ref = results["variants"].get(recs[0]["a"], {}).get("label", recs[0]["a"]) if recs else "?"
    return (f"Against {ref} (the study's first variant): per test image, each variant's IWAE NLL averaged over the "
            "seeds both have, then the difference (variant − reference, nats; positive: a higher bound, worse), its "
            "mean over the images and a 95% interval, mean ± t(0.975, n−1)·sd/√n. Values: each run's "
            "likelihood.safetensors; a pair not on the same test images is left out.")


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(variant label, images, seeds, mean difference, 95% interval or the reason the pair is left out)."""
    V = results["variants"]
    rows = []
    for r in results.get("paired_iwae") or []:
        label = V.get(r["b"], {}).get("label", r["b"])
        if "reason" in r:
            rows.append((label, "—", "—", "—", f"left out: {r['reason']}"))
        else:
            rows.append((label, str(r["n_images"]), ",".join(map(str, r["seeds"])), f"{r['mean_diff']:+.2f}",
                         f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"))
    return rows


HEADERS = ("Variant", "Images", "Seeds", "Mean difference (nats)", "95% CI")


def markdown_lines(results: dict[str, Any]) -> list[str]:
    """The section of results.md (no lines when results.json has no ``paired_iwae``)."""
    rows = table_rows(results)
    if not rows:
        return []
    return (["", f"## {PAIRED_TITLE}", "", paired_note(results), "", "| " + " | ".join(HEADERS) + " |",
             "|:---|---:|---:|---:|---:|"] + ["| " + " | ".join(r) + " |" for r in rows])
