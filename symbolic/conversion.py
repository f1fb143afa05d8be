"""Schedule conversion A -> B (claims C4-C6 of MATH.md), derived with sympy.

Source schedule A = (alpha, beta) in the time ``t``; target schedule B = (alpha_B, beta_B) in the
time ``s`` (:func:`~lazysi.symbolic.expr.time_symbol` ``("s")``). Both run from the base
(t = s = 0) to the data (t = s = 1).

* Time map ``tau(s)`` solves ``lambda_B(s) = lambda_A(tau(s))`` (half log-SNR ``lambda = log(beta/alpha)``).
  It is derived in closed form when sympy can invert ``beta_A/alpha_A`` (within a size bound),
  e.g. from the linear schedule ``tau = beta_B / (alpha_B + beta_B)``; otherwise ``tau`` stays the
  unknown function ``tau(s)``, evaluated by a monotone root-find (torch bisection in
  :mod:`lazysi.numeric.fields.convert`, ``mpmath.findroot`` here), and ``tau'`` comes from the
  implicit-function theorem ``tau' = lambda_B'(s) / lambda_A'(tau)``.
* Scale ``c_s = alpha_B(s)/alpha_A(tau) = beta_B(s)/beta_A(tau)``, written here as
  ``(alpha_B + beta_B)(s) / (alpha_A + beta_A)(tau)`` (equal to both ratios, and never 0/0 at a
  standard base).  Then ``I_B(s) = c_s I_A(tau(s))`` identically.
* Fields ``eta_B(s, x) = eta_A(tau, x/c)``, score ``score_B(s, x) = score_A(tau, x/c)/c``,
  velocity ``b_B(s, x) = (c'/c) x + c tau' b_A(tau, x/c)``.
* Diffusion coefficients ``eps_B(s) = c^2 tau' eps_A(tau(s))`` and back
  ``eps_A(t) = eps_B(sigma(t)) / (c^2 tau')(sigma(t))`` with ``sigma = tau^{-1}``; in particular
  ``eps*_B = c^2 tau' eps*_A o tau`` (C6), so ``nu = eps/eps*`` is preserved.

Conversions between schedules whose lambda ranges differ are refused (:class:`ConversionError`).
"""
from __future__ import annotations

from functools import cached_property, lru_cache

import mpmath
import sympy as sp

from .cache import Store
from .expr import ExpressionError, param_symbol, parse_expression, time_symbol
from .limits import endpoint_limit
from .schedule import Schedule, ScheduleError
from .validity import within_size_bound

__all__ = ["Conversion", "ConversionError", "s", "t", "parse_eps_target", "TAU"]

s = time_symbol("s")
t = time_symbol("t")
#: the unknown time map when no closed form exists
TAU = sp.Function("tau")

_R = sp.Symbol("_R", positive=True)
_Q = sp.Symbol("_Q", positive=True)
_PROBES_R = (sp.Rational(3, 10), sp.Integer(1), sp.Rational(17, 10), sp.Integer(5))
MAX_CLOSED_FORM_OPS = 60
# sympy's work is bounded by the size of what it is asked (symbolic.validity.within_size_bound),
# never by wall time, so a derivation is the same on any machine at any load:
#: _solve_inverse tries sympy's solve only for a ratio beta_A/alpha_A of at most this many operations
MAX_SOLVE_OPS = 30
#: _tidy rewrites only expressions of at most this many operations (else returns them as they are)
MAX_TIDY_OPS = 120
#: endpoint_values takes sympy limits only of expressions of at most this many operations
MAX_LIMIT_OPS = 200
#: derived once per (A, B) and kept in the disk cache (symbolic.cache)
_DERIVED = ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale")
_STORE = Store("conversions")


class ConversionError(ScheduleError):
    """A conversion cannot be built (names the reason, e.g. different lambda ranges)."""


def _to_s(expr: sp.Expr) -> sp.Expr:
    return sp.sympify(expr).xreplace({t: s})


def _shortest(*candidates: sp.Expr) -> sp.Expr:
    return min(candidates, key=lambda e: (sp.count_ops(e), len(str(e))))


def _drop_abs(expr: sp.Expr) -> sp.Expr:
    """``Abs(g(s))`` -> ``+-g(s)`` where ``g`` has no zero in (0, 1) (its sign is then constant there)."""

    def repl(a):
        arg = a.args[0]
        if arg.free_symbols != {s}:
            return a
        try:
            zeros = sp.solveset(arg, s, sp.Interval.open(0, 1))
        except (NotImplementedError, TypeError, ValueError):
            return a
        if zeros != sp.S.EmptySet:
            return a
        sign = sp.sign(sp.N(arg.xreplace({s: sp.Rational(1, 2)})))
        return arg if sign > 0 else -arg

    return expr.replace(lambda e: isinstance(e, sp.Abs), repl)


_TIDY_PROBES = (sp.Rational(1, 10), sp.Rational(1, 4), sp.Rational(1, 2), sp.Rational(7, 10), sp.Rational(9, 10))


def _agrees(candidate: sp.Expr, reference: sp.Expr) -> bool:
    """Equal (real, finite) to ``reference`` at interior probes of (0, 1), 30 digits, including s = 1/2,
    so that a rewrite with a removable interior singularity (0/0 at s = 1/2) is rejected."""
    for sv in _TIDY_PROBES:
        try:
            a = sp.N(candidate.xreplace({s: sv}), 30)
            b = sp.N(reference.xreplace({s: sv}), 30)
        except (TypeError, ValueError, ZeroDivisionError):
            return False
        if a.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not a.is_real:
            return False
        if b.is_real and b.is_finite and abs(a - b) > sp.Float("1e-25") * (1 + abs(b)):
            return False
    return True


def _tidy(expr: sp.Expr, full: bool = True, max_simplify_ops: int = 60) -> sp.Expr:
    """A cheap, size-bounded simplification: the shortest of together/cancel/simplify and of
    forced power splittings (``sqrt(s/(1-s)) -> sqrt(s)/sqrt(1-s)``, valid for positive bases), each
    checked numerically against ``expr`` on (0, 1); ``Abs`` of a sign-definite argument removed.
    Only for ``expr`` of at most :data:`MAX_TIDY_OPS` operations; ``simplify`` only on candidates
    below ``max_simplify_ops``."""
    cands = [expr]
    if not within_size_bound(expr, MAX_TIDY_OPS):
        return expr
    try:
        forced = sp.powdenest(sp.expand_power_base(expr, force=True), force=True)
        for base in (expr, forced):
            base = _drop_abs(base)
            cands.append(base)
            cands.append(sp.together(base))
            cands.append(sp.factor_terms(sp.cancel(sp.together(base))))
        if full:
            for base in [cands[i] for i in (2, 5) if i < len(cands)]:
                if sp.count_ops(base) < max_simplify_ops:
                    cands.append(_drop_abs(sp.simplify(base)))
    except (NotImplementedError, sp.PolynomialError, RecursionError, TypeError):
        pass
    good = [c for c in cands if c is expr or _agrees(c, expr)]
    return min(good, key=lambda e: (e.has(sp.Abs), sp.count_ops(e), len(str(e))))


@lru_cache(maxsize=64)
def _solve_inverse(A: Schedule) -> sp.Expr | None:
    """``g(R)`` with ``beta_A/alpha_A (g(R)) = R`` for R > 0, or None when sympy cannot (or the
    ratio has more than :data:`MAX_SOLVE_OPS` operations: no attempt, the root-find route is used).

    Tries ``R`` and ``R = Q^2`` (removes square roots, e.g. polynomial p = q = 2) on the raw and the
    simplified ratio; keeps the shortest candidate that is real, in (0, 1) and satisfies the
    equation at 40 digits at three probe values of R.
    """
    ratio = A.beta / A.alpha
    lam = sp.lambdify(t, ratio, modules="mpmath")
    found: list[sp.Expr] = []
    if not within_size_bound(ratio, MAX_SOLVE_OPS):
        return None
    ratios = [ratio]
    simple = sp.simplify(ratio)
    if simple != ratio:
        ratios.append(simple)
    for rat in ratios:
        for var, sub in ((_R, _R), (_Q, _Q**2)):
            try:
                sols = sp.solve(sp.Eq(rat, sub), t)
            except (NotImplementedError, ValueError, TypeError, RecursionError):
                continue
            for sol in sols:
                if sol.has(sp.I) or sol.free_symbols - {var}:
                    continue
                found.append(sol.xreplace({_Q: sp.sqrt(_R)}) if var is _Q else sol)
    good = []
    for sol in found:
        ok = True
        with mpmath.workdps(40):
            for r in _PROBES_R:
                try:
                    tv = sp.N(sol.xreplace({_R: r}), 40)
                    if not tv.is_real or not (0 < tv < 1):
                        ok = False
                        break
                    if abs(lam(mpmath.mpf(str(tv))) - mpmath.mpf(str(sp.N(r, 40)))) > mpmath.mpf(10) ** -30:
                        ok = False
                        break
                except (TypeError, ValueError, ZeroDivisionError):
                    ok = False
                    break
        if ok:
            good.append(sol)
    if not good:
        return None
    best = _shortest(*good)
    return best if sp.count_ops(best) <= MAX_CLOSED_FORM_OPS else None


class Conversion:
    """The conversion from schedule ``A`` (time t) to schedule ``B`` (time s); see the module doc.

    Attributes (sympy expressions in ``s``, parameters bound):
        tau, tau_dot, c, c_dot_over_c, eps_scale (= c^2 tau'): when :attr:`closed_form` is False,
        ``tau`` is the unknown ``tau(s)`` and the others are expressed through it.
    """

    def __init__(self, A: Schedule, B: Schedule, *, force_root_find: bool = False):
        if not isinstance(A, Schedule) or not isinstance(B, Schedule):
            raise TypeError("Conversion(A, B) takes two Schedule objects")
        self.A, self.B = A, B
        self.a, self.b = A.bound, B.bound
        key = _STORE.key("conversion", self.a.alpha, self.a.beta, self.b.alpha, self.b.beta, force_root_find)
        stored = _STORE.lookup(key, (*_DERIVED, "closed_form"))
        if stored is not None:
            # the same derivation by the same code (see symbolic.cache): ranges checked, maps derived
            self.closed_form = stored.pop("closed_form") == sp.Integer(1)
            self.__dict__.update(stored)  # tau and the cached_property values
            return
        self._check_ranges()
        inverse = None if force_root_find else _solve_inverse(self.a)
        self.closed_form = inverse is not None
        if inverse is not None:
            r_b = self.beta_B / self.alpha_B
            self.tau = _tidy(inverse.xreplace({_R: r_b}))
        else:
            self.tau = TAU(s)
        derived = {name: getattr(self, name) for name in _DERIVED}
        _STORE.put(key, {**derived, "closed_form": sp.Integer(int(self.closed_form))})

    # ------------------------------------------------------------------ checks
    def _check_ranges(self) -> None:
        la = (endpoint_limit(self.a.lam, 0), endpoint_limit(self.a.lam, 1))
        lb = (endpoint_limit(self.b.lam, 0), endpoint_limit(self.b.lam, 1))
        if la != lb:
            raise ConversionError(
                f"cannot convert {self.A.name!r} -> {self.B.name!r}: the lambda = log(beta/alpha) ranges differ "
                f"({self.A.name}: ({la[0]}, {la[1]}), {self.B.name}: ({lb[0]}, {lb[1]})); "
                "a conversion needs lambda_B(s) = lambda_A(tau(s)) to be solvable for every s"
            )
        from .validity import check_positive_numeric

        for sch in (self.a, self.b):
            holds, detail = check_positive_numeric(sch.alpha * sch.beta_dot - sch.beta * sch.alpha_dot, t, 30, 40)
            if not holds:
                raise ConversionError(
                    f"cannot convert {self.A.name!r} -> {self.B.name!r}: lambda of {sch.name!r} is not strictly "
                    f"increasing on (0,1) ({detail}), so tau(s) is not unique"
                )
        if la != (-sp.oo, sp.oo):
            raise ConversionError(
                f"cannot convert {self.A.name!r} -> {self.B.name!r}: lambda range ({la[0]}, {la[1]}) is not "
                "(-oo, oo) (finite terminal SNR); the endpoints would not map onto each other"
            )

    # ------------------------------------------------------------------ the schedules in their variables
    @cached_property
    def alpha_B(self) -> sp.Expr:
        return _to_s(self.b.alpha)

    @cached_property
    def beta_B(self) -> sp.Expr:
        return _to_s(self.b.beta)

    @cached_property
    def lam_B(self) -> sp.Expr:
        return _to_s(self.b.lam)

    @cached_property
    def lam_dot_B(self) -> sp.Expr:
        return _to_s(self.b.lam_dot)

    def at_tau(self, expr_t: sp.Expr) -> sp.Expr:
        """An expression of A's time ``t`` evaluated at ``t = tau(s)``."""
        return sp.sympify(expr_t).xreplace({t: self.tau})

    # ------------------------------------------------------------------ derived maps
    @cached_property
    def tau_dot(self) -> sp.Expr:
        """``tau'(s)``: derivative of the closed form, else ``lambda_B'(s) / lambda_A'(tau)``."""
        if self.closed_form:
            return _tidy(sp.diff(self.tau, s), full=True, max_simplify_ops=40)
        return self.lam_dot_B / self.at_tau(self.a.lam_dot)

    @cached_property
    def c(self) -> sp.Expr:
        """``c_s = (alpha_B + beta_B)(s) / (alpha_A + beta_A)(tau(s))``."""
        expr = (self.alpha_B + self.beta_B) / self.at_tau(self.a.alpha + self.a.beta)
        return _tidy(expr) if self.closed_form else expr

    @cached_property
    def c_dot_over_c(self) -> sp.Expr:
        """``c'(s)/c(s) = d/ds log c``."""
        sum_b = self.alpha_B + self.beta_B
        sum_a = self.a.alpha + self.a.beta
        expr = sp.diff(sum_b, s) / sum_b - self.tau_dot * self.at_tau(sp.diff(sum_a, t) / sum_a)
        return _tidy(expr, full=True, max_simplify_ops=40) if self.closed_form else expr

    @cached_property
    def eps_scale(self) -> sp.Expr:
        """``c^2 tau'``: ``eps_B(s) = eps_scale(s) eps_A(tau(s))``."""
        expr = self.c**2 * self.tau_dot
        return _tidy(expr, full=True, max_simplify_ops=40) if self.closed_form else expr

    # ------------------------------------------------------------------ diffusion-coefficient maps
    def eps_to_target(self, eps_A: sp.Expr) -> sp.Expr:
        """``eps_B(s) = c^2 tau' eps_A(tau(s))`` for a source coefficient ``eps_A`` in ``t``."""
        return self.eps_scale * self.at_tau(eps_A)

    @cached_property
    def inverse(self) -> "Conversion":
        """The conversion B -> A (time map ``sigma = tau^{-1}``, scale ``1 / c o sigma``)."""
        return Conversion(self.B, self.A, force_root_find=not self.closed_form)

    def eps_to_source(self, eps_B: sp.Expr) -> sp.Expr:
        """``eps_A(t) = eps_B(sigma(t)) / (c^2 tau')(sigma(t))``, the A-coefficient whose converted
        path solves B's SDE with ``eps_B`` (an expression in ``s``); returned in ``t``."""
        inv = self.inverse
        return _to_s_inverse(inv.eps_to_target(sp.sympify(eps_B).xreplace({s: t})))

    @cached_property
    def eps_star_B(self) -> sp.Expr:
        return _to_s(self.b.eps_star)

    # ------------------------------------------------------------------ fields and drift
    def field_formulas(self) -> dict[str, sp.Expr]:
        """The converted fields and drift in terms of A's fields (unknown functions of (t, y))."""
        x = sp.Symbol("x", real=True)
        etaX, etaZ, bA, sA = (sp.Function(n) for n in ("eta_X_A", "eta_Z_A", "b_A", "score_A"))
        tau, c = self.tau, self.c
        return {
            "eta_X": etaX(tau, x / c),
            "eta_Z": etaZ(tau, x / c),
            "score": sA(tau, x / c) / c,
            "velocity": self.c_dot_over_c * x + c * self.tau_dot * bA(tau, x / c),
        }

    def drift_formula(self, eps_B: sp.Expr) -> sp.Expr:
        """``b_B + eps_B score_B`` in terms of A's velocity ``b_A`` and score ``score_A``."""
        f = self.field_formulas()
        return f["velocity"] + sp.sympify(eps_B) * f["score"]

    # ------------------------------------------------------------------ references
    def mp_tau(self, sv, dps: int = 50):
        """``tau(s)`` with mpmath at ``dps`` digits (closed form evaluated, or a bracketed root of
        ``lambda_A(tau) - lambda_B(s)``, the independent reference of the torch root-find)."""
        with mpmath.workdps(dps + 10):
            sv = mpmath.mpf(sv)
            if sv <= 0:
                return mpmath.mpf(0)
            if sv >= 1:
                return mpmath.mpf(1)
            lam_a = _mp_fn(self.a.lam, t)
            target = _mp_fn(self.lam_B, s)(sv)
            lo, hi = mpmath.mpf(0), mpmath.mpf(1)
            # bisection to a bracket that is tight relative to the distance to both ends (so that
            # tau = 1e-30 or 1 - 1e-30 is found too), then an Anderson/illinois polish
            for _ in range(4 * mpmath.mp.prec):
                mid = (lo + hi) / 2
                if lam_a(mid) < target:
                    lo = mid
                else:
                    hi = mid
                if lo > 0 and hi < 1 and hi - lo <= mpmath.mpf("1e-12") * min(lo, 1 - hi):
                    break
            root = mpmath.findroot(lambda u: lam_a(u) - target, (lo, hi), solver="anderson")
            return +root

    @cached_property
    def endpoint_values(self) -> dict[str, tuple[sp.Expr | None, sp.Expr | None]]:
        """Values at ``s = 0`` and ``s = 1`` of ``tau_dot, c, c_dot_over_c, eps_scale`` (the root-find
        route's expressions are 0/0 or inf/inf there; a closed form is evaluated as it is).

        Root-find route: with ``beta/alpha ~ k t^e`` at the base and ``alpha/beta ~ k' (1-t)^e'`` at
        the data end (sympy leading terms, for A and B), ``tau(s) ~ (k_B/k_A)^(1/e_A) s^(e_B/e_A)``
        and ``1 - tau ~ (k'_B/k'_A)^(1/e'_A) (1-s)^(e'_B/e'_A)``; each expression with ``tau``
        replaced by its leading term goes to a sympy limit. Leading order can miss a cancellation, so
        every limit is confirmed with mpmath (the real root-find ``tau``, 60 digits) at ``s = 1e-30``
        and ``1 - 1e-30``: a finite limit must agree to 1e-6 (relative), an infinite one must be
        exceeded in size with its sign. A limit that sympy cannot take or that fails the check is
        ``None`` (the caller keeps NaN there)."""
        names = ("tau_dot", "c", "c_dot_over_c", "eps_scale")
        if self.closed_form:
            return {n: (endpoint_limit(getattr(self, n).xreplace({s: t}), 0),
                        endpoint_limit(getattr(self, n).xreplace({s: t}), 1)) for n in names}
        v = sp.Symbol("_v", positive=True)
        out: dict[str, list] = {n: [None, None] for n in names}
        for end in (0, 1):
            try:
                if end == 0:
                    (ka, ea), (kb, eb) = (_leading(self.a.beta / self.a.alpha), _leading(self.b.beta / self.b.alpha))
                    lead_tau, at_end = (kb / ka) ** (1 / ea) * v ** (eb / ea), s
                else:
                    flip = {t: 1 - t}
                    (ka, ea), (kb, eb) = (_leading((self.a.alpha / self.a.beta).xreplace(flip)),
                                          _leading((self.b.alpha / self.b.beta).xreplace(flip)))
                    lead_tau, at_end = 1 - (kb / ka) ** (1 / ea) * v ** (eb / ea), 1 - s
                for n in names:
                    expr = getattr(self, n).xreplace({TAU(s): lead_tau.xreplace({v: at_end})})
                    if not within_size_bound(expr, MAX_LIMIT_OPS):
                        continue  # no limit attempted: NaN stays at this end (a size rule, not a time-out)
                    lim = sp.limit(expr.xreplace({s: v} if end == 0 else {s: 1 - v}), v, 0, "+")
                    if self._confirm_endpoint(n, end, lim):
                        out[n][end] = lim
            except (NotImplementedError, ValueError, TypeError, ZeroDivisionError, RecursionError):
                continue
        return {n: (a, b) for n, (a, b) in out.items()}

    def _confirm_endpoint(self, name: str, end: int, lim) -> bool:
        if lim is None or lim.has(sp.nan, sp.zoo, sp.AccumBounds) or not (lim.is_extended_real):
            return False
        with mpmath.workdps(60):
            sv = mpmath.mpf("1e-30") if end == 0 else 1 - mpmath.mpf("1e-30")
            tau = self.mp_tau(sv, 60)
            f = sp.lambdify([s, _TAU_SYM], getattr(self, name).xreplace({TAU(s): _TAU_SYM}), modules="mpmath")
            try:
                val = f(sv, tau)
            except (ZeroDivisionError, ValueError, OverflowError):
                return False
            if not mpmath.isfinite(val) or mpmath.im(val) != 0:
                return False
            if lim.is_finite:
                ref = mpmath.mpf(sp.N(lim, 40))
                return abs(val - ref) <= mpmath.mpf("1e-6") * (1 + abs(ref))
            return abs(val) > 1e6 and (val > 0) == (lim == sp.oo)

    def summary(self) -> dict[str, str | bool]:
        """Strings sympy can parse, in ``s`` (``tau(s)`` is an unknown function when not closed form)."""
        return {
            "tau": sp.sstr(self.tau),
            "tau_dot": sp.sstr(self.tau_dot),
            "c": sp.sstr(self.c),
            "c_dot_over_c": sp.sstr(self.c_dot_over_c),
            "eps_scale": sp.sstr(self.eps_scale),
            "closed_form": self.closed_form,
            "tau_equation": sp.sstr(sp.Eq(self.lam_B, self.at_tau(self.a.lam))) if not self.closed_form else "",
        }


def _to_s_inverse(expr_s: sp.Expr) -> sp.Expr:
    """An expression produced in ``s`` by the inverse conversion, renamed to ``t``."""
    return sp.sympify(expr_s).xreplace({s: t, TAU(s): TAU(t)})


_MP_CACHE: dict = {}
_TAU_SYM = sp.Symbol("_tau", positive=True)


def _leading(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """``(k, e)`` with ``expr ~ k t^e`` as ``t -> 0+`` (sympy's leading term); raises ValueError
    when the leading term is not a power of ``t`` with a positive coefficient."""
    lead = sp.sympify(expr).as_leading_term(t)
    k, e = lead.as_coeff_exponent(t)
    if k.has(t) or not (k.is_positive and e.is_positive):
        raise ValueError(f"leading term {lead} of {expr} at 0 is not k t^e with k, e > 0")
    return k, e


def _mp_fn(expr, var):
    key = (expr, var)
    if key not in _MP_CACHE:
        _MP_CACHE[key] = sp.lambdify(var, expr, modules="mpmath")
    return _MP_CACHE[key]


def parse_eps_target(spec: str, B: Schedule) -> sp.Expr:
    """A target diffusion coefficient ``eps_B(s)``: ``zero``, ``optimal`` (eps*_B), ``nu=V``
    (``V eps*_B``), or an expression in ``s`` (whitelisted syntax, parameters of B allowed)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ExpressionError("eps target must be 'zero', 'optimal', 'nu=V' or an expression in s")
    spec = spec.strip()
    eps_star = _to_s(B.bound.eps_star)
    if spec == "zero":
        return sp.Integer(0)
    if spec == "optimal":
        return eps_star
    if spec.startswith("nu="):
        nu = parse_expression(spec[3:], {}, variable="s")
        if not nu.is_number or not nu.is_real or nu < 0:
            raise ExpressionError(f"nu must be a non-negative number, got {spec[3:]!r}")
        return nu * eps_star
    params = {p.name: param_symbol(p.name, positive=p.positive) for p in B.params}
    expr = parse_expression(spec, params, variable="s")
    return B.bind(expr)
