"""Check an emitted module (``lazysi verify --module FILE``): regenerate, compare, evaluate.

An emitted module (:mod:`lazysi.symbolic.emit`) records in its header the spec it was generated
from. :func:`check_module`

1. reads that spec (JSON; the expressions through :mod:`lazysi.symbolic.expr`, never ``eval``)
   and regenerates the module; the file must be byte for byte the regenerated text (otherwise
   the first differing line and the function it belongs to are named, and nothing of the file
   is executed);
2. evaluates every generated function of the (identical, hence our own) module in float64 and
   compares it with its sympy source evaluated by mpmath at ``digits`` (>= 30) digits on a grid
   dense at both ends (t = 0 and t = 1 included, one-sided limits there; points within 1e-300 ..
   1e-2 of either end): the schedule kernels, the Gaussian coefficients at d in {1/4, 1, 4}, and
   the conversion maps in s;
3. checks the assembled Gaussian functions (``gaussian_fields``, ``gaussian_score``,
   ``gaussian_velocity``, ``gaussian_drift``) against an independent mpmath oracle -- the
   conditional mean by linear algebra, ``eta_X = m + beta Sigma V^-1 (x - beta m)``,
   ``V = alpha^2 I + beta^2 Sigma`` -- for a 2-D Gaussian with a full covariance at interior times
   dense at both ends, and for a conversion ``gaussian_converted_drift`` against the *target*
   schedule's own Gaussian drift ``b_B + eps_B s_B`` (claims C4, C5), computed the same way.

Every failure names the function and the point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mpmath
import sympy as sp
import torch

from lazysi.symbolic.codegen import GENERATOR_VERSION, compile_module
from lazysi.symbolic.emit import EmitError, EmittedModule, regenerate
from lazysi.symbolic.fields import D
from lazysi.symbolic.schedule import t as T_SYM

from .mpcheck import mp_value_cached, rel_error
from .oracles import MpSchedule

__all__ = ["FunctionCheck", "ModuleReport", "check_module", "check_module_text", "GRID", "GLUE_TIMES", "TOLERANCE", "GLUE_TOLERANCE"]

#: generated kernels against mpmath: relative error (absolute against the typical size at a zero)
TOLERANCE = 1e-10
#: assembled functions (an eigendecomposition in float64 on top of the kernels)
GLUE_TOLERANCE = 1e-9
_NEAR = (1e-300, 1e-100, 1e-30, 1e-15, 1e-12, 1e-8, 1e-5, 1e-3, 1e-2)
GRID: tuple[float, ...] = tuple(
    sorted({0.0, 1.0} | set(_NEAR) | {1.0 - h for h in _NEAR if 1.0 - h < 1.0} | {0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9})
)
GLUE_TIMES: tuple[float, ...] = (1e-9, 1e-6, 1e-3, 0.05, 0.3, 0.5, 0.7, 0.95, 1 - 1e-3, 1 - 1e-6, 1 - 1e-9)
FIELD_VARIANCES = (0.25, 1.0, 4.0)
MEAN = (0.3, -0.2)
EPS = 0.3


@dataclass(frozen=True)
class FunctionCheck:
    name: str
    max_error: float
    tolerance: float
    where: str
    values: int

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_error) and self.max_error <= self.tolerance


@dataclass
class ModuleReport:
    """``identical``: the file equals the regenerated text; ``difference``: where it does not
    (or why the header could not be read); ``functions``: one check per function."""

    path: str
    identical: bool
    difference: str = ""
    functions: list[FunctionCheck] = field(default_factory=list)
    digits: int = 30

    @property
    def passed(self) -> bool:
        return self.identical and bool(self.functions) and all(f.passed for f in self.functions)

    def failures(self) -> list[str]:
        out = [] if self.identical else [f"{self.path}: {self.difference}"]
        out += [f"{self.path}: {f.name}: error {f.max_error:.3g} > {f.tolerance:.0e} at {f.where}" for f in self.functions if not f.passed]
        return out

    def render(self) -> str:
        lines = [f"module {self.path}: " + ("byte-identical to the regenerated module" if self.identical else f"DIFFERS: {self.difference}")]
        for f in self.functions:
            lines.append(f"  {f.name:<26} {f.values:>4} values  max error {f.max_error:.1e} (tol {f.tolerance:.0e})  {'pass' if f.passed else 'FAIL at ' + f.where}")
        n = len(self.functions)
        lines.append(f"{'passed' if self.passed else 'FAILED'}: {n} function{'s' if n != 1 else ''} checked against mpmath at {self.digits} digits")
        return "\n".join(lines)


def _first_difference(got: str, want: str, module: EmittedModule) -> str:
    a, b = got.splitlines(), want.splitlines()
    import re

    version = re.search(r"\(version ([^)]*)\)", a[0]) if a else None
    if version and version.group(1) != GENERATOR_VERSION:
        return (f"written by generator version {version.group(1)}, this lazysi generates version {GENERATOR_VERSION}: "
                "emit it again with this lazysi (or check it with the lazysi that wrote it)")
    for i in range(max(len(a), len(b))):
        la = a[i] if i < len(a) else "<end of file>"
        lb = b[i] if i < len(b) else "<end of file>"
        if la != lb:
            owner = "the header"
            for line in b[: i + 1][::-1]:
                if line.startswith("def "):
                    owner = f"function {line[4:].split('(')[0]}"
                    break
            return f"line {i + 1} ({owner}) differs from the generator output: {la[:80]!r} vs {lb[:80]!r}"
    return "trailing whitespace or line endings differ from the generator output"


def _typical(refs) -> float:
    mags = sorted(float(abs(r)) for r in refs if mpmath.isfinite(r) and abs(r) < 1e308)
    return mags[len(mags) // 2] if mags else 0.0


def _check_kernel(name: str, fn, expr: sp.Expr, var: sp.Symbol, digits: int, d_values=(None,)) -> FunctionCheck:
    tt = torch.tensor(GRID, dtype=torch.float64)
    worst, where, n = 0.0, "", 0
    for dv in d_values:
        e = expr if dv is None else expr.xreplace({D: sp.Rational(repr(dv))})
        with torch.no_grad():
            got = (fn(tt) if dv is None else fn(tt, d=torch.tensor(dv, dtype=torch.float64))).tolist()
        refs = [mp_value_cached(e, var, tv, digits) for tv in GRID]
        scale = _typical(refs)
        for tv, g, r in zip(GRID, got, refs):
            err = rel_error(g, r, scale=scale, zero_below=scale * 10.0 ** (5 - digits))
            n += 1
            if err > worst or not where:
                worst = err
                at = f"{var.name}={tv!r}" + ("" if dv is None else f", d={dv}")
                where = f"{at} (got {g!r}, mpmath {mpmath.nstr(r, 17)})"
    return FunctionCheck(name, worst, TOLERANCE, where, n)


def _covariance() -> torch.Tensor:
    th = 0.4
    r = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=torch.float64)
    cov = r @ torch.diag(torch.tensor([0.5, 2.0], dtype=torch.float64)) @ r.T
    return 0.5 * (cov + cov.T)


def _points(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return torch.randn(n, 2, generator=g, dtype=torch.float64)


def _mp_gaussian(ms: MpSchedule, tv, x, mean, cov, eps) -> dict[str, list]:
    """The exact Gaussian quantities by linear algebra at mpmath precision (independent of the
    eigenbasis assembly and of the generated coefficients)."""
    a, b, ad, bd = (ms(k, tv) for k in ("alpha", "beta", "alpha_dot", "beta_dot"))
    sig = mpmath.matrix(cov)
    m = mpmath.matrix(mean)
    v = a**2 * mpmath.eye(2) + b**2 * sig
    w = mpmath.lu_solve(v, mpmath.matrix(x) - b * m)
    ex = m + b * (sig * w)
    ez = a * w
    vel = bd * ex + ad * ez
    return {
        "gaussian_fields": list(ex) + list(ez),
        "gaussian_score": list(-w),
        "gaussian_velocity": list(vel),
        "gaussian_drift": list(vel - eps * w),
    }


def _vector_error(got: list[float], ref: list) -> float:
    scale = max(max(abs(r) for r in ref), mpmath.mpf(1e-300))
    worst = 0.0
    for g, r in zip(got, ref):
        if not math.isfinite(g):
            return math.inf
        worst = max(worst, float(abs(mpmath.mpf(g) - r) / scale))
    return worst


def _check_glue(ns: dict, module: EmittedModule, digits: int) -> list[FunctionCheck]:
    cov = _covariance()
    mean = torch.tensor(MEAN, dtype=torch.float64)
    cov_mp = [[mpmath.mpf(float(cov[i, j])) for j in range(2)] for i in range(2)]
    mean_mp = [mpmath.mpf(v) for v in MEAN]
    times = torch.tensor(GLUE_TIMES, dtype=torch.float64)
    x = _points(len(GLUE_TIMES))
    with torch.no_grad():
        ex, ez = ns["gaussian_fields"](times, x, mean, cov)
        got = {
            "gaussian_fields": torch.cat([ex, ez], dim=1),
            "gaussian_score": ns["gaussian_score"](times, x, mean, cov),
            "gaussian_velocity": ns["gaussian_velocity"](times, x, mean, cov),
            "gaussian_drift": ns["gaussian_drift"](times, x, mean, cov, EPS),
        }
    ms = MpSchedule(module.schedules[0])
    worst = {k: (0.0, "") for k in got}
    with mpmath.workdps(digits + 20):
        for i, tv in enumerate(GLUE_TIMES):
            refs = _mp_gaussian(ms, mpmath.mpf(tv), [mpmath.mpf(float(v)) for v in x[i]], mean_mp, cov_mp, mpmath.mpf(EPS))
            for k, ref in refs.items():
                err = _vector_error(got[k][i].tolist(), ref)
                if err > worst[k][0] or not worst[k][1]:
                    worst[k] = (err, f"t={tv!r}, x={[round(float(v), 6) for v in x[i]]}")
    out = [FunctionCheck(k, e, GLUE_TOLERANCE, w, len(GLUE_TIMES)) for k, (e, w) in worst.items()]
    if module.maps:
        out.append(_check_converted(ns, module, digits, mean, cov, mean_mp, cov_mp))
    return out


def _check_converted(ns, module: EmittedModule, digits: int, mean, cov, mean_mp, cov_mp) -> FunctionCheck:
    """``gaussian_converted_drift`` (through A's fields and the maps) against B's own drift."""
    from lazysi.symbolic.conversion import s as S_SYM

    times = torch.tensor(GLUE_TIMES, dtype=torch.float64)
    x = _points(len(GLUE_TIMES))
    with torch.no_grad():
        got = ns["gaussian_converted_drift"](times, x, mean, cov)
    mb = MpSchedule(module.schedules[1])
    eps_b = sp.lambdify(S_SYM, module.maps["eps_target"], modules="mpmath")
    worst, where = 0.0, ""
    with mpmath.workdps(digits + 20):
        for i, sv in enumerate(GLUE_TIMES):
            e = mpmath.mpf(eps_b(mpmath.mpf(sv)))
            ref = _mp_gaussian(mb, mpmath.mpf(sv), [mpmath.mpf(float(v)) for v in x[i]], mean_mp, cov_mp, e)["gaussian_drift"]
            err = _vector_error(got[i].tolist(), ref)
            if err > worst or not where:
                worst, where = err, f"s={sv!r}, x={[round(float(v), 6) for v in x[i]]}"
    # the maps compose a root of the conversion with A's fields: allow the conditioning of c, tau
    return FunctionCheck("gaussian_converted_drift", worst, 1e3 * GLUE_TOLERANCE, where, len(GLUE_TIMES))


def check_module_text(text: str, path: str = "<module>", digits: int = 30) -> ModuleReport:
    """:func:`check_module` on a module's text."""
    if digits < 30:
        raise ValueError(f"digits must be >= 30, got {digits}")
    try:
        module = regenerate(text)
    except EmitError as exc:
        return ModuleReport(path, False, f"cannot regenerate from the header: {exc}", digits=digits)
    if text != module.source:
        return ModuleReport(path, False, _first_difference(text, module.source, module), digits=digits)
    ns = compile_module(module.source, "lazysi_emitted_check")
    from lazysi.symbolic.conversion import s as S_SYM

    checks = [_check_kernel(k, ns[k], e, T_SYM, digits) for k, e in module.kernels.items()]
    checks += [_check_kernel(k, ns[k], e, T_SYM, digits, FIELD_VARIANCES) for k, e in module.fields.items()]
    checks += [_check_kernel(k, ns[k], e, S_SYM, digits) for k, e in module.maps.items()]
    checks += _check_glue(ns, module, digits)
    return ModuleReport(path, True, "", checks, digits)


def check_module(path: str | Path, digits: int = 30) -> ModuleReport:
    """Regenerate the emitted module at ``path`` from its header, compare the bytes and check
    every function against mpmath at ``digits`` (>= 30) digits (see the module docstring)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return ModuleReport(str(p), False, f"cannot read: {exc}", digits=digits)
    return check_module_text(text, str(p), digits)
