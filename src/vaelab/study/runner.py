"""One runner for every study. A study is a :class:`StudyTask`: what its units are (``plan``), which of
them a directory holds already (``saved``), how one is trained and scored (``job``), and how the records
become its results (``collect``) and tables (``write``). :func:`run_task` owns the rest, the same for
every task: the study directory and its lock, skipping the units done before, the executor that runs
the others (serial; Ray where the task allows it), then aggregation, tables and the report hook.

The tasks: the image study (``vaelab compare``, :class:`vaelab.study.execute.ImageStudy`), the sequence
study (``vaelab sequences``, :class:`vaelab.study.sequences.SequenceTask`) and the zero-shot study
(``vaelab zsl --study``, :class:`vaelab.zsl.study.ZSLTask`). The report is not a task's: the command
passes ``finish(out, results, say)`` (this package never imports the report).

A unit's failure is recorded in its own directory (``failed.json``, :func:`record_failure`) by the task's
job, which knows the stage it failed in; ``saved`` reads it back, so the next invocation skips that
unit until ``--retry-failed``. KeyboardInterrupt is never caught: the unit resumes next time.
"""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import ConfigError
from ..io import RunLock, atomic_write_json
from ..provenance import now

Say = Callable[[str], None]
Record = dict[str, Any]


class Executor(Protocol):
    """Runs independent jobs and returns their results in the order given. A job is a picklable
    zero-argument callable, so an executor may run it in another process or on another machine; it
    must let ``KeyboardInterrupt`` through. ``name`` is what ``--executor`` calls it."""

    name: str

    def map(self, jobs: list[Callable[[], Record]]) -> list[Record]: ...


class SerialExecutor:
    """Every job in this process, one after another (the default)."""

    name = "serial"

    def map(self, jobs: list[Callable[[], Record]]) -> list[Record]:
        return [job() for job in jobs]


class StudyTask(Protocol):
    """One kind of study. ``out`` is its directory; ``executors`` the executors it may run under."""

    out: Path
    executors: tuple[str, ...]

    def plan(self) -> list[Any]:
        """The units in order, every config validated (a bad value raises ConfigError); writes nothing."""

    def open(self, specs: list[Any], started: str) -> None:
        """Under the lock, before any unit runs: refuse a directory that holds another study; record this one's settings."""

    def label(self, spec: Any) -> str:
        """The unit in progress messages (after ``[i/n] ``)."""

    def saved(self, spec: Any, prefix: str, say: Say) -> Record | None:
        """The unit's record when the directory holds it finished (or failed, not to be retried); None: run it."""

    def prepare(self, pending: list[Any], say: Say) -> None:
        """What the units to run (and ``collect``) share, made once: a reference classifier, a judge."""

    def job(self, spec: Any, prefix: str, say: Say) -> Callable[[], Record]:
        """A picklable callable that trains and scores one unit and returns its record."""

    def collect(self, specs: list[Any], records: list[Record], started: str, seconds: float) -> dict[str, Any]:
        """The study's results from every unit's record (in plan order): aggregates and provenance."""

    def write(self, results: dict[str, Any]) -> None:
        """The study's tables (JSON, markdown, ...) into ``out``, atomically."""


def stderr_say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_task(task: StudyTask, say: Say | None = None, executor: Executor | None = None,
             finish: Callable[[Path, dict[str, Any], Say], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the study ``task`` describes and write its tables; then ``finish(out, results, say)``
    if given (the command's report writer). Returns the results."""
    say = say or stderr_say
    executor = executor or SerialExecutor()
    name = getattr(executor, "name", "serial")
    if name not in task.executors:
        raise ConfigError(f"--executor {name}: this study runs with {' or '.join(task.executors)} only")
    specs = task.plan()
    out = Path(task.out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        started = now()
        task.open(specs, started)
        prefixes = [f"[{i}/{len(specs)}] {task.label(spec)}" for i, spec in enumerate(specs, 1)]
        records = [task.saved(spec, prefix, say) for spec, prefix in zip(specs, prefixes)]
        pending = [i for i, rec in enumerate(records) if rec is None]
        task.prepare([specs[i] for i in pending], say)
        t0 = time.perf_counter()
        for i, rec in zip(pending, executor.map([task.job(specs[i], prefixes[i], say) for i in pending])):
            records[i] = rec
        results = task.collect(specs, records, started=started, seconds=time.perf_counter() - t0)
        task.write(results)
        if finish is not None:
            finish(out, results, say)
    return results


def record_failure(run_dir: Path, error: BaseException, stage: str) -> Record:
    """Write ``run_dir/failed.json`` for a unit that raised ``error`` in ``stage``; returns the record
    (error: its first line; error_type; stage; traceback; time)."""
    err = f"{type(error).__name__}: {error}".strip()
    failure = {"error": err.splitlines()[0][:500] if err else type(error).__name__, "error_type": type(error).__name__,
               "stage": stage, "traceback": traceback.format_exc(), "time": now()}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "failed.json", failure)
    return failure
