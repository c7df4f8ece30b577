"""Training cost from a run's ``metrics.jsonl`` records (one per epoch: phase, epoch, seconds, images_per_s)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Iterable

from ..errors import RunDirError


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The epoch records of a ``metrics.jsonl``; a record repeated after a resume keeps its last copy."""
    path = Path(path)
    records: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise RunDirError(f"{path}: file not found") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # a torn last line (killed mid-write): ignore it
                continue
            raise RunDirError(f"{path}: line {n} is not valid JSON") from None
        records[(str(rec.get("phase", "train")), int(rec.get("epoch", n)))] = rec
    return list(records.values())


def main_phase(phases: Iterable[str]) -> str:
    """The phase whose cost stands for the model: ``train`` if present, else the last one."""
    phases = list(phases)
    return "train" if "train" in phases else phases[-1]


def cost_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per epoch and median images/s of the main phase (``seconds_per_epoch``,
    ``images_per_s``), the total training seconds (``train_seconds``), and, when the run had several
    phases, the same medians per phase as ``seconds_per_epoch.<phase>`` / ``images_per_s.<phase>``.
    Medians, so one slow epoch (a busy machine) does not move the figure."""
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
    return out
