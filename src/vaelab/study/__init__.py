"""Studies: many (variant, seed) runs under one protocol, their aggregates and tables.

* :mod:`.settings` — what defines a study (:class:`Settings`), one run of it (:class:`RunSpec`), the
  protocols and the seed paper's Table 2;
* :mod:`.plan` — the runs of a study and the state of each on disk;
* :mod:`.execute` — running them through an executor (:class:`SerialExecutor` by default);
* :mod:`.results` — aggregates over seeds and the results.json / .csv / .md tables.

The report (:mod:`vaelab.report`) reads results.json with the public functions of :mod:`.results`;
this package never imports the report.
"""
from .execute import Executor, Job, SerialExecutor, execute, run_study
from .plan import check_compatible, plan, run_state
from .results import (COLUMNS, aggregate, collect, compute_line, compute_totals, fmt_metric, markdown, ordered, task_metrics,
                      task_rows, write_results)
from .settings import DEFAULTS, PAPER_TABLE2, PROTOCOLS, QUICK, RunSpec, Settings, canonical_command

__all__ = ["Settings", "RunSpec", "plan", "run_study", "execute", "Executor", "SerialExecutor", "Job", "aggregate", "collect",
           "compute_line", "compute_totals", "check_compatible", "run_state", "COLUMNS", "fmt_metric", "ordered",
           "task_metrics", "task_rows", "markdown", "write_results", "canonical_command", "PAPER_TABLE2", "QUICK", "DEFAULTS",
           "PROTOCOLS"]
