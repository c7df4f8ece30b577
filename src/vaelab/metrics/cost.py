"""Training cost from a run's epoch records (``metrics.jsonl``: phase, epoch, seconds, images_per_s)."""
from __future__ import annotations

import statistics
from typing import Any, Iterable



def main_phase(phases: Iterable[str]) -> str:
    """The phase whose cost stands for the model: ``train`` if present, else the last one."""
    phases = list(phases)
    return "train" if "train" in phases else phases[-1]


def cost_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per epoch and median images/s of the main phase (``seconds_per_epoch``,
    ``images_per_s``), the total training seconds (``train_seconds``), and, when the run had several
    phases, the same medians per phase as ``seconds_per_epoch.<phase>`` / ``images_per_s.<phase>``.
    Medians, so one slow epoch (a busy machine) does not move the figure. Where the records have them:
    ``images_per_epoch`` (main phase) and ``load_avg_max``, the highest 1-minute load average at an
    epoch's end (what else ran beside training)."""
    by_phase: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_phase.setdefault(str(r.get("phase", "train")), []).append(r)
    if not by_phase:
        raise ValueError("no epoch records")
    out: dict[str, float] = {}
    main = main_phase(by_phase)
    for phase, recs in by_phase.items():
        sec = statistics.median(float(r["seconds"]) for r in recs)
        ips = statistics.median(float(r["images_per_s"]) for r in recs)
        if phase == main:
            out["seconds_per_epoch"], out["images_per_s"] = sec, ips
        if len(by_phase) > 1:
            out[f"seconds_per_epoch.{phase}"], out[f"images_per_s.{phase}"] = sec, ips
    out["train_seconds"] = float(sum(float(r["seconds"]) for r in records))
    main_recs = by_phase[main]
    if all("images" in r for r in main_recs):
        out["images_per_epoch"] = float(statistics.median(int(r["images"]) for r in main_recs))
    loads = [float(r["load_avg"]) for r in records if isinstance(r.get("load_avg"), (int, float))]
    if loads:
        out["load_avg_max"] = max(loads)
    return out
