"""lazysi command line: a thin typed layer over the library.

Each subcommand lives in its own module ``lazysi.cmd_<name>`` exposing ``add_parser(subparsers)``
and ``run(args) -> int``; every command is a library call you can also make from Python. Only the
selected command's module is imported (``lazysi --help`` and ``--version`` load neither torch nor
sympy); the one-line summaries of ``lazysi --help`` live in :data:`COMMANDS`. :func:`main` turns
exceptions into exit statuses (see :data:`DESCRIPTION`).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

__all__ = ["COMMANDS", "UsageError", "build_parser", "main", "version"]

DESCRIPTION = """\
lazysi: lazy and point-mass stochastic interpolants -- schedules derived by sympy, generated
torch kernels, machine-checked claims, few-step samplers for pretrained models.

examples:
  lazysi derive --family point-mass --param sigma=0.5 --json
  lazysi derive --alpha "cos(pi*t/2)" --beta "sin(pi*t/2)"
  lazysi codegen --check
  lazysi verify --quick
  lazysi sample --model mnist --sampler lazy-ode --steps 4 --n 64 --out runs/lazy4
  lazysi COMMAND --help          # the options and examples of one command

exit status: 0 success; 1 a check failed (verify, codegen --check, an invalid schedule) or an
internal error; 2 a usage error (bad option, file, checkpoint, output folder, missing extra);
130 interrupted (Ctrl-C).
Errors are one line on stderr; 'lazysi --debug COMMAND ...' adds the traceback.
"""

#: command -> one-line summary for ``lazysi --help``. The command's module ``lazysi.cmd_<name>``
#: (and with it torch / sympy) is imported only when that command is selected.
COMMANDS: dict[str, str] = {
    "derive": "derive alpha_dot, beta_dot, lambda, eps* and the validity report of a schedule",
    "codegen": "regenerate (or --check) the committed torch kernels of the built-in families",
    "convert": "time map tau(s), scale c(s), converted eps and drift between two schedules",
    "verify": "run the theorem claims (symbolic proofs and numeric checks); exit 1 if any fails",
    "sample": "sample a pretrained model (lazy samplers and baselines)",
    "bench": "quality vs NFE: lazy samplers against diffusers / flow_matching peers",
}

# Exceptions that are the user's doing (bad input, files, environment): one line, exit 2. Named
# by module and class and looked up in ``sys.modules`` only, so that classifying an error never
# imports torch or sympy (a class whose module was never imported cannot have been raised).
USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("lazysi.cli", "UsageError"),
    ("lazysi.symbolic.expr", "ExpressionError"),
    ("lazysi.symbolic.schedule", "ScheduleError"),
    ("lazysi.symbolic.target", "TargetError"),
    ("lazysi.numeric.models", "CheckpointError"),
    ("lazysi.numeric.io.outdir", "OutputDirError"),
    ("lazysi.numeric.extras", "MissingExtraError"),
    ("safetensors", "SafetensorError"),
)


class UsageError(Exception):
    """Bad user input: printed as one line, exit status 2."""


class _ArgumentError(Exception):
    """An argparse error, already formatted as one line."""


class _Parser(argparse.ArgumentParser):
    """``error()`` raises instead of printing usage + exiting, so that :func:`main` prints one line
    and returns 2 (and in-process callers get a status, not ``SystemExit``)."""

    def error(self, message: str):  # type: ignore[override]
        raise _ArgumentError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``lazysi.__version__``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("lazysi")
    except PackageNotFoundError:
        from lazysi import __version__

        return __version__


def _command_in(argv: Sequence[str]) -> tuple[str | None, int]:
    """The first non-option word of ``argv`` (the top-level options take no value) and its index."""
    for i, tok in enumerate(argv):
        if tok == "--":
            return (argv[i + 1] if i + 1 < len(argv) else None), i + 1
        if not tok.startswith("-"):
            return tok, i
    return None, len(argv)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``lazysi`` parser. Only the command selected in ``argv`` gets its full parser (its module
    is imported); every other command is a stub carrying its summary, which is all ``--help``
    shows. ``argv=None`` builds every command (slow: imports everything)."""
    selected, _ = _command_in(argv) if argv is not None else (None, 0)
    parser = _Parser(prog="lazysi", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lazysi {version()}")
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of an error (accepted after the command too)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name, summary in COMMANDS.items():
        if argv is None or name == selected:
            module = importlib.import_module(f"lazysi.cmd_{name}")
            p = module.add_parser(sub)
            p.set_defaults(_run=module.run)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def _is_user_error(exc: BaseException) -> bool:
    for mod_name, cls_name in USER_ERRORS:
        cls = getattr(sys.modules.get(mod_name), cls_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _user_message(exc: BaseException) -> str | None:
    """One line for a user error, ``None`` for anything else."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        from lazysi.numeric.extras import missing_extra_message

        return missing_extra_message(exc.name)
    if _is_user_error(exc):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and exc.errno is not None:
        # a missing / unreadable / unwritable path the user gave
        return f"{exc.strerror}: {exc.filename}"
    if isinstance(exc, FileNotFoundError):  # raised by the library with the path in the message
        return str(exc)
    return None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lazysi`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is global but accepted anywhere (before a '--'): 'lazysi sample ... --debug' works too
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    argv = [tok for tok in argv[:end] if tok != "--debug"] + argv[end:]
    selected, _ = _command_in(argv)
    where = f"lazysi {selected}" if selected in COMMANDS else "lazysi"
    try:
        parser = build_parser(argv)
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:  # --help / --version print and exit 0
            return exc.code if isinstance(exc.code, int) else 0
        if extra:  # reported by the command's parser, whose --help lists what it takes
            raise _ArgumentError(f"{where}: error: unrecognized arguments: {' '.join(extra)} (see '{where} --help')")
        return int(args._run(args) or 0)
    except _ArgumentError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line, no traceback
        if debug:
            traceback.print_exc()
        message = _user_message(exc)
        if message is not None:
            print(f"{where}: error: {_one_line(message)}", file=sys.stderr)
            return 2
        print(f"{where}: internal error: {type(exc).__name__}: {_one_line(exc)[:500]} "
              f"(rerun with 'lazysi --debug {selected or 'COMMAND'} ...' for the traceback)", file=sys.stderr)
        return 1
