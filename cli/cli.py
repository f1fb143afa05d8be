"""lazysi command line: a thin typed layer over the library.

Each subcommand lives in its own module ``lazysi.cmd_<name>`` exposing ``add_parser(subparsers)``
and ``run(args) -> int``; every command is a library call you can also make from Python.

Examples::

    lazysi derive --family point-mass --param sigma=0.5 --json
    lazysi derive --alpha "cos(pi*t/2)" --beta "sin(pi*t/2)"
    lazysi codegen --check
    lazysi verify --quick
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("derive", "codegen", "convert", "verify", "sample", "bench")


class UsageError(Exception):
    """Bad user input: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lazysi", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"lazysi.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lazysi.cmd_{name}":
                raise
            continue
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from lazysi.symbolic.expr import ExpressionError
    from lazysi.symbolic.schedule import ScheduleError

    try:
        return int(args._run(args) or 0)
    except (UsageError, ExpressionError, ScheduleError) as exc:
        print(f"lazysi {args.command}: error: {exc}", file=sys.stderr)
        return 2
