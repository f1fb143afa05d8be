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

from .limits import endpoint_value, is_finite_number

__all__ = [
    "GENERATOR_VERSION",
    "CodegenError",
    "GeneratedFunction",
    "TorchPrinter",
    "prepare",
    "render_function",
    "render_module",
    "source_hash",
    "compile_module",
]

GENERATOR_VERSION = "1"


class CodegenError(ValueError):
    """An expression cannot be turned into torch code (names the construct)."""


_FUNCS = {
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
            terms = [self.p(a) for a in e.as_ordered_terms()]
            out = terms[0]
            for term in terms[1:]:
                out += f" - {term[1:]}" if term.startswith("-") else f" + {term}"
            return f"({out})"
        if isinstance(e, sp.Mul):
            coeff, rest = e.as_coeff_Mul()
            if coeff == -1:
                return f"(-{self.p(rest)})"
            num, den = [], []
            for factor in e.args:
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


def prepare(name: str, expr: sp.Expr, var: sp.Symbol, *, simplify: bool = True, endpoints: Sequence[int] = (0, 1)) -> GeneratedFunction:
    """Simplify ``expr`` and derive the endpoint limits that plain evaluation would miss."""
    expr = sp.sympify(expr)
    body = _simplify_guarded(expr) if simplify else expr
    if body.has(sp.log):
        # log(t^2/(1-t)^2) -> 2 log(t) - 2 log(1-t): no underflow of the argument near the ends.
        # Valid because every log argument of a schedule quantity is positive on (0, 1).
        expanded = sp.expand_log(body, force=True)
        if not expanded.has(sp.I) and _same_on_probes(expanded, body, var):
            body = expanded
    limits: list[tuple[int, sp.Expr]] = []
    for end in endpoints:
        value, needs_guard = endpoint_value(body, end, var)
        if needs_guard:
            if not (is_finite_number(value) or value in (sp.oo, -sp.oo)):
                # Oscillating or undefined: leave plain evaluation (NaN) there, it is the truth.
                continue
            limits.append((end, value))
    fn = GeneratedFunction(name, expr, body, tuple(limits))
    if var in body.free_symbols and 1 in endpoints:
        reflected = _reflect(body, var)
        if reflected != body and _needs_reflection(fn, var, reflected):
            fn = GeneratedFunction(name, expr, body, tuple(limits), reflected)
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
_PROBES = (1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 0.1, 0.3)


def _reflect(body: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``body`` with t = 1 - u and function arguments expanded, so that e.g.
    ``cos(pi t/2)`` becomes ``sin(pi u/2)``: accurate near t = 1, where 1 - t is exact in floats."""
    moved = body.xreplace({var: 1 - _U})
    moved = moved.replace(
        lambda f: isinstance(f, sp.Function) and len(f.args) == 1, lambda f: f.func(sp.expand(f.args[0]))
    )
    moved = sp.powsimp(moved, combine="exp")
    if moved.count_ops() > 150:
        return moved
    try:
        # Rational parts re-expanded in u and factored, so that small u is never subtracted from 1.
        factored = sp.powsimp(sp.factor(sp.cancel(moved)), combine="exp")
    except (sp.PolynomialError, NotImplementedError, RecursionError):
        return moved
    return factored if factored.count_ops() <= 2 * moved.count_ops() + 10 else moved


def _needs_reflection(fn: GeneratedFunction, var: sp.Symbol, reflected: sp.Expr) -> bool:
    """Probe float64 evaluation near t = 1 against mpmath at 50 digits: use the reflected form
    only when the plain form loses accuracy there and the reflected one is more accurate."""
    free = sorted(fn.body.free_symbols - {var}, key=lambda s: s.name)
    plain_err, refl_err = 0.0, 0.0
    for value in (sp.Rational(7, 10), sp.Integer(3)):
        sub = {sym: value for sym in free}
        body = fn.body.xreplace(sub)
        plain_err = max(plain_err, _probe_error(fn, var, body))
        refl_err = max(refl_err, _probe_error(fn, var, body, reflected.xreplace(sub)))
        if not free:
            break
    return plain_err > 1e-14 and refl_err < plain_err


def _probe_error(fn: GeneratedFunction, var: sp.Symbol, body: sp.Expr, reflected: sp.Expr | None = None) -> float:
    import mpmath
    import torch

    src = render_function(GeneratedFunction(fn.name, fn.source, body, fn.limits, reflected), var)
    ns = compile_module(src, "probe")
    ref_f = sp.lambdify(var, body, modules="mpmath")
    worst = 0.0
    with mpmath.workdps(50):
        for h in _PROBES:
            tt = torch.tensor([1.0 - h], dtype=torch.float64)
            got = float(ns[fn.name](tt)[0])
            try:
                ref = ref_f(mpmath.mpf(float(tt[0])))
            except (ZeroDivisionError, ValueError):
                continue
            if isinstance(ref, mpmath.mpc):
                ref = ref.real
            if not mpmath.isfinite(ref) or not math.isfinite(got):
                continue
            err = abs(got - float(ref)) / (abs(float(ref)) + 1e-300)
            worst = max(worst, err)
    return worst


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
    bodies = [fn.body] if fn.reflected is None else [fn.body, fn.reflected]
    replacements, reduced_all = sp.cse(bodies, symbols=sp.numbered_symbols("_x"), optimizations=None)
    reduced = reduced_all[0]
    printer = TorchPrinter(names)
    sig_params = "".join(f", {pname}: float = {default!r}" for _, pname, default in params)
    lines = [f"def {fn.name}({vname}: torch.Tensor, *{sig_params}) -> torch.Tensor:" if params else f"def {fn.name}({vname}: torch.Tensor) -> torch.Tensor:"]
    doc_text = doc or f"{fn.name}({vname}) = {sp.sstr(fn.source)}"
    lines.append(f'    """{doc_text}"""')
    for _, pname, _ in params:
        lines.append(f"    {pname} = torch.as_tensor({pname}, dtype={vname}.dtype, device={vname}.device)")
    if fn.reflected is not None:
        lines.append(f"    _u = 1.0 - {vname}  # exact for t >= 1/2 (Sterbenz)")
    for sym, sub in replacements:
        code = printer(sub)
        names[sym] = sym.name
        printer.names[sym] = sym.name
        lines.append(f"    {sym.name} = {code}")
    value = printer(reduced)
    if var not in fn.body.free_symbols:
        value = f"torch.zeros_like({vname}) + {value}"
    if fn.reflected is not None:
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
    digest = source_hash(functions, title + repr([(p, d) for _, p, d in params]))
    head = [
        f"# Generated by lazysi.symbolic.codegen (version {GENERATOR_VERSION}) -- DO NOT EDIT.",
        "# Regenerate with `lazysi codegen`; tests fail when this file differs from the generator.",
        f"# {title}",
    ]
    head += [f"# {line}" for line in header_lines]
    head += [f"# source {k} = {sp.sstr(v)}" for k, v in functions.items()]
    head += [f"# sha256: {digest}", "import math  # noqa: F401", "", "import torch", ""]
    body = [f'SOURCE_SHA256 = "{digest}"', f"FUNCTIONS = {list(functions)!r}", ""]
    for name, expr in functions.items():
        body.append(render_function(prepare(name, expr, var, simplify=simplify), var, params))
    return "\n".join(head + body)


def compile_module(source: str, name: str = "lazysi_generated") -> dict:
    """Execute *generated* module source (never user text) and return its namespace."""
    import torch

    namespace: dict = {"__name__": name, "torch": torch, "math": math}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace
