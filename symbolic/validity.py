"""Validity conditions of a schedule, proven symbolically where sympy can, else checked at
high precision with mpmath on a dense grid plus the endpoint limits.

Conditions (t = 0 base, t = 1 data):

* ``alpha(1) = 0`` and ``beta(0) = 0``;
* base: ``alpha(0) = 1`` (standard) or ``alpha(0) = 0`` (point mass);
* data end: ``beta(1) = 1 / data_scale`` (1 for a standard schedule);
* ``alpha > 0`` and ``beta > 0`` on (0, 1);
* ``beta_dot > 0`` on (0, 1), and for a standard schedule ``alpha_dot < 0`` on (0, 1);
* ``lambda = log(beta/alpha)`` strictly increasing on (0, 1), i.e. ``alpha beta_dot - beta alpha_dot > 0``;
* ``lambda -> -inf`` at 0 and ``+inf`` at 1 (so that any two schedules convert into each other);
* point mass only: ``alpha^2 / beta`` and ``beta_dot`` have finite limits at 0.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from .limits import endpoint_limit, is_finite_number

__all__ = ["Condition", "ValidityReport", "validate", "prove_positive", "check_positive_numeric"]


@dataclass(frozen=True)
class Condition:
    """One validity condition: ``how`` is ``"symbolic"`` (proved/refuted by sympy) or ``"numeric"``."""

    name: str
    holds: bool
    how: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "holds": self.holds, "how": self.how, "detail": self.detail}


@dataclass(frozen=True)
class ValidityReport:
    schedule: str
    point_mass: bool
    conditions: tuple[Condition, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return all(c.holds for c in self.conditions)

    def failed(self) -> list[Condition]:
        return [c for c in self.conditions if not c.holds]

    def as_dict(self) -> dict:
        return {
            "schedule": self.schedule,
            "point_mass": self.point_mass,
            "valid": self.valid,
            "conditions": [c.as_dict() for c in self.conditions],
        }


class _Timeout(BaseException):
    """Raised inside a :func:`_time_limit` block when its time is up.  A ``BaseException``, so
    that sympy's own ``except Exception`` clauses cannot swallow it."""


# Deadlines (time.monotonic) of the active _time_limit blocks, innermost last.
_DEADLINES: list[float] = []
# Frames in which raising would be "unraisable" (the interpreter prints and drops the exception):
# finalizers and weakref callbacks.  The handler leaves those alone; the timer re-fires 50 ms later.
# contextlib.py and _time_limit's own frame are skipped as well, so that the bookkeeping of entering
# and leaving a block cannot be cut in half.
_SKIP_FILES = ("weakref.py", "_weakrefset.py", "contextlib.py")


def _alarm(signum, frame):  # noqa: ARG001
    if not _DEADLINES or time.monotonic() < min(_DEADLINES):
        return  # a stray or early alarm: no active block is over time
    if frame is not None and (
        frame.f_code is _time_limit.__wrapped__.__code__
        or frame.f_code.co_name == "__del__"
        or frame.f_code.co_filename.endswith(_SKIP_FILES)
    ):
        return
    raise _Timeout()


def _drop_unraisable_timeouts(prev):
    """An ``sys.unraisablehook`` that drops a :class:`_Timeout` raised where it cannot propagate
    (a C-level callback the frame test above does not recognise); the 50 ms re-fire takes over.
    Everything else goes to ``prev``."""

    def hook(unraisable):
        if isinstance(unraisable.exc_value, _Timeout):
            return
        prev(unraisable)

    return hook


@contextmanager
def _time_limit(seconds: float):
    """Bound a sympy attempt in wall time (main thread only; elsewhere no bound is applied).

    Blocks nest: an inner block never extends an outer one's deadline, and leaving it re-arms
    the timer for the outer one.  After a deadline the timer re-fires every 50 ms, in case one
    alarm arrives where an exception cannot propagate (a finalizer, a weakref callback)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    now = time.monotonic()
    deadline = now + max(float(seconds), 1e-3)
    if _DEADLINES:
        deadline = min(deadline, _DEADLINES[-1])
    outermost = not _DEADLINES
    old = signal.signal(signal.SIGALRM, _alarm) if outermost else None
    old_hook = sys.unraisablehook
    if outermost:
        sys.unraisablehook = _drop_unraisable_timeouts(old_hook)
    _DEADLINES.append(deadline)
    try:
        signal.setitimer(signal.ITIMER_REAL, max(deadline - now, 1e-4), 0.05)
        yield
    finally:
        _DEADLINES.pop()
        if outermost:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            sys.unraisablehook = old_hook
        else:
            signal.setitimer(signal.ITIMER_REAL, max(_DEADLINES[-1] - time.monotonic(), 1e-4), 0.05)


def prove_positive(expr: sp.Expr, var: sp.Symbol, seconds: float = 2.0) -> bool | None:
    """Try to prove ``expr > 0`` for ``var`` in (0, 1). Returns True/False when sympy decides, else None.

    Strategy: substitute ``var = u / (1 + u)`` with ``u > 0`` (a bijection onto (0, inf)) and ask
    sympy's assumption system; then try ``solveset(expr <= 0)`` on the open interval.
    """
    u = sp.Symbol("_u", positive=True)
    try:
        with _time_limit(seconds):
            mapped = sp.factor_terms(sp.together(expr.subs(var, u / (1 + u))))
            sign = mapped.is_positive
            if sign is not None:
                return bool(sign)
            if mapped.is_nonpositive:
                return False
            sol = sp.solveset(sp.Le(expr, 0), var, sp.Interval.open(0, 1))
            if sol == sp.S.EmptySet:
                return True
            if isinstance(sol, (sp.Interval, sp.Union, sp.FiniteSet)) and sol.measure is not None:
                if sol != sp.S.EmptySet and not sol.has(sp.ConditionSet):
                    return False
    except _Timeout:
        return None
    except (NotImplementedError, TypeError, ValueError, AttributeError, RecursionError):
        return None
    return None


def _grid(n: int) -> list[mpmath.mpf]:
    pts = [mpmath.mpf(i) / n for i in range(1, n)]
    for k in range(1, 13):
        eps = mpmath.mpf(10) ** (-k)
        pts += [eps, 1 - eps]
    return sorted(set(pts))


def _fmt_t(x: mpmath.mpf) -> str:
    """A grid time for messages: points near 1 as ``1 - h`` (``t=1.0`` would hide which point)."""
    if x > mpmath.mpf("0.999"):
        return "1 - " + mpmath.nstr(1 - x, 3)
    return mpmath.nstr(x, 8)


def check_positive_numeric(expr: sp.Expr, var: sp.Symbol, digits: int = 30, n: int = 200) -> tuple[bool, str]:
    """Evaluate ``expr`` with mpmath at ``digits`` on a dense grid of (0, 1) including points within
    1e-12 of both ends; returns (holds, detail naming the worst point)."""
    f = sp.lambdify(var, expr, modules="mpmath")
    worst_t, worst_v = None, None
    with mpmath.workdps(digits):
        for x in _grid(n):
            try:
                v = f(x)
            except (ZeroDivisionError, ValueError, OverflowError):
                return False, f"not defined at t={_fmt_t(x)}"
            if isinstance(v, mpmath.mpc):
                if abs(v.imag) > mpmath.mpf(10) ** (-digits + 5):
                    return False, f"complex value at t={_fmt_t(x)}"
                v = v.real
            if worst_v is None or v < worst_v:
                worst_t, worst_v = x, v
    holds = worst_v is not None and worst_v > 0
    return holds, f"min {mpmath.nstr(worst_v, 6)} at t={_fmt_t(worst_t)} ({digits} digits, {n}+24 points)"


def _positivity(name: str, expr: sp.Expr, var: sp.Symbol, digits: int, n: int) -> Condition:
    proved = prove_positive(expr, var)
    if proved is True:
        return Condition(name, True, "symbolic", "sympy proved positivity on (0,1)")
    if proved is False:
        holds, detail = check_positive_numeric(expr, var, digits, n)
        return Condition(name, False, "symbolic" if not holds else "numeric", "sympy found a violation; " + detail)
    holds, detail = check_positive_numeric(expr, var, digits, n)
    return Condition(name, holds, "numeric", detail)


def _equals(name: str, value: sp.Expr, target: sp.Expr) -> Condition:
    value = sp.simplify(value) if value.is_number else value
    diff = sp.simplify(value - target) if is_finite_number(value) else None
    holds = diff is not None and diff == 0
    return Condition(name, bool(holds), "symbolic", f"limit is {value}")


def validate(schedule, digits: int = 30, grid: int = 200) -> ValidityReport:
    """Check every validity condition of ``schedule`` (parameters bound to their values)."""
    s = schedule.bound
    var = s.t
    a, b = s.alpha, s.beta
    a0 = endpoint_limit(a, 0)
    a1 = endpoint_limit(a, 1)
    b0 = endpoint_limit(b, 0)
    b1 = endpoint_limit(b, 1)
    point_mass = bool(a0 == 0)
    conds: list[Condition] = [
        _equals("alpha(1) = 0", a1, sp.Integer(0)),
        _equals("beta(0) = 0", b0, sp.Integer(0)),
    ]
    if point_mass:
        conds.append(Condition("base: alpha(0) = 1 (standard) or 0 (point mass)", True, "symbolic", "alpha(0) = 0: point mass"))
    else:
        c = _equals("base: alpha(0) = 1 (standard) or 0 (point mass)", a0, sp.Integer(1))
        conds.append(c)
    target_b1 = sp.Integer(1) / s.data_scale
    conds.append(_equals(f"data end: beta(1) = {target_b1}", b1, target_b1))
    conds.append(_positivity("alpha > 0 on (0,1)", a, var, digits, grid))
    conds.append(_positivity("beta > 0 on (0,1)", b, var, digits, grid))
    conds.append(_positivity("beta_dot > 0 on (0,1)", s.beta_dot, var, digits, grid))
    if not point_mass:
        conds.append(_positivity("alpha_dot < 0 on (0,1)", -s.alpha_dot, var, digits, grid))
    conds.append(
        _positivity(
            "lambda strictly increasing on (0,1)", a * s.beta_dot - b * s.alpha_dot, var, digits, grid
        )
    )
    l0 = endpoint_limit(s.lam, 0)
    l1 = endpoint_limit(s.lam, 1)
    conds.append(
        Condition(
            "lambda range is (-oo, oo)",
            bool(l0 == -sp.oo and l1 == sp.oo),
            "symbolic",
            f"lambda(0+) = {l0}, lambda(1-) = {l1}",
        )
    )
    if point_mass:
        r0 = endpoint_limit(a**2 / b, 0)
        bd0 = endpoint_limit(s.beta_dot, 0)
        conds.append(Condition("point mass: alpha^2/beta finite at 0", is_finite_number(r0), "symbolic", f"limit is {r0}"))
        conds.append(Condition("point mass: beta_dot finite at 0", is_finite_number(bd0), "symbolic", f"limit is {bd0}"))
    return ValidityReport(schedule.name, point_mass, tuple(conds))
