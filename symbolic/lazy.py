"""Lazy schedules: sympy *solves* for the schedule whose drift vanishes on Gaussian data (C8-C11).

Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data. Data ``X ~ N(0, sigma^2 I)`` (a
mean is handled by centring, C14). Steps, all done by sympy:

1. The drift ``b + eps s = alpha_dot eta_Z + beta_dot eta_X - (eps/alpha) eta_Z`` with the Gaussian
   fields derived in :mod:`lazysi.symbolic.fields` (d = sigma^2, m = 0), for generic functions
   ``alpha(t), beta(t)``; ``solve(drift = 0, eps)`` gives the lazy condition ``eps = v_dot / 2``,
   ``v = alpha^2 + sigma^2 beta^2`` (C8).
2. The diffusion rule (``eps = 0``, ``eps = nu eps*``, or a user expression) is equated to it. For the
   first two, writing ``alpha^2 = A(beta)`` makes ``beta_dot`` cancel: an ODE for ``A(beta)`` that
   ``dsolve`` solves.
3. Boundary conditions: if every solution has ``A(0) = 0`` (nu > 0) the base is a point mass and
   the data end ``A(1) = 0`` (beta_1 = 1) fixes the constant; otherwise the Gaussian base
   ``A(0) = 1`` fixes it and ``A(beta_1) = 0`` gives ``beta_1 = 1/sigma`` (data_scale sigma).
4. A time parametrisation ``beta(t)`` is chosen (``t`` for a point mass, ``beta_1 sin(pi t/2)`` for a
   Gaussian base, or the user's) and ``alpha = sqrt(A(beta(t)))``; the result is a :class:`Schedule`.

For a user rule ``eps(t)`` (an expression in t, sigma and parameters) and a given ``beta(t)``, the
ODE ``d/dt alpha^2 = 2 eps - 2 sigma^2 beta beta_dot`` is solved in t with ``alpha(1) = 0``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .cache import Store
from .expr import ExpressionError, param_symbol, parse_expression
from .fields import ALPHA, BETA, D, M, X, gaussian_fields, point_mass_sde  # noqa: F401  (point_mass_sde re-exported)
from .schedule import Param, Schedule, as_number, t

__all__ = [
    "SIGMA",
    "NU",
    "MU",
    "LazyDerivation",
    "generic_schedule",
    "gaussian_drift",
    "lazy_condition",
    "derive_lazy",
    "point_mass_sde",
]

SIGMA = param_symbol("sigma")
NU = param_symbol("nu")
MU = sp.Symbol("mu", real=True)
B = sp.Symbol("b", positive=True)  # beta as the independent variable of A(beta) = alpha^2
A = sp.Function("A")


def generic_schedule() -> Schedule:
    """A schedule with undetermined ``alpha(t), beta(t)`` (sympy Functions): identities proved on it
    hold for every schedule."""
    return Schedule("generic", sp.Function("alpha", positive=True)(t), sp.Function("beta", positive=True)(t))


def gaussian_drift(schedule: Schedule, eps: sp.Expr, variance: sp.Expr = SIGMA**2, mean: sp.Expr = 0) -> sp.Expr:
    """``b + eps s`` at ``x`` (symbol :data:`~lazysi.symbolic.fields.X`) for ``X ~ N(mean, variance)``
    in one direction, from the derived fields: ``alpha_dot eta_Z + beta_dot eta_X - (eps/alpha) eta_Z``."""
    g = gaussian_fields()
    sub = {ALPHA: schedule.alpha, BETA: schedule.beta, D: variance, M: mean}
    eta_x, eta_z = g.eta_x.xreplace(sub), g.eta_z.xreplace(sub)
    return schedule.alpha_dot * eta_z + schedule.beta_dot * eta_x - eps / schedule.alpha * eta_z


@lru_cache(maxsize=1)
def lazy_condition() -> tuple[sp.Expr, sp.Expr]:
    """``(eps_lazy, residual)``: the eps solving ``b + eps s = 0`` for N(0, sigma^2) on the generic
    schedule, and ``eps_lazy - v_dot/2`` simplified (0: claim C8)."""
    g = generic_schedule()
    eps = sp.Symbol("epsilon")
    drift = sp.together(gaussian_drift(g, eps))
    sols = sp.solve(sp.numer(drift), eps)
    if len(sols) != 1:
        raise RuntimeError(f"lazy condition: expected one solution for eps, got {sols}")
    v = g.alpha**2 + SIGMA**2 * g.beta**2
    return sols[0], sp.simplify(sols[0] - sp.diff(v, t) / 2)


@dataclass(frozen=True)
class LazyDerivation:
    """The record of a lazy derivation (see the module docstring).

    Attributes:
        rule: ``"zero"``, ``"optimal"`` or ``"custom"``.
        eps_rule: the diffusion rule on the generic schedule (or in t for ``custom``).
        ode: the equation solved (in ``A(b)``, b = beta; or in ``A(t)`` for ``custom``).
        general: the general solution (with ``C1``).
        constant: the value of ``C1`` from the boundary condition.
        boundary: the boundary condition used, in words.
        alpha_sq: ``alpha^2`` as a function of ``b`` (``beta``), or of t for ``custom``.
        schedule: the resulting schedule (parameters ``sigma`` and, for a symbolic rule, ``nu``).
        point_mass: whether the base is a point mass.
    """

    rule: str
    eps_rule: sp.Expr
    ode: sp.Eq
    general: sp.Eq
    constant: sp.Expr
    boundary: str
    alpha_sq: sp.Expr
    schedule: Schedule
    point_mass: bool


def _nonneg_sqrt(expr: sp.Expr) -> sp.Expr:
    """``sqrt(expr)`` in a simple form (``sqrt(cos(x)^2) -> cos(x)``), kept only if it agrees
    numerically with the plain square root on (0, 1) (so no sign is lost)."""
    plain = sp.sqrt(sp.factor(expr))
    candidates = [plain]
    try:
        simple = sp.powdenest(sp.sqrt(sp.factor(sp.trigsimp(expr))), force=True)
        candidates += [simple, simple.replace(sp.Abs, lambda a: a)]
    except (NotImplementedError, RecursionError, TypeError):
        pass
    free = expr.free_symbols - {t}
    probe = {s: sp.Rational(7, 10) for s in free}
    best = plain
    for cand in candidates[1:]:
        ok = True
        for tv in [sp.Rational(k, 16) for k in range(1, 16)]:
            a = sp.N(cand.xreplace(probe).xreplace({t: tv}), 30)
            b = sp.N(plain.xreplace(probe).xreplace({t: tv}), 30)
            if not (a.is_real and abs(a - b) < 1e-25):
                ok = False
        if ok and cand.count_ops() < best.count_ops():
            best = cand
    return best


_RULES = Store("lazy_rules")


@lru_cache(maxsize=16)
def _solve_rule(rule: str) -> tuple[sp.Expr, sp.Eq, sp.Eq]:
    """ODE in A(b) for ``rule`` (``zero`` / ``optimal`` with symbolic nu) and its general solution
    (derived once per source version and kept in the disk cache, :mod:`lazysi.symbolic.cache`)."""
    fields = ("eps_rule", "ode", "general")
    out = _RULES.memo(("lazy-rule", rule), fields, lambda: dict(zip(fields, _derive_rule(rule))))
    return tuple(out[f] for f in fields)


def _derive_rule(rule: str) -> tuple[sp.Expr, sp.Eq, sp.Eq]:
    g = generic_schedule()
    eps_lazy, residual = lazy_condition()
    if residual != 0:
        raise RuntimeError(f"lazy condition did not reduce to v_dot/2: residual {residual}")
    eps_rule = sp.Integer(0) if rule == "zero" else NU * g.eps_star
    equation = eps_lazy - eps_rule
    # alpha^2 = A(beta(t)): alpha(t) -> sqrt(A(beta(t))); the equation is then linear in beta_dot
    beta_f = g.beta
    bdot = sp.Symbol("beta_dot")
    moved = equation.subs(g.alpha, sp.sqrt(A(beta_f))).doit()
    moved = moved.subs(sp.Derivative(beta_f, t), bdot).subs(beta_f, B)
    moved = sp.expand(moved)
    coeff = sp.simplify(moved.coeff(bdot))
    rest = sp.simplify(moved - coeff * bdot)
    if rest != 0 or coeff.has(bdot):
        raise RuntimeError(f"the lazy equation is not proportional to beta_dot: {moved}")
    ode = sp.Eq(sp.simplify(coeff), 0)
    # the ODE is first-order linear in A; that dsolve hint is much cheaper than trying them all
    general = sp.dsolve(ode, A(B), hint="1st_linear")
    general = sp.Eq(general.lhs, _powers_of_b(general.rhs))
    return eps_rule, ode, general


def _powers_of_b(expr: sp.Expr) -> sp.Expr:
    """``exp(c log b) -> b**c`` (b > 0) after expanding, so the solution reads as powers of beta."""
    expr = sp.expand(sp.expand_log(expr, force=True))

    def to_pow(e: sp.Expr) -> sp.Expr:
        c = sp.simplify(e.args[0] / sp.log(B))
        return B**c if not c.has(B) else e

    return sp.expand(expr.replace(lambda e: isinstance(e, sp.exp) and e.args[0].has(sp.log(B)), to_pow))


def derive_lazy(
    rule: str,
    sigma: object = 1,
    *,
    nu: object | None = None,
    eps: str | None = None,
    beta: str | None = None,
    params: Mapping[str, object] | None = None,
) -> LazyDerivation:
    """Derive the lazy schedule for ``N(0, sigma^2 I)`` data under a diffusion rule.

    Args:
        rule: ``"zero"`` (probability-flow ODE, ``eps = 0``), ``"optimal"`` (``eps = nu eps*``) or
            ``"custom"`` (``eps`` an expression in t, sigma and ``params``).
        sigma: the data scale (> 0).
        nu: for ``optimal``: a number >= 0 (0 is the ODE) or None to keep nu symbolic (value 1).
        eps: the user expression for ``custom``.
        beta: ``beta(t)`` (an expression in t); default ``t`` for a point mass, ``sin(pi t/2)/sigma``
            for a Gaussian base; required to be the given expression for ``custom`` (default ``t``).
        params: extra parameter values for ``eps``/``beta`` expressions.

    Returns a :class:`LazyDerivation`; its ``schedule`` has parameters ``sigma`` (and ``nu``).
    """
    sig = as_number(sigma, "sigma")
    if not (sig.is_positive):
        raise ExpressionError(f"sigma must be > 0, got {sigma}")
    extra = dict(params or {})
    for reserved in ("sigma", "nu", "t"):
        if reserved in extra:
            raise ExpressionError(f"parameter name {reserved!r} is reserved")
    plist = [Param("sigma", sig, description="data scale")]
    plist += [Param(k, as_number(v, k)) for k, v in extra.items()]
    symbols = {p.name: p.symbol for p in plist}
    if rule == "optimal" and nu is not None and as_number(nu, "nu") == 0:
        rule = "zero"
    if rule in ("zero", "optimal"):
        if eps is not None:
            raise ExpressionError(f"rule {rule!r} takes no eps expression (use rule 'custom')")
        nu_val = None
        if rule == "optimal":
            nu_val = sp.Integer(1) if nu is None else as_number(nu, "nu")
            if nu_val.is_negative:
                raise ExpressionError(f"nu must be >= 0, got {nu}")
            plist.append(Param("nu", nu_val, description="eps = nu eps*"))
            symbols["nu"] = NU
        eps_rule, ode, general = _solve_rule(rule)
        c1 = sp.Symbol("C1")
        sol = general.rhs
        at0 = sp.limit(sol, B, 0, dir="+")
        if not at0.has(c1):
            # every solution starts at A(0) = at0: a point-mass base when at0 = 0; fix C1 at the data end
            boundary = "A(1) = 0 (alpha_1 = 0 at beta_1 = 1)"
            const = sp.solve(sp.Eq(sol.subs(B, 1), 0), c1)
            beta_1 = sp.Integer(1)
        else:
            boundary = "A(0) = 1 (Gaussian base alpha_0 = 1, beta_0 = 0); beta_1 from A(beta_1) = 0"
            const = sp.solve(sp.Eq(at0, 1), c1)
        if len(const) != 1:
            raise RuntimeError(f"boundary condition {boundary} gave {const}")
        alpha_sq = sp.factor(sol.subs(c1, const[0]))
        if at0.has(c1):
            roots = [r for r in sp.solve(sp.Eq(alpha_sq, 0), B) if r.is_positive]
            if len(roots) != 1:
                raise RuntimeError(f"cannot decide beta_1 from A(beta_1) = 0: roots {roots}")
            beta_1 = roots[0]
        point_mass = bool(sp.limit(alpha_sq, B, 0, dir="+") == 0)
        if beta is None:
            beta_t = t * beta_1 if point_mass else beta_1 * sp.sin(sp.pi * t / 2)
        else:
            beta_t = parse_expression(beta, symbols)
        alpha_t = _nonneg_sqrt(alpha_sq.subs(B, beta_t))
        data_scale = sp.simplify(1 / beta_1)
        name = "lazy-ode" if rule == "zero" else "lazy-sde"
        values = {p.name: p.default for p in plist}
        sched = Schedule(name, alpha_t, beta_t, tuple(plist), tuple(sorted(values.items())), data_scale,
                         f"lazy schedule for N(0, sigma^2 I), rule {rule}: alpha^2 = {alpha_sq} (b = beta)")
        return LazyDerivation(rule, eps_rule, ode, general, const[0], boundary, alpha_sq, sched, point_mass)
    if rule != "custom":
        raise ExpressionError(f"unknown diffusion rule {rule!r}; use 'zero', 'optimal' or 'custom'")
    if eps is None:
        raise ExpressionError("rule 'custom' needs an eps expression in t")
    eps_t = parse_expression(eps, symbols)
    beta_t = parse_expression(beta or "t", symbols)
    bound = {p.symbol: p.default for p in plist}
    if sp.simplify(beta_t.xreplace(bound).subs(t, 1) - 1) != 0:
        raise ExpressionError("rule 'custom' needs beta(1) = 1 (the data end fixes alpha(1) = 0)")
    Af = sp.Function("A")
    ode = sp.Eq(sp.diff(Af(t), t) / 2 + SIGMA**2 * beta_t * sp.diff(beta_t, t) - eps_t, 0)
    general = sp.dsolve(ode, Af(t))
    c1 = sp.Symbol("C1")
    const = sp.solve(sp.Eq(general.rhs.subs(t, 1), 0), c1)
    if len(const) != 1:
        raise ExpressionError(f"cannot apply alpha(1) = 0 to {general}")
    alpha_sq = sp.simplify(general.rhs.subs(c1, const[0]))
    point_mass = bool(sp.simplify(alpha_sq.xreplace(bound).subs(t, 0)) == 0)
    values = {p.name: p.default for p in plist}
    sched = Schedule("lazy-custom", _nonneg_sqrt(alpha_sq), beta_t, tuple(plist), tuple(sorted(values.items())), sp.Integer(1),
                     f"lazy schedule for N(0, sigma^2 I), eps = {eps_t}")
    return LazyDerivation("custom", eps_t, ode, general, const[0], "A(1) = 0 (alpha_1 = 0 at beta_1 = 1)", alpha_sq, sched, point_mass)
