"""``lazysi verify``: run every registered claim (symbolic proof + numeric confirmation).

Exit status 0 only when every selected claim passes, 1 when any fails (the failures are named
on stderr and in the report), 2 on bad usage.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from lazysi.cli import UsageError

EPILOG = """examples:
  lazysi verify                       # every claim, 30 digits, table on stdout
  lazysi verify --quick               # reduced sweep for pre-commit use
  lazysi verify --claim C8 --claim K2 --digits 50
  lazysi verify --json > claims.json
  lazysi verify --report claims.md --out results/verify
  lazysi verify --mutate              # mutation score of the harness itself
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "verify",
        help="run the theorem claims (symbolic proofs and numeric checks); exit 1 if any fails",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--claim", action="append", metavar="ID", help="run only this claim (repeatable)")
    p.add_argument("--digits", type=int, default=30, help="mpmath precision of the numeric references (default 30, >= 15)")
    p.add_argument("--quick", action="store_true", help="reduced sweep (fewer points, cached or skipped slow checks)")
    p.add_argument("--json", action="store_true", help="print the results as a JSON list instead of the table")
    p.add_argument("--report", metavar="FILE.md", help="also write a Markdown report")
    p.add_argument("--out", metavar="DIR", help="write results.json, report.md and options.json into DIR")
    p.add_argument(
        "--mutate",
        action="store_true",
        help="mutation check: perturb the generated kernels and claim inputs, report the mutation score",
    )
    p.add_argument("--no-cache", action="store_true",
                   help="recompute everything cached: mpmath references, the regeneration check, derived conversions, proved identities")
    p.add_argument("--sample", type=int, default=None, metavar="N", help="with --mutate: only N mutants (spread evenly)")
    return p


def _options(args: argparse.Namespace) -> dict:
    return {
        "claims": args.claim or "all",
        "digits": args.digits,
        "quick": bool(args.quick),
        "mutate": bool(args.mutate),
        "sample": args.sample,
        "no_cache": bool(args.no_cache),
        "argv": sys.argv[1:],
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run(args: argparse.Namespace) -> int:
    from lazysi.proofs.verify import (
        UnknownClaimError,
        render_json,
        render_markdown,
        render_table,
        results_as_dicts,
        select_claims,
        stderr_progress,
        verify,
    )

    if args.digits < 15:
        raise UsageError(f"--digits must be >= 15, got {args.digits}")
    if args.mutate and args.claim:
        raise UsageError("--mutate runs the kernel and peer claims it needs; do not combine it with --claim")
    if args.sample is not None and (not args.mutate or args.sample < 1):
        raise UsageError("--sample N needs --mutate and N >= 1")
    if args.report and not args.report.endswith(".md"):
        raise UsageError(f"--report expects a .md file name, got {args.report!r}")
    try:
        select_claims(args.claim)
    except UnknownClaimError as exc:
        raise UsageError(str(exc)) from None
    if args.no_cache:
        import os

        os.environ["LAZYSI_NO_CACHE"] = "1"
    options = _options(args)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "options.json").write_text(json.dumps(options, indent=2) + "\n")

    if args.mutate:
        return _run_mutate(args, options, out)

    results = verify(args.claim, digits=args.digits, quick=args.quick, progress=stderr_progress)
    print(render_json(results) if args.json else render_table(results))
    if args.report:
        Path(args.report).write_text(render_markdown(results, options))
    if out is not None:
        (out / "results.json").write_text(json.dumps(results_as_dicts(results), indent=2) + "\n")
        (out / "report.md").write_text(render_markdown(results, options))
    failed = [r.id for r in results if not r.passed]
    if failed:
        print(f"lazysi verify: FAILED claim(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _run_mutate(args: argparse.Namespace, options: dict, out: Path | None) -> int:
    from lazysi.proofs.mutation import render_mutation_markdown, render_mutation_table, run_mutation

    report = run_mutation(digits=args.digits, quick=args.quick, sample=args.sample, progress=True)
    print(json.dumps(report.as_dict(), indent=2) if args.json else render_mutation_table(report))
    if args.report:
        Path(args.report).write_text(render_mutation_markdown(report, options))
    if out is not None:
        (out / "mutation.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        (out / "mutation.md").write_text(render_mutation_markdown(report, options))
    if not report.baseline_passed:
        print("lazysi verify --mutate: the unmutated claims fail; mutation score is meaningless", file=sys.stderr)
        return 1
    if report.unexplained:
        print(
            f"lazysi verify --mutate: {len(report.unexplained)} surviving mutant(s) not shown equivalent: "
            + ", ".join(m.id for m in report.unexplained),
            file=sys.stderr,
        )
        return 1
    return 0
