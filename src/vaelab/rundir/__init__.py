"""The run directory: everything that reads or writes one run's files.

A run directory holds ``config.json`` (the resolved variant and training configs, versions, command),
``checkpoint.safetensors`` + ``checkpoint.json`` (weights, optimizer and RNG state), ``metrics.jsonl``
(one record per epoch), ``train.log``, ``samples.png`` / ``reconstructions.png`` and, once evaluated,
``eval.json`` (schema in :mod:`vaelab.eval_schema`) and ``figures/`` (:mod:`vaelab.run_figures`).

* :func:`train` — train a variant into a run directory, or resume one;
* :func:`load` — the trained variant of a run (its stored config validated as :func:`vaelab.build` does);
* :func:`evaluate_run` — every metric of a run, a composition of :mod:`vaelab.scoring`'s stages, and its
  figures (:func:`make_figures`: the figures alone);
* :func:`run_config`, :func:`read_metrics` — the run's records.
"""
from __future__ import annotations

from ..io import read_metrics
from .evaluation import evaluate_run, make_figures
from .records import load, run_config
from .train_run import build_variant, data_defaults, load_splits, train

__all__ = ["train", "load", "evaluate_run", "make_figures", "run_config", "read_metrics", "build_variant", "load_splits",
           "data_defaults"]
