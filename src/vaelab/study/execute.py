"""Running a study: bring every planned run to trained + evaluated, through an executor.

An executor runs independent jobs (here: one (variant, seed) run each) and returns their records in
order. :class:`SerialExecutor` runs them one after another in this process; an executor for several
processes or a cluster implements the same ``map``.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import ConfigError
from ..provenance import now
from .plan import _read, check_compatible, plan, run_state
from .results import _plural, collect, write_results
from .settings import EVAL_SEED, SCHEMA, RunSpec, Settings


# ----- progress --------------------------------------------------------------------------------------
class Progress(logging.Handler):
    """One-line progress messages of a run: the trainer's structured events (``on_event``) with the
    run's position, and any other message logged during training (e.g. VaDE's GMM fit), verbatim."""

    def __init__(self, prefix: str, phases: list[tuple[str, int]], say: Callable[[str], None]):
        super().__init__(logging.INFO)
        self.prefix, self.epochs, self.say = prefix, dict(phases), say

    def on_event(self, ev: dict[str, Any]) -> None:
        if ev["event"] == "epoch":
            phase = ev["phase"]
            verb = "training" if phase == "train" else f"phase {phase}"
            self.say(f"{self.prefix}: {verb} epoch {ev['epoch']}/{self.epochs.get(phase, '?')} done ({ev['seconds']:.1f}s)")
        elif ev["event"] == "phase" and len(self.epochs) > 1:
            self.say(f"{self.prefix}: phase {ev['phase']} ({_plural(ev['epochs'], 'epoch')})")

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "vaelab_event", False):  # already reported through on_event
            return
        try:
            self.say(f"{self.prefix}: {record.getMessage()}")
        except Exception:  # progress must never break training
            pass


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----- running ---------------------------------------------------------------------------------------
class Executor(Protocol):
    """Runs independent jobs and returns their results in the order given. A job is a picklable
    zero-argument callable (a :class:`Job`), so an executor may run it in another process or on
    another machine; it must let ``KeyboardInterrupt`` through."""

    def map(self, jobs: list["Job"]) -> list[dict[str, Any]]: ...


class SerialExecutor:
    """Every job in this process, one after another (the default)."""

    def map(self, jobs: list["Job"]) -> list[dict[str, Any]]:
        return [job() for job in jobs]


@dataclasses.dataclass
class Job:
    """Bring one planned run to trained + evaluated: ``Job(...)()`` returns the run's record."""

    spec: RunSpec
    settings: Settings
    classifier: Any
    prefix: str
    say: Callable[[str], None]

    def __call__(self) -> dict[str, Any]:
        return execute(self.spec, self.settings, self.classifier, self.prefix, self.say)


def execute(spec: RunSpec, s: Settings, classifier, prefix: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Bring one run to done + evaluated; return its record. Failures are caught and recorded
    (failed.json); KeyboardInterrupt is not (the run resumes next time)."""
    from ..io import atomic_write_json
    from ..rundir import evaluate_run, train

    state = run_state(spec, s)
    rec: dict[str, Any] = {"variant": spec.variant, "seed": spec.seed, "run_dir": str(spec.run_dir), "state_before": state}
    if state == "failed":
        f = _read(spec.run_dir / "failed.json") or {}
        say(f"{prefix}: failed before ({f.get('error', '?')}); skipped (use --retry-failed to try again)")
        return {**rec, "status": "failed", **{k: f.get(k) for k in ("error", "error_type", "stage")}}
    if state == "done":
        say(f"{prefix}: finished before; skipped")
        return {**rec, "status": "ok", "eval": _read(spec.run_dir / "eval.json")}
    check_compatible(spec)
    t0 = time.perf_counter()
    stage = "train"
    progress = Progress(prefix, spec.phases, say)
    lg = logging.getLogger("vaelab.train")
    try:
        (spec.run_dir / "failed.json").unlink(missing_ok=True)
        if state in ("new", "resume"):
            plan_txt = ", ".join(f"{p} {_plural(e, 'epoch')}" for p, e in spec.phases)
            say(f"{prefix}: {'resuming' if state == 'resume' else 'training'} ({plan_txt})")
            lg.addHandler(progress)
            try:
                if state == "new":
                    train(spec.variant, dict(spec.model), dataclasses.replace(spec.train), spec.run_dir,
                          on_event=progress.on_event, tensorboard=s.tensorboard)
                else:
                    train(None, resume=True, run_dir=spec.run_dir, on_event=progress.on_event, tensorboard=s.tensorboard)
            finally:
                lg.removeHandler(progress)
        stage = "evaluate"
        say(f"{prefix}: evaluating (samples {s.n_samples}, IWAE K={s.iwae_k} on {s.iwae_n} images)")
        ev = evaluate_run(spec.run_dir, n_samples=s.n_samples, iwae_k=s.iwae_k, iwae_n=s.iwae_n, seed=EVAL_SEED,
                          data_dir=s.data_dir, classifier=classifier, write=True, log=lambda m: say(f"{prefix}: {m}"),
                          device=s.device, map_points=s.map_points, disentanglement=s.disentanglement)
    except Exception as e:  # noqa: BLE001 — one failing run must not stop the study
        err = f"{type(e).__name__}: {e}".strip()
        failure = {"error": err.splitlines()[0][:500] if err else type(e).__name__, "error_type": type(e).__name__,
                   "stage": stage, "traceback": traceback.format_exc(), "time": now()}
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(spec.run_dir / "failed.json", failure)
        say(f"{prefix}: FAILED in {stage}: {failure['error']}")
        return {**rec, "status": "failed", "error": failure["error"], "error_type": failure["error_type"], "stage": stage,
                "wall_seconds": round(time.perf_counter() - t0, 2)}
    wall = round(time.perf_counter() - t0, 2)
    say(f"{prefix}: done in {wall:.0f}s (recon accuracy {_pct(ev.get('recon_accuracy'))})")
    return {**rec, "status": "ok", "eval": ev, "wall_seconds": wall}


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "n/a"


def run_study(s: Settings, say: Callable[[str], None] | None = None, executor: Executor | None = None,
              finish: Callable[[Path, dict[str, Any], Callable[[str], None]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the whole study and write results.{json,csv,md}; then ``finish(out, results, say)``
    if given (``vaelab compare`` passes the report writer). Returns the results."""
    from ..io import RunLock, atomic_write_json

    say = say or _stderr
    executor = executor or SerialExecutor()
    specs = plan(s)
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        study = _read(out / "study.json")
        if study and study.get("settings") != s.study_key():
            have, want = study.get("settings", {}), s.study_key()
            k = next((k for k in want if have.get(k) != want[k]), "settings")
            raise ConfigError(f"{out}: holds a study with {k}={have.get(k)!r}, this one asks {want.get(k)!r}; "
                              "use another --out")
        for spec in specs:  # refuse before training anything
            if spec.run_dir.is_dir() and (spec.run_dir / "config.json").is_file():
                check_compatible(spec)
        started = now()
        atomic_write_json(out / "study.json", {"schema": SCHEMA, "settings": s.study_key(),
                                               "created": (study or {}).get("created", started)})
        classifier = None
        if any(run_state(sp, s) not in ("done", "failed") for sp in specs):
            from ..data import load_dataset, user
            from ..reference_classifier import load_or_train

            if not user.is_user_spec(s.dataset) or load_dataset(s.dataset, "test", s.data_dir, image_size=s.image_size).labelled:
                say(f"reference classifier for {s.dataset} (trained once, then cached)")
                classifier = load_or_train(s.dataset, s.data_dir, log=say, image_size=s.image_size)
        t0 = time.perf_counter()
        jobs = [Job(spec, s, classifier, f"[{i}/{len(specs)}] {spec.variant} seed {spec.seed}", say)
                for i, spec in enumerate(specs, 1)]
        runs = executor.map(jobs)
        results = collect(s, specs, runs, started=started, seconds=time.perf_counter() - t0)
        write_results(results, out)
        if finish is not None:
            finish(out, results, say)
    return results
