"""Studies: many (variant, seed) runs under one protocol, their aggregates and tables.

* :mod:`.settings` — what defines a study (:class:`Settings`), one run of it (:class:`RunSpec`), the
  protocols and the seed paper's Table 2;
* :mod:`.plan` — the runs of a study and the state of each on disk;
* :mod:`.runner` — the one runner of every study (this package's, the sequence study's, the zero-shot
  study's): a :class:`StudyTask` run through an executor (:class:`SerialExecutor` by default);
* :mod:`.execute` — the image study as a task: one (variant, seed) run trained and evaluated per job;
* :mod:`.results` — aggregates over seeds and the results.json / .csv / .md tables.

The report (:mod:`vaelab.report`) reads results.json with the public functions of :mod:`.results`;
this package never imports the report.
"""
from .execute import ImageStudy, Job, execute, run_study
from .plan import check_compatible, plan, run_state
from .results import (COLUMNS, aggregate, collect, compute_line, compute_totals, fmt_metric, markdown, ordered, task_metrics,
                      task_rows, write_results)
from .runner import Executor, SerialExecutor, StudyTask, run_task
from .settings import DEFAULTS, PAPER_TABLE2, PROTOCOLS, QUICK, RunSpec, Settings, canonical_command

__all__ = ["Settings", "RunSpec", "plan", "run_study", "execute", "Executor", "SerialExecutor", "Job", "StudyTask", "run_task", "ImageStudy", "aggregate", "collect",
           "compute_line", "compute_totals", "check_compatible", "run_state", "COLUMNS", "fmt_metric", "ordered",
           "task_metrics", "task_rows", "markdown", "write_results", "canonical_command", "PAPER_TABLE2", "QUICK", "DEFAULTS",
           "PROTOCOLS"]
