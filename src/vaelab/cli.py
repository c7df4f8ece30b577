"""The ``vaelab`` command line. Each subcommand lives in :mod:`vaelab.commands` (one module each,
exposing ``add_parser(subparsers)`` and ``run(args)``), discovered here.

Bad input (a file, an option, a config value) prints one line and exits with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from ._version import __version__
from .errors import TrainingDiverged, VaelabError, WriteFailed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaelab", description="Train, evaluate and compare VAE variants on one footing.")
    p.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: getattr(importlib.import_module(f"{commands.__name__}.{m.name}"), "ORDER", 50)):
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given (e.g. to start the same in several processes)
    try:
        rc = args.run(args)
    except VaelabError as e:
        print(f"vaelab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"vaelab {args.command}: training diverged: {e}", file=sys.stderr)
        return 1
    except WriteFailed as e:
        print(f"vaelab {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vaelab {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
