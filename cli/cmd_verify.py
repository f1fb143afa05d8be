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
  lazysi verify --module my_schedule.py        # an emitted module: regenerate, compare, mpmath check
  lazysi verify --schedule "alpha=cos(pi*t/2)**2,beta=sin(pi*t/2)**2"   # C1-C7 (C13) for it
  lazysi verify --convert "linear->alpha=sqrt(t*(1-t)),beta=t"          # C4-C6 for A -> B
  lazysi verify --claims my_claims/            # your claim modules beside ours
  lazysi verify --wide                         # statements on one line (default: wrapped to 100 columns)

groups of claim ids: C = the theory (docs/MATH.md), K = generated kernels, P = peer libraries,
S:/A->B: = instantiated for --schedule/--convert, EP: = entry-point group lazysi.claims.
exit status: 0 all pass; 1 a claim or a module check fails (named); 2 bad usage or an invalid
schedule (the violated condition is named).
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
    p.add_argument("--wide", action="store_true", help="statements on one line (default: wrapped to fit 100 columns)")
    user = p.add_argument_group("your schedules, modules and claims")
    user.add_argument("--module", action="append", metavar="FILE",
                      help="check a module written by --emit-torch: regenerate from its header, compare byte for byte, "
                           "check every function against mpmath (repeatable)")
    user.add_argument("--schedule", metavar="SCHED",
                      help='instantiate C1-C7 (and C13 where it applies) for "alpha=EXPR,beta=EXPR", an emitted FILE or a family')
    user.add_argument("--convert", metavar="A->B", help="instantiate C4-C6 for the conversion A -> B (each side as --schedule)")
    user.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter value for --schedule/--convert (repeatable)")
    user.add_argument("--claims", action="append", metavar="PATH",
                      help="a claim module (*.py) or a folder of them, run beside the built-in claims (repeatable)")
    return p


def _options(args: argparse.Namespace) -> dict:
    return {
        "claims": args.claim or "all",
        "digits": args.digits,
        "quick": bool(args.quick),
        "mutate": bool(args.mutate),
        "sample": args.sample,
        "no_cache": bool(args.no_cache),
        "module": args.module,
        "schedule": args.schedule,
        "convert": args.convert,
        "claims_paths": args.claims,
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
        run_claims,
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
    given = [n for n, v in (("--module", args.module), ("--schedule", args.schedule), ("--convert", args.convert)) if v]
    if len(given) > 1 or (given and (args.claim or args.mutate or args.claims)):
        raise UsageError(f"{' / '.join(given + (['--claim'] if args.claim else []) + (['--claims'] if args.claims else []))}: give one of these at a time")
    if args.param and not (args.schedule or args.convert):
        raise UsageError("--param applies to --schedule/--convert")
    if args.module and args.digits < 30:
        raise UsageError(f"--module checks at >= 30 digits, got --digits {args.digits}")
    for path in args.claims or []:
        from lazysi.proofs.registry import ClaimLoadError, load_claim_files

        try:
            load_claim_files(path)
        except ClaimLoadError as exc:
            raise UsageError(str(exc)) from None
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
    if args.module:
        return _run_modules(args)

    if args.schedule or args.convert:
        selected = _instances(args)
        results = run_claims(selected, digits=args.digits, quick=args.quick, progress=stderr_progress)
    else:
        results = verify(args.claim, digits=args.digits, quick=args.quick, progress=stderr_progress)
    print(render_json(results) if args.json else render_table(results, wide=args.wide))
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


def _params(items: list[str] | None) -> dict[str, str]:
    from lazysi.cmd_derive import parse_params

    return parse_params(items)


def _resolve(text: str, params: dict[str, str], what: str):
    from lazysi.symbolic.families import FAMILIES
    from lazysi.symbolic.target import TargetError, resolve_target

    name = text.strip()
    if name in FAMILIES:  # --param applies where the family declares the name
        params = {k: v for k, v in params.items() if k in {p.name for p in FAMILIES[name].params}}
    elif "=" not in name:
        params = {}
    try:
        return resolve_target(text, params, what=what)
    except TargetError as exc:
        raise UsageError(str(exc)) from None


def _instances(args: argparse.Namespace):
    """The instantiated claims (:mod:`lazysi.proofs.instances`); an invalid schedule raises
    ScheduleError (exit 2, naming the violated condition)."""
    from lazysi.proofs.instances import conversion_claims, schedule_claims
    from lazysi.symbolic.conversion import ConversionError

    params = _params(args.param)
    if args.schedule:
        inst = schedule_claims(_resolve(args.schedule, params, "--schedule"), label="S")
    else:
        left, sep, right = args.convert.partition("->")
        if not sep or not left.strip() or not right.strip():
            raise UsageError(f"--convert expects A->B, got {args.convert!r}")
        A, B = _resolve(left, params, "--convert A"), _resolve(right, params, "--convert B")
        try:
            inst = conversion_claims(A, B, label="A->B")
        except ConversionError as exc:
            raise UsageError(f"--convert: {exc}") from None
    for cid, why in inst.skipped:
        print(f"lazysi verify: {cid} does not apply: {why}", file=sys.stderr)
    return list(inst.claims)


def _run_modules(args: argparse.Namespace) -> int:
    from lazysi.proofs.module_check import check_module

    failures = []
    for path in args.module:
        report = check_module(path, digits=args.digits)
        print(report.render())
        failures += report.failures()
    for line in failures:
        print(f"lazysi verify --module: FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


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
