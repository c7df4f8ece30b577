"""Collect evaluated run directories into a results file for docs/results/: per run its label, variant,
seed, model and training config, the command that trained it, its metrics (eval.json), versions,
and the machine (CPU model) and vaelab commit at collection time; plus a Markdown table.

    python tools/run_results.py --out docs/results/NAME --title "..." --columns content_accuracy,neg_elbo \\
        LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Writes NAME.json and NAME.md (atomically). A run without eval.json is refused.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def collect(pairs: list[tuple[str, Path]]) -> list[dict]:
    from vaelab.io import read_json

    runs = []
    for label, d in pairs:
        if not (d / "eval.json").is_file() or not (d / "config.json").is_file():
            sys.exit(f"{d}: not an evaluated run directory (needs config.json and eval.json)")
        conf, ev = read_json(d / "config.json"), read_json(d / "eval.json")
        metrics = {k: v for k, v in ev.items() if k != "meta" and isinstance(v, (int, float))}
        runs.append({"label": label, "run_dir": str(d), "variant": conf.get("variant"), "seed": conf["train"].get("seed"),
                     "command": conf.get("command"), "created": conf.get("created"), "model": conf.get("model"),
                     "train": conf.get("train"), "versions": conf.get("versions"), "metrics": metrics,
                     "eval_versions": ev.get("meta", {}).get("versions"),
                     "judge": {k: ev.get("meta", {}).get("classifier", {}).get(k) for k in ("stem", "arch", "test_accuracy")}})
    return runs


def markdown(title: str, runs: list[dict], columns: list[str], env: dict, note: str = "") -> str:
    pct = lambda k: "accuracy" in k or k.startswith("probe") or k.startswith("swap")  # noqa: E731
    lines = [f"# {title}", "", *([note, ""] if note else []),
             f"Collected on: {env['machine']['summary']}; vaelab commit {env.get('git_commit')}.", "",
             "| run | seed | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for r in runs:
        cells = []
        for k in columns:
            v = r["metrics"].get(k)
            cells.append("n/a" if v is None else (f"{100 * v:.1f}%" if pct(k) else f"{v:.1f}"))
        lines.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "Commands:", ""] + [f"- {r['label']}: `{r['command']}`" for r in runs]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="path without extension")
    p.add_argument("--title", required=True)
    p.add_argument("--columns", required=True, help="comma list of metric keys for the table")
    p.add_argument("--note", default="", help="a paragraph placed under the title (how the runs were evaluated, ...)")
    p.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    a = p.parse_args()
    from vaelab.io import atomic_write_json, atomic_write_text
    from vaelab.provenance import environment, now

    pairs = []
    for item in a.runs:
        label, sep, d = item.partition("=")
        if not sep:
            sys.exit(f"{item!r}: expected LABEL=RUN_DIR")
        pairs.append((label, Path(d)))
    runs, env = collect(pairs), environment()
    cols = [c for c in a.columns.split(",") if c]
    atomic_write_json(Path(a.out + ".json"), {"title": a.title, "note": a.note, "collected": now(), "environment": env, "runs": runs})
    atomic_write_text(Path(a.out + ".md"), markdown(a.title, runs, cols, env, a.note))
    print(a.out + ".md")


if __name__ == "__main__":
    main()
