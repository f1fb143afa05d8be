"""Generate endpoint-safe, batched torch functions from sympy expressions.

Each generated function takes a tensor ``t`` (any shape, any float dtype, any device) and the
parameters as keyword arguments, evaluates the expression with torch operations only (no
Python branching per element, so it traces under ``torch.compile``), and returns a tensor of
``t``'s shape. Where plain evaluation is 0/0, inf*0 or similar at t = 0 or t = 1, the symbolic
one-sided limit is substituted there with ``torch.where``.

The printer is our own (sympy's ``pytorch`` printer does not handle constants, broadcasting or
Piecewise the way we need). Only whitelisted torch functions are ever emitted.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import expm1 as _Expm1
from sympy.codegen.cfunctions import log1p as _Log1p

from .limits import endpoint_value, is_finite_number

__all__ = [
    "GENERATOR_VERSION",
    "CodegenError",
    "GeneratedFunction",
    "TorchPrinter",
    "prepare",
    "stabilize",
    "render_function",
    "render_module",
    "render_functions",
    "module_digest",
    "module_preamble",
    "REGENERATE_NOTE",
    "source_hash",
    "compile_module",
]

GENERATOR_VERSION = "2"


class CodegenError(ValueError):
    """An expression cannot be turned into torch code (names the construct)."""


class _PlainLog(sp.Function):
    """``log`` that sympy does not combine with a surrounding ``exp``/``expm1`` (printing only:
    ``expm1(c log t)`` would otherwise evaluate back to ``t^c - 1``)."""

    nargs = 1


_FUNCS = {
    _PlainLog: "torch.log",
    sp.sin: "torch.sin",
    sp.cos: "torch.cos",
    sp.tan: "torch.tan",
    sp.exp: "torch.exp",
    sp.log: "torch.log",
    sp.atan: "torch.atan",
    sp.asin: "torch.asin",
    sp.acos: "torch.acos",
    sp.sinh: "torch.sinh",
    sp.cosh: "torch.cosh",
    sp.tanh: "torch.tanh",
    sp.asinh: "torch.asinh",
    sp.acosh: "torch.acosh",
    sp.atanh: "torch.atanh",
    sp.Abs: "torch.abs",
    sp.sign: "torch.sign",
    sp.erf: "torch.special.erf",
    sp.erfc: "torch.special.erfc",
    _Expm1: "torch.expm1",
    _Log1p: "torch.log1p",
}


def _float(value: sp.Expr) -> str:
    v = float(sp.N(value, 30))
    if math.isinf(v):
        return "math.inf" if v > 0 else "-math.inf"
    if math.isnan(v):
        raise CodegenError(f"constant {value} is not a real number")
    return repr(v)


class TorchPrinter:
    """Print a sympy expression as a torch expression string.

    Constant sub-trees (no free symbols) are folded to float64 literals; powers with
    exponent 1/2, -1/2, -1 and small integers use ``sqrt``, ``rsqrt``, division and products.
    """

    def __init__(self, names: Mapping[sp.Symbol, str]):
        self.names = dict(names)

    def __call__(self, expr: sp.Expr) -> str:
        return self.p(sp.sympify(expr))

    def p(self, e: sp.Expr) -> str:
        if e in self.names:
            return self.names[e]
        if not e.free_symbols:
            return _float(e)
        if isinstance(e, sp.Symbol):
            raise CodegenError(f"free symbol {e} is not an argument of the generated function")
        if isinstance(e, sp.Add):
            if e.has(sp.exp):
                combined = sp.powsimp(e, combine="exp")
                if combined != e:
                    return self.p(combined)
            special = self._expm1(e)
            if special is not None:
                return special
            # ``a - b`` rather than ``a + (-b)``: one torch op per term, a positive term first
            ordered = e.as_ordered_terms()
            negative = [a.could_extract_minus_sign() for a in ordered]
            if all(negative):
                return f"(-{self.p(-e)})"
            first = negative.index(False)
            out = self.p(ordered[first])
            for k, a in enumerate(ordered):
                if k != first:
                    out += f" - {self.p(-a)}" if negative[k] else f" + {self.p(a)}"
            return f"({out})"
        if isinstance(e, sp.Mul):
            coeff, rest = e.as_coeff_Mul()
            if coeff.is_negative:
                # -(a/(t - 1)) -> a/(1 - t): one negation less, and +inf rather than -(+inf) at t = 1
                for f in e.args:
                    if f.is_Pow and f.exp == -1 and isinstance(f.base, sp.Add) and (f.base.could_extract_minus_sign() or f.base.as_coeff_Add()[0] < 0):
                        others = [g for g in e.args if g is not f and g != -1]
                        if coeff != -1:
                            others = [-g if g == coeff else g for g in others]
                        flipped = sp.Pow(-f.base, -1, evaluate=False)
                        return self.p(sp.Mul(*others, flipped, evaluate=False)) if others else self.p(flipped)
            if coeff == -1:
                return f"(-{self.p(rest)})"
            # constant factors (numbers, pi, sqrt(2), ...) folded into one literal
            const = sp.Mul(*[f for f in e.args if not f.free_symbols])
            num = [] if const == 1 else [_float(const)]
            den = []
            for factor in e.args:
                if not factor.free_symbols:
                    continue
                if factor.is_Pow and factor.exp.is_number and factor.exp.is_negative:
                    den.append(self.p(factor.base ** (-factor.exp)))
                else:
                    num.append(self.p(factor))
            top = "*".join(num) if num else "1.0"
            if not den:
                return f"({top})"
            bottom = den[0] if len(den) == 1 else "(" + "*".join(den) + ")"
            return f"({top}/{bottom})"
        if isinstance(e, sp.Pow):
            base, ex = e.base, e.exp
            if ex.is_number:
                if ex == sp.Rational(1, 2):
                    return f"torch.sqrt({self.p(base)})"
                if ex == sp.Rational(-1, 2):
                    return f"torch.rsqrt({self.p(base)})"
                if ex == -1:
                    return f"(1.0/{self.p(base)})"
                if ex.is_Integer and 2 <= ex <= 4:
                    b = self.p(base)
                    if not base.is_Symbol:  # never evaluate a subexpression twice
                        return f"({b}**{int(ex)})"  # one torch.pow (or float power for scalars)
                    return "(" + "*".join([b] * int(ex)) + ")"
                if ex.is_Integer and ex < 0:
                    return f"(1.0/{self.p(base ** (-ex))})"
                return f"torch.pow({self.p(base)}, {_float(ex)})"
            if base == sp.E:
                return f"torch.exp({self.p(ex)})"
            if not base.free_symbols:
                return f"torch.exp({_float(sp.log(base))}*{self.p(ex)})"
            return f"torch.pow({self.p(base)}, {self.p(ex)})"
        if isinstance(e, sp.Piecewise):
            out = None
            for value, cond in reversed(e.args):
                if cond is sp.true:
                    out = self.p(value)
                else:
                    if out is None:
                        raise CodegenError("Piecewise without an otherwise branch")
                    out = f"torch.where({self._cond(cond)}, {self.p(value)}, {out})"
            return out
        if isinstance(e, (sp.Max, sp.Min)):
            fn = "torch.maximum" if isinstance(e, sp.Max) else "torch.minimum"
            args = [self.p(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = f"{fn}({out}, {a})"
            return out
        if isinstance(e, sp.cot):
            return f"(1.0/torch.tan({self.p(e.args[0])}))"
        if isinstance(e, sp.sec):
            return f"(1.0/torch.cos({self.p(e.args[0])}))"
        if isinstance(e, sp.csc):
            return f"(1.0/torch.sin({self.p(e.args[0])}))"
        if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and sp.S.One in e.args[0].args:
            return f"torch.log1p({self.p(e.args[0] - 1)})"
        for f, name in _FUNCS.items():
            if isinstance(e, f):
                return f"{name}({self.p(e.args[0])})"
        raise CodegenError(f"cannot generate torch code for {type(e).__name__}: {e}")

    def _expm1(self, e: sp.Add) -> str | None:
        """``c (exp(x) - 1) + rest`` printed with ``expm1`` (no cancellation for small x);
        ``c exp(a) - c exp(b)`` as ``-c exp(a) expm1(b - a)``."""
        if len(e.args) == 2:
            (c1, r1), (c2, r2) = (a.as_coeff_Mul() for a in e.args)
            if isinstance(r1, sp.exp) and isinstance(r2, sp.exp) and c1 == -c2:
                diff = sp.expand(r2.args[0] - r1.args[0])
                return f"({_float(-c1)}*{self.p(r1)}*torch.expm1({self.p(diff)}))"
        for term in e.args:
            coeff, rest = term.as_coeff_Mul()
            if rest.is_Mul and all(isinstance(f, sp.exp) for f in rest.args):
                exponent = sp.Add(*[f.args[0] for f in rest.args])
            elif isinstance(rest, sp.exp):
                exponent = rest.args[0]
            else:
                continue
            if (-coeff) in e.args:
                others = e - term + coeff
                inner = f"torch.expm1({self.p(exponent)})"
                head = inner if coeff == 1 else f"({_float(coeff)}*{inner})"
                return head if others == 0 else f"({head} + {self.p(others)})"
        return None

    def _cond(self, c: sp.Basic) -> str:
        ops = {sp.StrictLessThan: "<", sp.LessThan: "<=", sp.StrictGreaterThan: ">", sp.GreaterThan: ">=", sp.Eq: "=="}
        for cls, op in ops.items():
            if isinstance(c, cls):
                return f"({self.p(c.lhs)} {op} {self.p(c.rhs)})"
        if isinstance(c, sp.And):
            return "(" + " & ".join(self._cond(a) for a in c.args) + ")"
        if isinstance(c, sp.Or):
            return "(" + " | ".join(self._cond(a) for a in c.args) + ")"
        raise CodegenError(f"cannot generate a torch condition for {c}")


@dataclass(frozen=True)
class GeneratedFunction:
    """A prepared expression: what will be evaluated and what is substituted at the endpoints."""

    name: str
    source: sp.Expr
    body: sp.Expr
    limits: tuple[tuple[int, sp.Expr], ...]  # (endpoint, limit value) where a guard is needed
    reflected: sp.Expr | None = None  # body in u = 1 - t, used for t > 1/2 when more accurate
    whole: bool = False  # True: ``reflected`` is accurate on all of [0, 1] and used alone (no torch.where)


def _simplify_guarded(expr: sp.Expr, max_ops: int = 120) -> sp.Expr:
    """Cheap simplification (no full ``simplify`` on large trees): prefer the shorter form."""
    if expr.count_ops() > max_ops:
        return expr
    candidates = [expr]
    try:
        candidates.append(sp.simplify(expr))
    except (NotImplementedError, RecursionError, TypeError):
        pass
    return min(candidates, key=lambda e: (e.count_ops(), len(str(e))))


def _stable_add(e: sp.Add) -> sp.Expr:
    """Rewrite differences of exponentials in a sum without cancellation:
    ``c R exp(a) - c R exp(b) = -c R exp(a) expm1(b - a)`` (``R`` any common rest, ``a`` may be 0)."""
    split = []
    for term in e.args:
        term = sp.powsimp(term, combine="exp") if term.has(sp.exp) else term
        coeff, rest = term.as_coeff_Mul()
        exps = [f for f in sp.Mul.make_args(rest) if isinstance(f, sp.exp)]
        others = sp.Mul(*[f for f in sp.Mul.make_args(rest) if not isinstance(f, sp.exp)])
        split.append([coeff, others, sp.Add(*[f.args[0] for f in exps]), term])
    changed = False
    i = 0
    while i < len(split):
        ci, ri, ai, _ = split[i]
        for j in range(i + 1, len(split)):
            cj, rj, aj, _ = split[j]
            if cj == -ci and rj == ri and ai != aj and (ai != 0 or aj != 0):
                if ai == 0:  # c R (1 - exp(b)) = -c R expm1(b)
                    new = -ci * ri * _Expm1(sp.expand(aj))
                elif aj == 0:  # c R (exp(a) - 1) = c R expm1(a)
                    new = ci * ri * _Expm1(sp.expand(ai))
                else:
                    new = -ci * ri * sp.exp(ai) * _Expm1(sp.expand(aj - ai))
                split[i] = [sp.Integer(1), sp.Integer(1), sp.Integer(0), new]
                del split[j]
                changed = True
                break
        i += 1
    if not changed:
        return e
    return sp.Add(*[item[3] for item in split], evaluate=False)


def _horner(expr: sp.Expr, time_vars: set) -> sp.Expr:
    """Sums that are polynomials in one time variable (t or u), with coefficients
    free of time, in Horner form: ``u (u (a/2 - b/2) - a)`` instead of ``a u^2/2 - a u - b u^2/2``
    (fewer tensor operations; coefficients are computed once on scalars)."""
    if expr.is_Atom or not expr.args:
        return expr
    args = tuple(_horner(a, time_vars) for a in expr.args)
    if args != expr.args:
        expr = expr.func(*args)
    if isinstance(expr, sp.Add):
        present = expr.free_symbols & time_vars
        if len(present) == 1:
            (v,) = present
            try:
                poly = sp.Poly(expr, v)
            except sp.PolynomialError:
                return expr
            if poly.degree() >= 1 and all(not c.has(*time_vars) for c in poly.coeffs()):
                try:
                    nested = sp.horner(expr, wrt=v)
                except sp.PolynomialError:  # horner also expands the coefficients, e.g. 1/(2 d^2 + 4 d + 2)
                    return expr
                if sp.count_ops(nested) < sp.count_ops(expr):
                    return nested
    return expr


_TIME_NAMES = ("t", "s", "_u")


def _power_term(term: sp.Expr, v: sp.Symbol) -> tuple[sp.Expr, sp.Rational] | None:
    """``(k, a)`` when ``term = k v^a`` with ``a`` rational and ``k`` free of ``v``."""
    k, dep = term.as_independent(v, as_Add=False)
    if dep == 1:
        return k, sp.Integer(0)
    if dep == v:
        return k, sp.Integer(1)
    if dep.is_Pow and dep.base == v and dep.exp.is_Rational:
        return k, dep.exp
    return None


def _stable_powers(e: sp.Add) -> sp.Expr:
    """Sums of fractional powers of one time variable ``v``, rewritten without under-/overflow
    and cancellation (only when two exponents differ by a non-integer; integer steps such as
    ``t - t^2`` are exact enough as they are):

    * ``sum_i k_i v^(a_i)`` with smallest exponent ``a != 0`` -> ``v^a sum_i k_i v^(a_i - a)``
      (the power can then cancel against, or split off, its surroundings: ``sqrt(t^(3/2) - t^2)``
      does not underflow at t = 1e-300);
    * ``k v^a - k v^b`` (``b - a > 0``; ``a`` may be 0) -> ``-k v^a expm1((b - a) log v)`` (``1 - v^c``
      loses every digit as ``v -> 1``)."""
    times = [v for v in e.free_symbols if v.name in _TIME_NAMES]
    if len(times) != 1:
        return e
    (var,) = times
    terms = []
    for arg in e.args:
        pt = _power_term(arg, var)
        if pt is None:
            return e
        terms.append((pt[0], var, pt[1]))
    exps = [p[2] for p in terms]
    lo = min(exps)
    if all((x - lo).is_integer for x in exps):
        return e
    if lo != 0:
        inner = sp.Add(*[k * var ** (x - lo) for k, _, x in terms])
        return var**lo * _stable_powers(inner) if isinstance(inner, sp.Add) else var**lo * inner
    if len(terms) == 2:
        (k, _, a), (k2, _, b) = sorted(terms, key=lambda p: p[2])
        if sp.simplify(k + k2) == 0:
            return -k * _Expm1((b - a) * _PlainLog(var), evaluate=False)
    return e


def stabilize(expr: sp.Expr) -> sp.Expr:
    """Numerically stable rewriting before printing: differences of exponentials become ``expm1``
    (see :func:`_stable_add`), differences of fractional powers too (:func:`_stable_powers`),
    ``log(1 + x)`` becomes ``log1p(x)``. Mathematically the identity."""
    if expr.is_Atom or not expr.args:
        return expr
    args = tuple(stabilize(a) for a in expr.args)
    if args != expr.args:
        expr = expr.func(*args)
    if isinstance(expr, sp.Add) and expr.has(sp.exp):
        expr = _stable_add(expr)
    if isinstance(expr, sp.Add):
        expr = _stable_powers(expr)
    if isinstance(expr, sp.log) and isinstance(expr.args[0], sp.Add):
        coeff, rest = expr.args[0].as_coeff_Add()
        if coeff == 1 and rest != 0:
            return _Log1p(rest)
    return expr


def prepare(
    name: str,
    expr: sp.Expr,
    var: sp.Symbol,
    *,
    simplify: bool = True,
    endpoints: Sequence[int] = (0, 1),
    values: Mapping[sp.Symbol, float] | None = None,
) -> GeneratedFunction:
    """Choose accurate symbolic forms of ``expr`` and derive the endpoint limits that plain
    evaluation would miss.

    Candidate forms (the simplified expression, the source, their reflections in ``u = 1 - t``)
    are rendered and evaluated in float64 at probe times near t = 0 and near t = 1, at the
    parameter ``values`` (and at 1/4x and 2x of them), against mpmath at 60 digits. The cheapest
    candidate that is accurate on the whole interval is kept; otherwise the most accurate one on
    [0, 1/2] becomes ``body`` and the most accurate one on (1/2, 1] becomes ``reflected``.
    """
    expr = sp.sympify(expr)
    body = _simplify_guarded(expr) if simplify else expr
    if body.has(sp.log):
        # log(t^2/(1-t)^2) -> 2 log(t) - 2 log(1-t): no underflow of the argument near the ends.
        # Valid because every log argument of a schedule quantity is positive on (0, 1).
        expanded = sp.expand_log(body, force=True)
        if not expanded.has(sp.I) and _same_on_probes(expanded, body, var):
            body = expanded
    reflected = None
    if var in body.free_symbols and 1 in endpoints:
        body, reflected, whole = _choose_forms(name, expr, body, var, values)
    else:
        whole = False
    limits: list[tuple[int, sp.Expr]] = []
    for end in endpoints:
        value, needs_guard = endpoint_value(body, end, var)
        if needs_guard:
            if not (is_finite_number(value) or value in (sp.oo, -sp.oo)):
                # Oscillating or undefined: leave plain evaluation (NaN) there, it is the truth.
                continue
            limits.append((end, value))
    fn = GeneratedFunction(name, expr, body, tuple(limits), reflected, whole)
    if limits and var in body.free_symbols:
        fn = _drop_needless_guards(fn, var, values)
    return fn


def _same_on_probes(a: sp.Expr, b: sp.Expr, var: sp.Symbol) -> bool:
    """Numerically equal (real) at a few interior points with parameters set to 0.7."""
    params = {s: sp.Rational(7, 10) for s in (a.free_symbols | b.free_symbols) - {var}}
    for tv in (sp.Rational(3, 10), sp.Rational(7, 10)):
        va = sp.N(a.xreplace(params).xreplace({var: tv}), 30)
        vb = sp.N(b.xreplace(params).xreplace({var: tv}), 30)
        if not (va.is_real and vb.is_real) or abs(va - vb) > 1e-20 * (1 + abs(vb)):
            return False
    return True


_U = sp.Symbol("_u", real=True, nonnegative=True)
# Probe times: [0, 1/2] (the body) and (1/2, 1) (the reflected form); exact endpoints are guarded.
_TINY = (5e-324, 1e-310)  # subnormal: only NaN / wrong infinities count (their rounding is coarse)
_LEFT = _TINY + (1e-300, 1e-30, 1e-12, 1e-9, 1e-6, 1e-3, 0.05, 0.2, 0.4, 0.5)
_RIGHT = tuple(1.0 - h for h in (1e-16, 1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.05, 0.2, 0.4))
_GOOD = 1e-15  # a form this accurate everywhere is kept without looking further


def _reflect_plain(body: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``body`` with t = 1 - u and function arguments expanded in u (``cos(pi t/2) -> sin(pi u/2)``)."""
    moved = body.xreplace({var: 1 - _U})
    moved = moved.replace(
        lambda f: isinstance(f, sp.Function) and len(f.args) == 1, lambda f: f.func(sp.expand(f.args[0]))
    )
    return sp.powsimp(moved, combine="exp")


def _reflect(body: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``body`` with t = 1 - u and function arguments expanded, so that e.g.
    ``cos(pi t/2)`` becomes ``sin(pi u/2)``: accurate near t = 1, where 1 - t is exact in floats."""
    moved = _reflect_plain(body, var)
    if moved.count_ops() > 150:
        return moved
    try:
        # Rational parts re-expanded in u and factored, so that small u is never subtracted from 1.
        factored = sp.powsimp(sp.factor(sp.cancel(moved)), combine="exp")
    except (sp.PolynomialError, NotImplementedError, RecursionError):
        return moved
    return factored if factored.count_ops() <= 2 * moved.count_ops() + 10 else moved


def _probe_values(expr: sp.Expr, var: sp.Symbol, values: Mapping[sp.Symbol, float] | None) -> list[dict]:
    """Parameter sets for probing: the given values (distinct fallbacks otherwise), x1/4 and x2."""
    free = sorted(expr.free_symbols - {var, _U}, key=lambda s: s.name)
    base = {}
    for i, sym in enumerate(free):
        v = (values or {}).get(sym)
        base[sym] = float(v) if v is not None else 0.7 * (1 + 0.37 * i)
    if not free:
        return [{}]
    return [base, {k: v * 0.25 for k, v in base.items()}, {k: v * 2.0 for k, v in base.items()}]


class _Prober:
    """Float64 errors of candidate forms against mpmath (60 digits) at the probe times."""

    def __init__(self, name: str, source: sp.Expr, var: sp.Symbol, values: Mapping[sp.Symbol, float] | None):
        import mpmath

        self.name, self.var = name, var
        self.sets = _probe_values(source, var, values)
        self.syms = sorted(source.free_symbols - {var}, key=lambda s: s.name)
        f = sp.lambdify([var, *self.syms], source, modules="mpmath")
        self.refs: list[list] = []
        for vals in self.sets:
            row = []
            for tv in _LEFT + _RIGHT:
                # the source may cancel near an end: one extra digit per decade of t or 1 - t
                dps = 60 + int(max(-math.log10(tv), -math.log10(1.0 - tv)))
                with mpmath.workdps(dps):
                    try:
                        r = f(mpmath.mpf(tv), *[mpmath.mpf(vals[s]) for s in self.syms])
                        if isinstance(r, mpmath.mpc):
                            r = r.real if abs(r.imag) <= 1e-40 * (1 + abs(r.real)) else None
                    except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                        r = None
                row.append(r)
            self.refs.append(row)

    def errors(self, form: sp.Expr) -> tuple[tuple[int, float], tuple[int, float]]:
        """``((bad, err) on [0, 1/2], (bad, err) on (1/2, 1))``: ``bad`` counts NaN or wrong
        infinities, ``err`` is the worst relative error (normalised by max(|ref|, 1e-12))."""
        import mpmath
        import torch

        pnames = [(sym, f"_p{i}", 0.0) for i, sym in enumerate(self.syms)]
        src = render_function(GeneratedFunction(self.name, form, form, ()), self.var, pnames)
        fn = compile_module(src, "probe")[self.name]
        tt = torch.tensor(_LEFT + _RIGHT, dtype=torch.float64)
        out = [[0, 0.0], [0, 0.0]]
        nleft = len(_LEFT)
        for vals, refs in zip(self.sets, self.refs):
            with torch.no_grad():
                got = fn(tt, **{p: vals[sym] for sym, p, _ in pnames}).tolist()
            for k, (g, r) in enumerate(zip(got, refs)):
                side = out[0 if k < nleft else 1]
                if r is None or not mpmath.isfinite(r) and not math.isinf(g):
                    side[0] += r is not None
                    continue
                if not mpmath.isfinite(r) or abs(r) > 1.7976931348623157e308:
                    side[0] += not (math.isinf(g) and (g > 0) == (r > 0))
                    continue
                if not math.isfinite(g):
                    side[0] += 1
                    continue
                if k < len(_TINY):
                    continue
                side[1] = max(side[1], float(abs(mpmath.mpf(g) - r) / max(abs(r), mpmath.mpf(1e-12))))
        return (out[0][0], out[0][1]), (out[1][0], out[1][1])


def _acceptable(score: tuple[int, float], best: tuple[int, float]) -> bool:
    return score[0] <= best[0] and score[1] <= max(3.0 * best[1], _GOOD)


def _choose_forms(
    name: str, source: sp.Expr, body: sp.Expr, var: sp.Symbol, values: Mapping[sp.Symbol, float] | None
) -> tuple[sp.Expr, sp.Expr | None, bool]:
    """``(body, reflected, whole)``: the forms evaluated on [0, 1/2] and (1/2, 1] (reflected None:
    one form in t); ``whole``: the reflected form alone is accurate on all of [0, 1]. ``body`` is
    always a form in t (endpoint limits are taken from it)."""
    prober = _Prober(name, source, var, values)
    scores: dict[sp.Expr, tuple[tuple[int, float], tuple[int, float]]] = {}

    def score(form: sp.Expr):
        if form not in scores:
            try:
                scores[form] = prober.errors(form)
            except (CodegenError, TypeError, ValueError, RuntimeError):
                scores[form] = ((10**6, math.inf), (10**6, math.inf))
        return scores[form]

    left0, right0 = score(body)
    if left0[0] == 0 and right0[0] == 0 and max(left0[1], right0[1]) <= _GOOD:
        return body, None, False
    t_forms = [body, source]
    if body.count_ops() <= 120:
        t_forms.append(sp.together(body))
    u_forms = []
    for base in (body, source):
        for make in (_reflect, _reflect_plain):
            try:
                u_forms.append(make(base, var))
            except (NotImplementedError, RecursionError, sp.PolynomialError):
                pass
    t_forms = list(dict.fromkeys(t_forms))
    u_forms = [f for f in dict.fromkeys(u_forms) if f not in t_forms]
    for form in t_forms + u_forms:
        score(form)
    forms = t_forms + u_forms  # a form in u = 1 - t may serve on the whole interval too
    best_left = min((scores[f][0] for f in forms), key=lambda s: (s[0], s[1]))
    best_right = min((scores[f][1] for f in forms), key=lambda s: (s[0], s[1]))
    singles = [f for f in forms if _acceptable(scores[f][0], best_left) and _acceptable(scores[f][1], best_right)]
    best_t = min(t_forms, key=lambda f: (scores[f][0][0], scores[f][0][1]))  # ``body`` stays a form in t
    if singles:
        single = min(singles, key=_cost)
        return (single, None, False) if single in t_forms else (best_t, single, True)
    left_ok = [f for f in t_forms if _acceptable(scores[f][0], best_left)]
    left = min(left_ok, key=_cost) if left_ok else best_t
    right = min((f for f in forms if _acceptable(scores[f][1], best_right)), key=_cost)
    return left, (None if right == left else right), False


def _cost(form: sp.Expr) -> int:
    """Operations of the printed form (after stabilisation, common subexpressions counted once)."""
    time_vars = {_U} | {s for s in form.free_symbols if s.name in ("t", "s")}
    replacements, reduced = sp.cse([_horner(stabilize(form), time_vars)], optimizations=None)
    return sum(sp.count_ops(r) for _, r in replacements) + sp.count_ops(reduced[0])


def _drop_needless_guards(fn: GeneratedFunction, var: sp.Symbol, values: Mapping[sp.Symbol, float] | None) -> GeneratedFunction:
    """Drop an endpoint guard when the generated body already evaluates to the limit there (for
    example ``-inf`` from a division by an exact zero) at every probe parameter set: one
    ``torch.where`` less per call."""
    import torch

    syms = sorted(fn.body.free_symbols - {var}, key=lambda s: s.name)
    if fn.reflected is not None:
        syms = sorted(set(syms) | (fn.reflected.free_symbols - {var, _U}), key=lambda s: s.name)
    pnames = [(sym, f"_p{i}", 0.0) for i, sym in enumerate(syms)]
    try:
        src = render_function(GeneratedFunction(fn.name, fn.source, fn.body, (), fn.reflected, fn.whole), var, pnames)
        f = compile_module(src, "guard_probe")[fn.name]
    except (CodegenError, TypeError, ValueError):
        return fn
    keep = []
    for end, lim in fn.limits:
        ok = True
        for vals in _probe_values(fn.source, var, values):
            if any(s not in vals for s in syms):
                ok = False
                break
            kw = {p: vals[sym] for sym, p, _ in pnames}
            with torch.no_grad():
                got = float(f(torch.tensor([float(end)], dtype=torch.float64), **kw)[0])
                got32 = float(f(torch.tensor([float(end)], dtype=torch.float32), **kw)[0])
            target = lim.xreplace(vals) if lim.free_symbols else lim
            if target in (sp.oo, -sp.oo):
                ok = all(math.isinf(g) and (g > 0) == (target == sp.oo) for g in (got, got32))
            else:
                tv = float(sp.N(target, 30))
                ok = all(math.isfinite(g) for g in (got, got32)) and abs(got - tv) <= 1e-15 * max(1.0, abs(tv)) and abs(got32 - tv) <= 1e-6 * max(1.0, abs(tv))
            if not ok:
                break
        if not ok:
            keep.append((end, lim))
    return GeneratedFunction(fn.name, fn.source, fn.body, tuple(keep), fn.reflected, fn.whole)


def _inline_constant_arguments(replacements, reduced_all):
    """cse may name a constant (``_x0 = pi/252``) that is then the whole argument of a torch
    function (``torch.cos(_x0)``), which torch refuses for a Python float. Such temporaries are
    substituted back, so that the printer folds the constant call into one float literal; every
    other temporary (and hence every function that already worked) is left as it is."""
    consts: dict[sp.Symbol, sp.Expr] = {}
    for sym, sub in replacements:
        value = sub.xreplace(consts)
        if not value.free_symbols:
            consts[sym] = value
    if not consts:
        return replacements, reduced_all
    exprs = [sub for _, sub in replacements] + list(reduced_all)
    bad = set()
    for e in exprs:
        for node in sp.preorder_traversal(e):
            calls = isinstance(node, sp.Function) or (node.is_Pow and not (node.exp.is_Integer and abs(node.exp) <= 4))
            if calls and node.free_symbols and node.free_symbols <= set(consts):
                bad |= node.free_symbols
    if not bad:
        return replacements, reduced_all
    sub_bad = {k: consts[k] for k in bad}
    kept = [(sym, sub.xreplace(sub_bad)) for sym, sub in replacements if sym not in bad]
    return kept, [e.xreplace(sub_bad) for e in reduced_all]


def render_function(
    fn: GeneratedFunction,
    var: sp.Symbol,
    params: Sequence[tuple[sp.Symbol, str, float]] = (),
    doc: str = "",
) -> str:
    """Python source of one generated torch function ``name(t, *, p1=..., ...)``."""
    vname = var.name
    names = {var: vname, _U: "_u"}
    names.update({sym: pname for sym, pname, _ in params})
    if fn.reflected is None:
        bodies = [fn.body]
    elif fn.whole:
        bodies = [fn.reflected]
    else:
        bodies = [fn.body, fn.reflected]
    bodies = [_horner(stabilize(b), {var, _U}) for b in bodies]
    replacements, reduced_all = sp.cse(bodies, symbols=sp.numbered_symbols("_x"), optimizations=None)
    replacements, reduced_all = _inline_constant_arguments(replacements, reduced_all)
    reduced = reduced_all[0]
    printer = TorchPrinter(names)
    sig_params = "".join(f", {pname}: float = {default!r}" for _, pname, default in params)
    lines = [f"def {fn.name}({vname}: torch.Tensor, *{sig_params}) -> torch.Tensor:" if params else f"def {fn.name}({vname}: torch.Tensor) -> torch.Tensor:"]
    doc_text = doc or f"{fn.name}({vname}) = {sp.sstr(fn.source)}"
    lines.append(f'    """{doc_text}"""')
    # Parameters stay Python floats where every use is arithmetic with tensors (no per-call tensor
    # creation); they become tensors of t's dtype/device when given as tensors or when a torch
    # function is applied to a parameter-only subexpression (e.g. torch.log(shift)).
    param_syms = {sym for sym, _, _ in params}
    def _torch_call(node: sp.Basic) -> bool:
        if isinstance(node, (sp.Function, sp.Max, sp.Min)):
            return True
        return node.is_Pow and not (node.exp.is_Integer and abs(node.exp) <= 4)

    param_funcs = {
        sym
        for b in bodies
        for f in sp.preorder_traversal(b)
        if f.free_symbols and f.free_symbols <= param_syms and _torch_call(f)
        for sym in f.free_symbols
    }
    for sym, pname, _ in params:
        conv = f"torch.as_tensor({pname}, dtype={vname}.dtype, device={vname}.device)"
        if sym in param_funcs:
            lines.append(f"    {pname} = {conv}")
        else:
            lines.append(f"    {pname} = {pname} if isinstance({pname}, float) else {conv}")
    if any(_U in b.free_symbols for b in bodies):
        lines.append(f"    _u = 1.0 - {vname}  # exact for t >= 1/2 (Sterbenz)")
    for sym, sub in replacements:
        code = printer(sub)
        names[sym] = sym.name
        printer.names[sym] = sym.name
        lines.append(f"    {sym.name} = {code}")
    value = printer(reduced)
    if var not in bodies[0].free_symbols and _U not in bodies[0].free_symbols:
        value = f"torch.zeros_like({vname}) + {value}"
    if fn.reflected is not None and not fn.whole:
        lines.append(f"    _v = torch.where({vname} <= 0.5, {value}, {printer(reduced_all[1])})")
    else:
        lines.append(f"    _v = {value}")
    for end, lim in fn.limits:
        lines.append(f"    _v = torch.where({vname} == {float(end)!r}, {_float(lim)}, _v)")
    lines.append("    return _v")
    return "\n".join(lines) + "\n"


def source_hash(items: Mapping[str, sp.Expr], extra: str = "") -> str:
    """sha256 over the generator version, the source expressions (srepr) and ``extra``."""
    h = hashlib.sha256()
    h.update(GENERATOR_VERSION.encode())
    for k in sorted(items):
        h.update(k.encode())
        h.update(sp.srepr(sp.sympify(items[k])).encode())
    h.update(extra.encode())
    return h.hexdigest()


#: the second header line of the committed modules (``numeric/generated/``): how they are checked
REGENERATE_NOTE = "Regenerate with `lazysi codegen`; tests fail when this file differs from the generator."


def module_digest(functions: Mapping[str, sp.Expr], title: str, params: Sequence[tuple[sp.Symbol, str, float]] = ()) -> str:
    """The ``SOURCE_SHA256`` stamp of a generated module: :func:`source_hash` of its source
    expressions, salted with its title and its (parameter name, default) pairs. The one recipe
    used by every generated module (schedule kernels, Gaussian fields, conversions, user modules)."""
    return source_hash(functions, title + repr([(p, d) for _, p, d in params]))


def module_preamble(
    lines: Sequence[str],
    functions: Mapping[str, sp.Expr],
    digest: str,
    *,
    generator: str = "lazysi.symbolic.codegen",
    note: str = REGENERATE_NOTE,
) -> list[str]:
    """The first lines of every generated module: the generator and its version, how the file is
    checked (``note``), the descriptive ``lines``, one ``# source NAME = EXPR`` line per function,
    the stamp, the imports and the ``SOURCE_SHA256`` / ``FUNCTIONS`` constants."""
    head = [f"# Generated by {generator} (version {GENERATOR_VERSION}) -- DO NOT EDIT.", f"# {note}"]
    head += [f"# {line}" for line in lines]
    head += [f"# source {k} = {sp.sstr(v)}" for k, v in functions.items()]
    head += [f"# sha256: {digest}", "import math  # noqa: F401", "", "import torch", ""]
    return head + [f'SOURCE_SHA256 = "{digest}"', f"FUNCTIONS = {list(functions)!r}", ""]


def render_functions(
    functions: Mapping[str, sp.Expr],
    var: sp.Symbol,
    params: Sequence[tuple[sp.Symbol, str, float]] = (),
    *,
    simplify: bool = True,
) -> list[str]:
    """One generated function (:func:`prepare` then :func:`render_function`) per entry."""
    values = {sym: default for sym, _, default in params}
    return [render_function(prepare(name, expr, var, simplify=simplify, values=values), var, params) for name, expr in functions.items()]


def render_module(
    title: str,
    functions: Mapping[str, sp.Expr],
    var: sp.Symbol,
    params: Sequence[tuple[sp.Symbol, str, float]] = (),
    *,
    header_lines: Sequence[str] = (),
    simplify: bool = True,
) -> str:
    """A complete Python module with one generated function per entry of ``functions``."""
    digest = module_digest(functions, title, params)
    head = module_preamble([title, *header_lines], functions, digest)
    return "\n".join(head + render_functions(functions, var, params, simplify=simplify))


def compile_module(source: str, name: str = "lazysi_generated") -> dict:
    """Execute *generated* module source (never user text) and return its namespace."""
    import torch

    namespace: dict = {"__name__": name, "torch": torch, "math": math}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace
