"""``lazysi codegen``: regenerate (or check) the committed generated torch modules."""
from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "codegen",
        help="regenerate the committed torch kernels of the built-in families",
        description="Regenerate lazysi/numeric/generated/*.py from the sympy definitions.\n\n"
        "Examples:\n  lazysi codegen           # rewrite the modules\n  lazysi codegen --check   # exit 1 if any differs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a module differs")
    return p


def run(args: argparse.Namespace) -> int:
    from lazysi.numeric.codegen_all import regenerate_all

    changed = regenerate_all(check=args.check)
    if args.check:
        if changed:
            print("out of date: " + ", ".join(changed))
            return 1
        print("all generated modules are up to date")
        return 0
    print("written: " + (", ".join(changed) if changed else "nothing changed"))
    return 0
