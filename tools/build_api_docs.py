"""Build the API reference (static HTML, one page per public module) from vaelab's docstrings and type
hints with the standard library's pydoc: ``python tools/build_api_docs.py [--out docs/api]``."""
from __future__ import annotations

import argparse
import html
import importlib
import pydoc
import re
from pathlib import Path

#: The public API: what README's "Python API" uses, the metrics, the datasets, the trainer's config, ZSL.
MODULES = ["vaelab", "vaelab.registry", "vaelab.rundir", "vaelab.training.config", "vaelab.data", "vaelab.metrics",
           "vaelab.metrics.generative", "vaelab.metrics.clustering", "vaelab.metrics.likelihood", "vaelab.metrics.zsl",
           "vaelab.metrics.disentanglement",
           "vaelab.models.base", "vaelab.zsl.run", "vaelab.zsl.benchmark", "vaelab.configfile", "vaelab.errors"]


def render(name: str) -> str:
    mod = importlib.import_module(name)
    page = pydoc.HTMLDoc().docmodule(mod)
    page = re.sub(r'<a href="file:[^"]*">[^<]*</a>', "", page)  # no paths of the machine that built it
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(name)} — vaelab API</title></head><body>"
            "<p><a href=\"index.html\">vaelab API index</a></p>" + page + "</body></html>\n")


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in MODULES:
        p = out / f"{name}.html"
        p.write_text(render(name), encoding="utf-8")
        written.append(p)
    items = "".join(f"<li><a href=\"{n}.html\">{n}</a>: {html.escape((importlib.import_module(n).__doc__ or '').strip().splitlines()[0])}</li>"
                    for n in MODULES)
    idx = out / "index.html"
    idx.write_text("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vaelab API</title></head><body>"
                   f"<h1>vaelab API reference</h1><p>Built by <code>python tools/build_api_docs.py</code> from the docstrings "
                   f"and type hints.</p><ul>{items}</ul></body></html>\n", encoding="utf-8")
    return [idx, *written]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "api"))
    for p in build(Path(ap.parse_args().out)):
        print(p)


if __name__ == "__main__":
    main()
