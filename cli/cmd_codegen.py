"""``lazysi codegen``: regenerate (or check) the committed generated torch modules."""
from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "codegen",
        help="regenerate the committed torch kernels of the built-in families",
        description="Regenerate lazysi/numeric/generated/*.py from the sympy definitions.\n\n"
        "Examples:\n  lazysi codegen           # rewrite the modules\n  lazysi codegen --check   # exit 1 if any differs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a module differs")
    p.add_argument("--quiet", action="store_true", help="no per-module progress lines on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    from lazysi.numeric.codegen_all import regenerate_all

    t0 = time.perf_counter()
    verb = "checked" if args.check else "generated"

    def progress(i: int, n: int, filename: str, differs: bool) -> None:
        state = ("differs" if args.check else "rewritten") if differs else "up to date"
        print(f"[{i:>2}/{n}] {verb} {filename}: {state} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr, flush=True)

    if not args.quiet:
        print(f"lazysi codegen: rendering every generated module from its sympy definition "
              f"({'compare only' if args.check else 'rewrite'}); one line per module follows", file=sys.stderr, flush=True)
    changed = regenerate_all(check=args.check, progress=None if args.quiet else progress)
    if args.check:
        if changed:
            print("out of date: " + ", ".join(changed))
            return 1
        print("all generated modules are up to date")
        return 0
    print("written: " + (", ".join(changed) if changed else "nothing changed"))
    return 0
