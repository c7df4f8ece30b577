"""Rewrite tests/golden/losses.json from the current code: run it deliberately, when a variant's
objective changes on purpose (or a variant is added), and commit the JSON with the change; its diff
shows which values moved. The tests never write it.

    OMP_NUM_THREADS=1 PYTHONPATH=src python tests/golden/regenerate.py [variant ...]

With variant names, only those are recomputed (the others keep their stored values). Each variant is
computed twice and must give bitwise-equal values, or nothing is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: battery, golden_losses

import torch  # noqa: E402

import vaelab  # noqa: E402
from golden_losses import GOLDEN, LOSS_SEED, STEP, compare, compute  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", help="only these (default: every registered variant)")
    args = ap.parse_args(argv)
    registered = vaelab.variants()
    unknown = sorted(set(args.variants) - set(registered))
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; registered: {', '.join(registered)}")
    stored = json.loads(GOLDEN.read_text())["variants"] if GOLDEN.is_file() else {}
    values = {n: v for n, v in stored.items() if n in registered} if args.variants else {}
    for name in args.variants or registered:
        first, second = compute(name), compute(name)
        if compare(name, first, second, rtol=0.0, atol=0.0):
            print(f"{name}: two computations differ, nothing written:", *compare(name, first, second, 0.0, 0.0), sep="\n  ")
            return 1
        changes = compare(name, stored.get(name), first)
        print(f"{name}: " + ("unchanged" if not changes else f"{len(changes)} change(s)"))
        for line in changes:
            print("  " + line)
        values[name] = first
    doc = {
        "about": "Golden loss terms of every registered variant (tests/golden_losses.py says what is pinned and "
                 "how); written by tests/golden/regenerate.py, never by the tests.",
        "step": STEP,
        "loss_seed": LOSS_SEED,
        "torch": torch.__version__,
        "variants": dict(sorted(values.items())),
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({len(values)} variants)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
