"""The image study (``vaelab compare``) on the study runner: bring every planned (variant, seed) run to
trained + evaluated (:func:`execute`, also what the sequence study runs), as a :class:`Job` an executor
may run elsewhere (:mod:`.runner`: serial; :mod:`.ray_executor`), and summarise them (:mod:`.results`).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..io import atomic_write_json
from .plan import _read, check_compatible, plan, run_state
from .results import _plural, collect, write_results
from .runner import Executor, record_failure, run_task, stderr_say
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


_stderr = stderr_say


# ----- running ---------------------------------------------------------------------------------------
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


def _record(spec: RunSpec, state: str) -> dict[str, Any]:
    return {"variant": spec.variant, "seed": spec.seed, "run_dir": str(spec.run_dir), "state_before": state}


def saved_record(spec: RunSpec, s: Settings, prefix: str, say: Callable[[str], None]) -> dict[str, Any] | None:
    """The record of a run finished and evaluated before, or of a recorded failure (not retried); None
    when the run is to be trained or evaluated."""
    state = run_state(spec, s)
    rec = _record(spec, state)
    if state == "failed":
        f = _read(spec.run_dir / "failed.json") or {}
        say(f"{prefix}: failed before ({f.get('error', '?')}); skipped (use --retry-failed to try again)")
        return {**rec, "status": "failed", **{k: f.get(k) for k in ("error", "error_type", "stage")}}
    if state == "done":
        say(f"{prefix}: finished before; skipped")
        return {**rec, "status": "ok", "eval": _read(spec.run_dir / "eval.json")}
    return None


def execute(spec: RunSpec, s: Settings, classifier, prefix: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Bring one run to done + evaluated; return its record. Failures are caught and recorded
    (failed.json); KeyboardInterrupt is not (the run resumes next time)."""
    from ..rundir import evaluate_run, train  # local: torch; keeps `vaelab --help` at 0.1 s

    done = saved_record(spec, s, prefix, say)
    if done is not None:
        return done
    state = run_state(spec, s)
    rec = _record(spec, state)
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
        failure = record_failure(spec.run_dir, e, stage)
        say(f"{prefix}: FAILED in {stage}: {failure['error']}")
        return {**rec, "status": "failed", "error": failure["error"], "error_type": failure["error_type"], "stage": stage,
                "wall_seconds": round(time.perf_counter() - t0, 2)}
    wall = round(time.perf_counter() - t0, 2)
    say(f"{prefix}: done in {wall:.0f}s (recon accuracy {_pct(ev.get('recon_accuracy'))})")
    return {**rec, "status": "ok", "eval": ev, "wall_seconds": wall}


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "n/a"


# ----- the image study as a task of the runner ---------------------------------------------------------
class ImageStudy:
    """``vaelab compare`` as a :class:`vaelab.study.runner.StudyTask`: one unit per (variant, seed), run
    by a :class:`Job` (serially or on Ray), summarised in results.{json,csv,md}."""

    executors = ("serial", "ray")

    def __init__(self, s: Settings):
        self.s, self.out, self.classifier = s, Path(s.out), None

    def plan(self) -> list[RunSpec]:
        return plan(self.s)

    def open(self, specs: list[RunSpec], started: str) -> None:
        study = _read(self.out / "study.json")
        if study and study.get("settings") != self.s.study_key():
            have, want = study.get("settings", {}), self.s.study_key()
            k = next((k for k in want if have.get(k) != want[k]), "settings")
            raise ConfigError(f"{self.out}: holds a study with {k}={have.get(k)!r}, this one asks {want.get(k)!r}; "
                              "use another --out")
        for spec in specs:  # refuse before training anything
            if spec.run_dir.is_dir() and (spec.run_dir / "config.json").is_file():
                check_compatible(spec)
        atomic_write_json(self.out / "study.json", {"schema": SCHEMA, "settings": self.s.study_key(),
                                                    "created": (study or {}).get("created", started)})

    def label(self, spec: RunSpec) -> str:
        return f"{spec.variant} seed {spec.seed}"

    def saved(self, spec: RunSpec, prefix: str, say: Callable[[str], None]) -> dict[str, Any] | None:
        return saved_record(spec, self.s, prefix, say)

    def prepare(self, pending: list[RunSpec], say: Callable[[str], None]) -> None:
        s = self.s
        if not pending:
            return
        from ..data import load_dataset, user  # local: torch; keeps `vaelab --help` at 0.1 s
        from ..reference_classifier import load_or_train  # local: torch; keeps `vaelab --help` at 0.1 s

        if not user.is_user_spec(s.dataset) or load_dataset(s.dataset, "test", s.data_dir, image_size=s.image_size).labelled:
            say(f"reference classifier for {s.dataset} (trained once, then cached)")
            self.classifier = load_or_train(s.dataset, s.data_dir, log=say, image_size=s.image_size)

    def job(self, spec: RunSpec, prefix: str, say: Callable[[str], None]) -> Job:
        return Job(spec, self.s, self.classifier, prefix, say)

    def collect(self, specs: list[RunSpec], records: list[dict[str, Any]], started: str, seconds: float) -> dict[str, Any]:
        return collect(self.s, specs, records, started=started, seconds=seconds)

    def write(self, results: dict[str, Any]) -> None:
        write_results(results, self.out)


def run_study(s: Settings, say: Callable[[str], None] | None = None, executor: Executor | None = None,
              finish: Callable[[Path, dict[str, Any], Callable[[str], None]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the whole study and write results.{json,csv,md}; then ``finish(out, results, say)``
    if given (``vaelab compare`` passes the report writer). Returns the results."""
    return run_task(ImageStudy(s), say, executor, finish)
