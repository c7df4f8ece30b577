"""The figures a run saved when it was evaluated, as the report reads them: ``RUN/figures/index.json``
(written by :mod:`vaelab.run_figures`) and the files it names, copied beside the report's page so
that the page stays self-contained. Nothing here loads a model or draws from one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes, read_json

#: A run's figures and their index, relative to the run directory (:data:`vaelab.run_figures.FOLDER`, ``INDEX``).
FOLDER, INDEX = "figures", "index.json"


def read_index(run: Path) -> dict[str, Any] | None:
    """The run's figure index, or None when it has none (evaluated before figures were saved with the
    evaluation, or its figures were interrupted)."""
    p = Path(run) / FOLDER / INDEX
    return read_json(p) if p.is_file() else None


def no_figures(run: Path, command: str) -> str:
    """What the page says in place of a figure of a run without saved figures; ``command``: the one that
    writes the page (``vaelab compare``, ``vaelab sequences``)."""
    return (f"no saved figures: {run} was evaluated before vaelab saved figures with the evaluation. "
            f"`vaelab evaluate {run} --figures-only` makes them (eval.json stays as it is); the same `{command}` "
            "command then shows them here")


def entry(run: Path, index: dict[str, Any] | None, kind: str, command: str) -> tuple[dict[str, Any], str | None]:
    """(index entry of figure ``kind``, None) when the run saved it, else (entry or {}, the reason it is
    not shown: the variant cannot make it, or the run has no saved figures)."""
    if index is None:
        return {}, no_figures(run, command)
    e = index.get("figures", {}).get(kind)
    if e is None:
        return {}, f"its evaluation made no {kind} figure"
    if "file" not in e:
        return e, e.get("reason") or "not available"
    return e, None


def copy(run: Path, name: str, dest: Path) -> str | None:
    """Copy ``RUN/figures/NAME`` to ``dest`` (atomically); None, or the reason when the file is gone."""
    src = Path(run) / FOLDER / name
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        return f"{src} is missing: `vaelab evaluate {run} --figures-only` draws it again"
    atomic_write_bytes(dest, data)
    return None
