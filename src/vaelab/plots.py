"""Matplotlib without pyplot: a ``Figure`` drawn on the Agg canvas and returned as PNG bytes (no global
state, no display). Used by the figures of a run (:mod:`vaelab.run_figures`) and of a report
(:mod:`vaelab.report.figures`)."""
from __future__ import annotations

import io


def figure(w: float, h: float):
    """A ``w`` × ``h`` inch figure at 100 dpi with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def png(fig) -> bytes:
    """The figure as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
