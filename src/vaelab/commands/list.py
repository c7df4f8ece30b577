"""vaelab list: registered variants and their config keys."""
from __future__ import annotations

import argparse
import dataclasses

from ..registry import get, variants

ORDER = 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list the registered variants and their config keys")
    p.add_argument("--verbose", "-v", action="store_true", help="show every config key with its default")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in variants():
        cls = get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        where = {"features": "  [feature vectors: run with `vaelab zsl`]",
                 "sequence": "  [sequences: --dataset moving-mnist[-5k]; study: `vaelab sequences`]"}.get(cls.data_kind, "")
        print(f"{name:12s} {doc}{where}")
        if args.verbose:
            for f in dataclasses.fields(cls.Config):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                print(f"{'':14s}{f.name} = {default!r}")
    return 0
