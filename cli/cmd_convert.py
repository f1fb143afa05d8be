"""``lazysi convert``: derive the conversion between two schedules (claims C4-C6)."""
from __future__ import annotations

import argparse
import json

import sympy as sp

from lazysi.cli import UsageError

EPILOG = """examples:
  lazysi convert --from linear --to vp --json
  lazysi convert --from linear --to point-mass --param sigma=0.5 --eps optimal
  lazysi convert --from linear --to "alpha=cos(pi*t/2),beta=sin(pi*t/2)" --eps nu=0.5
  lazysi convert --from vp --to linear --eps "s*(1-s)"
  lazysi convert --from linear --to point-mass --eps optimal --emit-torch conv.py
  lazysi verify --module conv.py        # regenerate + compare + mpmath check of the file

SCHED is a family name (its parameters from --param) or "alpha=EXPR,beta=EXPR" in t.
--param applies to both schedules where the name is declared (e.g. sigma).
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="time map tau(s), scale c(s), converted eps and drift between two schedules",
        description="Derive the conversion A -> B: lambda_B(s) = lambda_A(tau(s)), I_B(s) = c(s) I_A(tau(s)).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from", dest="source", required=True, metavar="SCHED", help="source schedule A (time t)")
    p.add_argument("--to", dest="target", required=True, metavar="SCHED", help="target schedule B (time s)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter value (repeatable)")
    p.add_argument("--eps", default="zero", metavar="zero|optimal|nu=V|EXPR", help="target diffusion coefficient eps_B(s) (default zero: the ODE)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--emit-torch", metavar="FILE",
                   help="write one torch module to FILE: A's kernels and Gaussian fields, the maps tau, tau', c, c'/c, "
                        "c^2 tau', eps_B(s) and the converted drift; check it with `lazysi verify --module FILE`")
    return p


def _split_sched(text: str, flag: str = "--from") -> tuple[str | None, str | None, str | None]:
    """``family`` or ``alpha=...,beta=...`` -> (family, alpha, beta)."""
    from lazysi.symbolic.target import TargetError, split_schedule_spec

    text = text.strip()
    if "=" not in text:
        return text, None, None
    try:
        alpha, beta = split_schedule_spec(text, flag)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    return None, alpha, beta


def _schedule(text: str, params: list[str] | None, flag: str = "--from"):
    from lazysi.cmd_derive import parse_params, schedule_from_args
    from lazysi.symbolic.families import FAMILIES

    fam, alpha, beta = _split_sched(text, flag)
    values = parse_params(params)
    if fam is not None:
        if fam not in FAMILIES:
            raise UsageError(f"unknown schedule {fam!r}; give a family ({', '.join(FAMILIES)}) or alpha=...,beta=...")
        known = {p.name for p in FAMILIES[fam].params}
        mine = [f"{k}={v}" for k, v in values.items() if k in known]
        return schedule_from_args(fam, None, None, mine)
    from lazysi.cmd_derive import schedule_from_strings

    return schedule_from_strings(alpha, beta, values, names=(f"{flag} alpha", f"{flag} beta"))


def conversion_report(A, B, eps_spec: str) -> dict:
    """The conversion A -> B as a JSON-ready dict (sympy-parsable strings in ``s``)."""
    from lazysi.symbolic.conversion import Conversion, parse_eps_target

    conv = Conversion(A, B)
    eps_B = parse_eps_target(eps_spec, B)
    out = dict(conv.summary())
    out.update(
        {
            "from": A.name,
            "to": B.name,
            "eps_target": sp.sstr(eps_B),
            "eps_source": sp.sstr(conv.eps_to_source(eps_B)) if conv.closed_form else "eps_B(sigma(t)) / eps_scale(sigma(t)), sigma = tau^-1",
            "drift": sp.sstr(conv.drift_formula(eps_B)),
            "fields": {k: sp.sstr(v) for k, v in conv.field_formulas().items()},
        }
    )
    return out


def run(args: argparse.Namespace) -> int:
    A = _schedule(args.source, args.param, "--from")
    B = _schedule(args.target, args.param, "--to")
    out = conversion_report(A, B, args.eps)
    if args.emit_torch:
        from lazysi.cmd_derive import emit_module

        emit_module(args.emit_torch, "conversion", A, B, args.eps)
        out["emitted"] = args.emit_torch
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"conversion {out['from']} (t) -> {out['to']} (s); closed form: {out['closed_form']}")
    if not out["closed_form"]:
        print(f"  tau(s) solves {out['tau_equation']}")
    for k in ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale", "eps_target", "eps_source"):
        print(f"  {k:13s} = {out[k]}")
    print(f"  drift b_B + eps_B score_B = {out['drift']}")
    return 0
