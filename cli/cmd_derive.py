"""``lazysi derive``: derive a schedule's quantities and validity report.

Exit status: 0 when the schedule is valid, 1 when it violates a validity condition (each
condition is listed with how it was decided), 2 on bad usage or a refused expression.
"""
from __future__ import annotations

import argparse
import json

import sympy as sp

from lazysi.cli import UsageError

EPILOG = """examples:
  lazysi derive --family linear
  lazysi derive --family point-mass --param sigma=0.5 --json
  lazysi derive --alpha "cos(pi*t/2)" --beta "sin(pi*t/2)"
  lazysi derive --alpha "a*sqrt(t*(1-t))" --beta "t" --param a=0.7 --latex
  lazysi derive --lazy sde --sigma 0.7 --json        # eps = eps*: the point-mass schedule
  lazysi derive --lazy ode --sigma 1                 # eps = 0: variance preserving
  lazysi derive --lazy sde --nu 3 --sigma 0.7 --emit-torch lazy_nu3.py
  lazysi verify --module lazy_nu3.py                 # regenerate + compare + mpmath check of the file

exit status: 0 valid schedule; 1 the schedule violates a validity condition (listed);
2 bad usage or a refused expression (the message names the argument).
"""


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{k: v}``; values stay strings (parsed safely later)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k.isidentifier() or not k.isascii():
            raise UsageError(f"parameter name {k!r} is not a valid identifier")
        if k in out:
            raise UsageError(f"parameter {k!r} given twice")
        out[k] = v.strip()
    return out


def schedule_from_args(family: str | None, alpha: str | None, beta: str | None, params: list[str] | None):
    """A :class:`Schedule` from a family name or from ``alpha``/``beta`` expressions (safe parser)."""
    from lazysi.symbolic.families import family as make_family
    from lazysi.symbolic.schedule import Schedule, as_number

    values = parse_params(params)
    if family is not None:
        if alpha is not None or beta is not None:
            raise UsageError("give either --family or --alpha/--beta, not both")
        return make_family(family, **{k: as_number(v, k) for k, v in values.items()})
    if alpha is None or beta is None:
        raise UsageError("give --family NAME, or both --alpha EXPR and --beta EXPR")
    return schedule_from_strings(alpha, beta, values)


def schedule_from_strings(alpha: str, beta: str, values: dict[str, str], names: tuple[str, str] = ("--alpha", "--beta")):
    """:meth:`Schedule.from_strings` with errors that name the argument (``--alpha``, ``--beta``,
    ``--param NAME``)."""
    from lazysi.symbolic.expr import ExpressionError, param_symbol, parse_expression
    from lazysi.symbolic.schedule import Schedule, as_number

    symbols = {}
    for k, v in values.items():
        try:
            as_number(v, k)
        except ExpressionError as exc:
            raise UsageError(f"--param {k}: {exc}") from None
        symbols[k] = param_symbol(k)
    for name, text in zip(names, (alpha, beta)):
        try:
            parse_expression(text, symbols)
        except ExpressionError as exc:
            raise UsageError(f"{name}: {exc}") from None
    return Schedule.from_strings(alpha, beta, values)


def add_schedule_arguments(p: argparse.ArgumentParser) -> None:
    from lazysi.symbolic.families import family_names

    p.add_argument("--family", choices=family_names(), help="a built-in family")
    p.add_argument("--alpha", help="alpha(t) as an expression in t (whitelisted syntax)")
    p.add_argument("--beta", help="beta(t) as an expression in t")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter value (repeatable)")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "derive",
        help="derive alpha_dot, beta_dot, lambda, eps* and the validity report of a schedule",
        description="Derive a schedule's quantities with sympy and check its validity conditions. "
        "Exit status 1 when the schedule is invalid (the violated conditions are listed), 2 on bad usage.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_schedule_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    p.add_argument("--digits", type=int, default=30, help="precision of numeric validity checks (default 30)")
    p.add_argument("--emit-torch", metavar="FILE",
                   help="write one torch module to FILE: schedule kernels, Gaussian-data fields and drift for N(m, Sigma); "
                        "check it later with `lazysi verify --module FILE`")
    lazy = p.add_argument_group("lazy schedules (derived by sympy for N(mu, sigma^2 I) data)")
    lazy.add_argument("--lazy", choices=("ode", "sde"), help="derive the lazy schedule: ode (eps = 0) or sde (eps = nu eps*)")
    lazy.add_argument("--nu", help="eps = nu eps* for --lazy sde (default 1, the optimal SDE)")
    lazy.add_argument("--sigma", help="data scale sigma > 0 (required with --lazy)")
    lazy.add_argument("--mu", help="data mean (scalar, every coordinate); reported with its drift/centring rule")
    return p


def lazy_from_args(args: argparse.Namespace):
    """``(schedule, extra report entries)`` for ``--lazy``; :func:`lazysi.symbolic.lazy.derive_lazy`."""
    from lazysi.symbolic.expr import ExpressionError
    from lazysi.symbolic.lazy import derive_lazy
    from lazysi.symbolic.schedule import as_number

    if args.family or args.alpha or args.beta or args.param:
        raise UsageError("--lazy derives its own schedule: do not combine it with --family/--alpha/--beta/--param")
    if args.sigma is None:
        raise UsageError("--lazy needs --sigma S (the data scale)")
    if args.lazy == "ode" and args.nu is not None:
        raise UsageError("--nu applies to --lazy sde only (the ODE has eps = 0)")
    try:
        sigma = as_number(args.sigma, "sigma")
        nu = None if args.nu is None else as_number(args.nu, "nu")
        mu = None if args.mu is None else as_number(args.mu, "mu")
        if args.lazy == "ode":
            der = derive_lazy("zero", sigma)
        else:
            der = derive_lazy("optimal", sigma, nu=1 if nu is None else nu)
    except ExpressionError as exc:
        raise UsageError(str(exc)) from None
    sch = der.schedule
    eps = sp.Integer(0) if der.rule == "zero" else sch.bind(sp.Symbol("nu", positive=True)) * sch.bound.eps_star
    extra = {
        "eps": sp.sstr(_tidy(sp.simplify(eps))),
        "lazy": {
            "rule": "eps = 0" if der.rule == "zero" else "eps = nu eps*",
            "ode": sp.sstr(der.ode),
            "general_solution": sp.sstr(der.general),
            "boundary": der.boundary,
            "alpha_squared_of_beta": sp.sstr(sch.bind(der.alpha_sq)),
        },
    }
    if mu is not None:
        extra["lazy"]["mu"] = sp.sstr(mu)
        extra["lazy"]["mean_rule"] = (
            "drift of the lazy SDE is beta_dot mu (constant when beta = t): start at 0, no centring needed"
            if der.point_mass
            else "centre the data: eta_{X-mu}(t, x') = eta_X(t, x' + beta mu) - mu, sample X - mu, add mu at the end"
        )
    return sch, extra


def derive_report(schedule, digits: int = 30) -> dict:
    """The derived quantities (parameters bound) and the validity report, as a JSON-ready dict."""
    b = schedule.bound
    report = schedule.validate(digits=digits)
    quantities = {
        "alpha": b.alpha,
        "beta": b.beta,
        "alpha_dot": b.alpha_dot,
        "beta_dot": b.beta_dot,
        "lam": b.lam,
        "eps_star": b.eps_star,
    }
    out = {k: sp.sstr(_tidy(v)) for k, v in quantities.items()}
    out["latex"] = {k: sp.latex(_tidy(v)) for k, v in quantities.items()}
    out.update(
        {
            "name": schedule.name,
            "params": {k: sp.sstr(v) for k, v in schedule.value_map.items()},
            "data_scale": sp.sstr(b.data_scale),
            "point_mass": report.point_mass,
            "valid": report.valid,
            "conditions": [dict(c.as_dict(), detail=condition_detail(c.detail)) for c in report.conditions],
        }
    )
    return out


def condition_detail(detail: str) -> str:
    """The validity report's detail in derive's wording: a condition such as ``alpha_dot < 0`` is
    checked as the positivity of ``-alpha_dot``, so "proved positivity" is reported as "proved"."""
    return detail.replace("sympy proved positivity on (0,1)", "proved by sympy on (0,1)")


def emit_module(path: str, kind: str, source, target=None, eps: str | None = None) -> None:
    """Write the emitted module (:mod:`lazysi.symbolic.emit`) for a schedule or a conversion."""
    from lazysi.symbolic.codegen import CodegenError
    from lazysi.symbolic.emit import EmitError, conversion_spec, render_emitted, schedule_spec

    spec = schedule_spec(source) if kind == "schedule" else conversion_spec(source, target, eps or "zero")
    try:
        text = render_emitted(spec).source
    except (EmitError, CodegenError) as exc:
        raise UsageError(f"--emit-torch: {exc}") from None
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"--emit-torch: cannot write {path!r}: {exc.strerror or exc}") from None


def _tidy(e: sp.Expr) -> sp.Expr:
    if e.count_ops() > 80:
        return e
    return min([e, sp.simplify(e)], key=lambda x: x.count_ops())


def run(args: argparse.Namespace) -> int:
    extra: dict = {}
    if getattr(args, "lazy", None):
        schedule, extra = lazy_from_args(args)
    else:
        if getattr(args, "nu", None) is not None or getattr(args, "sigma", None) is not None or getattr(args, "mu", None) is not None:
            raise UsageError("--nu/--sigma/--mu only apply with --lazy ode|sde")
        schedule = schedule_from_args(args.family, args.alpha, args.beta, args.param)
    out = derive_report(schedule, digits=args.digits)
    out.update(extra)
    if args.emit_torch:
        emit_module(args.emit_torch, "schedule", schedule)
        out["emitted"] = args.emit_torch
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        key = "latex" if args.latex else None
        for name in ("alpha", "beta", "alpha_dot", "beta_dot", "lam", "eps_star"):
            value = out["latex"][name] if key else out[name]
            print(f"{name:10s} = {value}")
        if "eps" in out:
            print(f"{'eps':10s} = {out['eps']}")
            for k, v in out["lazy"].items():
                print(f"  {k}: {v}")
        print(f"point_mass = {out['point_mass']}")
        print(f"valid      = {out['valid']}")
        for c in out["conditions"]:
            mark = "ok  " if c["holds"] else "FAIL"
            print(f"  [{mark}] {c['name']} ({c['how']}: {condition_detail(c['detail'])})")
    return 0 if out["valid"] else 1
