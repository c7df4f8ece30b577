"""The zero-shot study (``vaelab zsl --study``): every (dataset, method, setting, fold, seed) of the
grid plus the any-shot runs, a task of the study runner (:mod:`vaelab.study.runner`, :class:`ZSLTask`),
resumable (a run whose zsl.json exists is reused), summarised as mean ±
sd over folds × seeds in ``OUT/zsl-results.json`` and ``OUT/zsl-results.md``. A run that raises is
recorded in its directory (``failed.json``) and the study goes on; the next invocation skips it
unless asked to retry (``--retry-failed``); the tables count the failures of each row.

Layout: ``OUT/runs/<dataset>/<method>-<setting>-k<shots>-f<fold>-s<seed>/zsl.json`` (``...-s<seed>-select`` when the
base config selects its hyperparameters, ``--select``; a last ``-contrastive`` with ``--extractor contrastive``). Besides T1, u, s, H the tables show H after calibrated
stacking, AUSUC and one diagnostic, the real-vs-generated probe on the unseen classes (``–`` where a run has none).
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io import atomic_write_json, atomic_write_text, read_json
from ..provenance import environment, now, versions
from ..study.runner import record_failure, run_task
from .benchmark import VERSION
from .run import ZSLConfig, run
from .run import saved as saved_run

LABELS = {"f-vaegan-d2": "f-VAEGAN-D2", "zero-vae-gan": "Zero-VAE-GAN", "f-clswgan": "f-CLSWGAN", "eszsl": "ESZSL",
          "ridge": "ridge"}
#: f-VAEGAN-D2's published results (Xian et al. 2019, Tables 2–3): ResNet-101 features of other datasets.
PUBLISHED = {"CUB": {"T1": 61.0, "u": 48.4, "s": 60.1, "H": 53.6}, "AWA2": {"T1": 71.1, "u": 57.6, "s": 70.6, "H": 63.5},
             "FLO": {"T1": 67.7, "u": 56.8, "s": 74.9, "H": 64.6}}


@dataclasses.dataclass
class StudyGrid:
    datasets: list[str]
    methods: list[str]
    settings: list[str]
    folds: list[int]
    seeds: list[int]
    shots: list[int]  # any-shot k > 0, inductive
    base: ZSLConfig  # epochs, lr, ... shared by every run
    shot_methods: list[str] = dataclasses.field(default_factory=lambda: ["f-vaegan-d2"])  # the methods run any-shot


def runs_of(g: StudyGrid) -> list[ZSLConfig]:
    out = []
    for ds, m, st, f, s in itertools.product(g.datasets, g.methods, g.settings, g.folds, g.seeds):
        out.append(dataclasses.replace(g.base, dataset=ds, method=m, setting=st, fold=f, seed=s, shots=0))
    for ds, m, k, f, s in itertools.product(g.datasets, [m for m in g.shot_methods if m in g.methods], [k for k in g.shots if k],
                                            g.folds, g.seeds):
        out.append(dataclasses.replace(g.base, dataset=ds, method=m, setting="inductive", fold=f, seed=s, shots=k))
    return out


def run_dir(out: Path, c: ZSLConfig) -> Path:
    extractor = "" if c.extractor == "supervised" else f"-{c.extractor}"
    return out / "runs" / c.dataset / f"{c.method}-{c.setting}-k{c.shots}-f{c.fold}-s{c.seed}{'-select' if c.select else ''}{extractor}"


#: the columns beyond T1, u, s, H: (record key, header); a run without the key (older records, ESZSL's probe) is left out
EXTRA = (("H_cal", "H_cal"), ("AUSUC", "AUSUC"), ("probe_unseen", "probe u"))


def _extra(r: dict[str, Any], key: str) -> float | None:
    v = r.get("diagnostics", {}).get(key) if key.startswith("probe") else r.get(key)
    return None if v is None else float(v)


def failed(r: dict[str, Any]) -> bool:
    return r.get("status") == "failed"


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, method, setting, shots): mean ± sd of the runs that finished (``n``), and
    how many failed (``n_failed``, a key only where some did); a row whose runs all failed has None values."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        c = r["config"]
        groups.setdefault((c["dataset"], c["method"], c["setting"], c["shots"]), []).append(r)
    rows = []
    for (ds, m, st, k), group in groups.items():
        rs = [r for r in group if not failed(r)]
        row = {"dataset": ds, "method": m, "setting": st, "shots": k, "n": len(rs)}
        if len(rs) < len(group):
            row["n_failed"] = len(group) - len(rs)
        if not rs:
            rows.append({**row, **{key: None for key in ("T1", "u", "s", "H", *(k for k, _ in EXTRA), "seconds")}})
            continue
        for key in ("T1", "u", "s", "H"):
            vals = np.array([r[key] for r in rs], dtype=float)
            row[key] = float(vals.mean())
            row[f"{key}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        for key, _ in EXTRA:
            vals = np.array([v for v in (_extra(r, key) for r in rs) if v is not None], dtype=float)
            row[key] = float(vals.mean()) if len(vals) else None
            row[f"{key}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        before = [r["before_self_training"]["H"] for r in rs if "before_self_training" in r]
        if before:
            row["H_before_self_training"] = float(np.mean(before))
        row["seconds"] = float(np.mean([r["seconds"] for r in rs]))
        rows.append(row)
    return rows


#: what ``zsl-results.json`` keeps of each run's zsl.json (beside its config and directory)
FAILURE_KEYS = ("status", "error", "error_type", "stage")
RECORD_KEYS = ("T1", "u", "s", "H", "u_cal", "s_cal", "H_cal", "AUSUC", "gamma", "seconds", "created", "versions", "machine")


def run_summary(r: dict[str, Any], d: Path) -> dict[str, Any]:
    """One run as ``zsl-results.json`` lists it: where it is, its config (seed included), its scores,
    the hyperparameters its selection chose, two diagnostics, its versions and machine."""
    if failed(r):
        return {"run_dir": str(d), "config": r["config"], **{k: r.get(k) for k in FAILURE_KEYS}}
    diag = r.get("diagnostics", {})
    return {"run_dir": str(d), "config": r["config"], **{k: r[k] for k in RECORD_KEYS if k in r},
            "selected": r.get("selection", {}).get("chosen"),
            "diagnostics": {k: diag[k] for k in ("gen_seen_to_real_seen", "probe_unseen") if k in diag}}


def markdown(rows: list[dict[str, Any]], g: StudyGrid, command: str | None, env: dict[str, Any] | None = None) -> str:
    def cell(r, k):
        if r.get(k) is None:
            return "–"
        return f"{100 * r[k]:.1f} ± {100 * r[k + '_sd']:.1f}"

    lines = [f"# Zero-shot study (vaelab ZSL benchmark v{VERSION})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if env:
        lines += [f"Collected on: {env['machine']['summary']}; vaelab commit {env.get('git_commit')}. Each run's own "
                  "machine and versions are in zsl-results.json (`runs`).", ""]
    lines += [f"Per-class accuracies in %, mean ± sd over folds {g.folds} × seeds {g.seeds}. T1: ZSL top-1 among the "
              "unseen classes; u, s: GZSL accuracy on unseen / seen test images among all classes; H: their harmonic "
              "mean; H_cal: H after calibrated stacking (γ chosen on seen classes only); AUSUC: area under the seen–unseen "
              "curve; probe u: held-out accuracy of a linear probe telling real from generated unseen test features (50 = "
              "indistinguishable). ESZSL and f-CLSWGAN use no unlabelled data: their transductive rows repeat the "
              "inductive setting." + (" Hyperparameters chosen per run on pseudo-unseen classes (--select)." if g.base.select
                                      else ""), ""]
    for ds in g.datasets:
        head = " | ".join(h for _, h in EXTRA)
        lines += [f"## {ds}", "", f"| method | setting | T1 | u | s | H | {head} | s/run |", "|---" * (7 + len(EXTRA)) + "|"]
        for r in sorted((r for r in rows if r["dataset"] == ds and r["shots"] == 0), key=lambda r: (r["setting"], r["method"])):
            extra = f" (before self-training: H {100 * r['H_before_self_training']:.1f})" if "H_before_self_training" in r else ""
            extra += f" ({r['n_failed']} of {r['n'] + r['n_failed']} runs failed)" if r.get("n_failed") else ""
            secs = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
            lines.append(f"| {LABELS[r['method']]}{extra} | {r['setting']} | {cell(r, 'T1')} | {cell(r, 'u')} | {cell(r, 's')} | "
                         f"{cell(r, 'H')} | " + " | ".join(cell(r, k) for k, _ in EXTRA) + f" | {secs} |")
        few = sorted((r for r in rows if r["dataset"] == ds and r["shots"] > 0), key=lambda r: (r["method"], r["shots"]))
        if few:
            lines += ["", "Any-shot (inductive, k labelled training images per unseen class):", "",
                      "| method | k | T1 | u | s | H |", "|---|---|---|---|---|---|"]
            for r in few:
                fails = f" ({r['n_failed']} failed)" if r.get("n_failed") else ""
                lines.append(f"| {LABELS[r['method']]}{fails} | {r['shots']} | {cell(r, 'T1')} | {cell(r, 'u')} | {cell(r, 's')} | {cell(r, 'H')} |")
        lines.append("")
    lines += ["## Context: published f-VAEGAN-D2 results on another benchmark", "",
              "Inductive, ResNet-101 features of CUB, AWA2 and FLO (Xian et al. 2019). Not comparable with the "
              "tables above: other data, other features, other attribute sets.", "",
              "| dataset | T1 | u | s | H |", "|---|---|---|---|---|"]
    for ds, r in PUBLISHED.items():
        lines.append(f"| {ds} | {r['T1']} | {r['u']} | {r['s']} | {r['H']} |")
    return "\n".join(lines) + "\n"


def failure_record(cfg: ZSLConfig, failure: dict[str, Any]) -> dict[str, Any]:
    """A failed run as the study's records hold it: its config (as zsl.json writes it) and the failure."""
    return {"config": cfg.to_dict(), "status": "failed", **{k: failure.get(k) for k in ("error", "error_type", "stage")}}


@dataclasses.dataclass
class ZSLJob:
    """One run of the grid: :func:`vaelab.zsl.run.run` into its directory (which reuses a finished one).
    An exception is recorded (``failed.json``) and returned as a failure record; KeyboardInterrupt is not
    caught (the run starts again next time)."""

    cfg: ZSLConfig
    out: Path
    prefix: str
    log: Callable[[str], None] | None
    shared_select: Path | None = None

    def __call__(self) -> dict[str, Any]:
        if self.log:
            self.log(self.prefix)
        (self.out / "failed.json").unlink(missing_ok=True)
        try:
            return run(self.cfg, self.out, self.log, self.shared_select)
        except Exception as e:  # noqa: BLE001 — one failing run must not stop the study
            failure = record_failure(self.out, e, "run")
            if self.log:
                self.log(f"{self.prefix}: FAILED: {failure['error']}")
            return failure_record(self.cfg, failure)


class ZSLTask:
    """``vaelab zsl --study`` as a :class:`vaelab.study.runner.StudyTask`: one unit per grid point. A run
    that raises is recorded and skipped next time unless ``retry_failed``."""

    executors = ("serial",)

    def __init__(self, g: StudyGrid, out: str | Path, log: Callable[[str], None] | None = None, command: str | None = None,
                 retry_failed: bool = False):
        self.g, self.out, self.log, self.command, self.retry_failed = g, Path(out), log, command, retry_failed

    def plan(self) -> list[ZSLConfig]:
        plan = runs_of(self.g)
        for c in plan:
            c.validate()
        return plan

    def open(self, specs: list[ZSLConfig], started: str) -> None:
        pass  # the grid's runs check their own configs (zsl.json)

    def label(self, c: ZSLConfig) -> str:
        return f"{c.dataset} {c.method} {c.setting} k={c.shots} fold {c.fold} seed {c.seed}"

    def saved(self, c: ZSLConfig, prefix: str, say: Callable[[str], None]) -> dict[str, Any] | None:
        d = run_dir(self.out, c)
        if (d / "failed.json").is_file() and not self.retry_failed:
            f = read_json(d / "failed.json")
            say(f"{prefix}: failed before ({f.get('error', '?')}); skipped (use --retry-failed to try again)")
            return failure_record(c, f)
        rec = saved_run(c, d)
        if rec is not None:
            say(f"{prefix}: finished before; skipped")
        return rec

    def prepare(self, pending: list[ZSLConfig], say: Callable[[str], None]) -> None:
        pass  # every run loads its own features (cached)

    def job(self, c: ZSLConfig, prefix: str, say: Callable[[str], None]) -> ZSLJob:
        # an any-shot run selects as the zero-shot run of its config does (vaelab.zsl.select): it shares that run's selection
        shared = run_dir(self.out, dataclasses.replace(c, shots=0)) / "select" if c.shots and c.select else None
        return ZSLJob(c, run_dir(self.out, c), prefix, self.log, shared)

    def collect(self, specs: list[ZSLConfig], records: list[dict[str, Any]], started: str, seconds: float) -> dict[str, Any]:
        summaries = [run_summary(r, run_dir(self.out, c)) for c, r in zip(specs, records)]
        n_failed = sum(map(failed, records))
        return {"benchmark_version": VERSION, "rows": aggregate(records), "command": self.command, "n_runs": len(records),
                **({"n_failed": n_failed} if n_failed else {}),
                "runs": summaries, "seconds": round(seconds, 1), "versions": versions(), "environment": environment(),
                "created": now()}

    def write(self, results: dict[str, Any]) -> None:
        atomic_write_json(self.out / "zsl-results.json", results)
        atomic_write_text(self.out / "zsl-results.md", markdown(results["rows"], self.g, self.command, results["environment"]))


def run_study(g: StudyGrid, out: str | Path, log: Callable[[str], None] | None = None, command: str | None = None,
              finish: Callable[[Path, dict[str, Any], Callable[[str], None]], None] | None = None,
              retry_failed: bool = False) -> list[dict]:
    """Run (or resume) the grid into ``out`` on the study runner (:mod:`vaelab.study.runner`); write
    zsl-results.{json,md}; then ``finish(out, results, say)`` if given. Returns the rows."""
    return run_task(ZSLTask(g, out, log, command, retry_failed), log or (lambda msg: None), finish=finish)["rows"]
