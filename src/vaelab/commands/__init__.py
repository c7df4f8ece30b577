"""CLI subcommands, one module each: ``add_parser(subparsers)`` registers it and sets ``run``."""
import sys


def stderr_log(msg: str) -> None:
    """Progress messages of a command: one line each on stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)
