"""Endpoint limits of expressions in the time variable.

Schedules are singular at their endpoints in predictable ways (a point mass at t = 0 makes
``alpha^2 / beta`` a 0/0, ``1/(1 - beta)`` blows up at the data end, eps* is infinite at a
Gaussian base). These helpers decide, symbolically, what an expression is *at* t = 0 and t = 1.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .cache import Store
from .expr import time_symbol

__all__ = ["endpoint_limit", "is_finite_number", "endpoint_value"]

_BAD = (sp.nan, sp.zoo, sp.oo, -sp.oo)
#: sympy ``limit`` results, kept on disk (:mod:`lazysi.symbolic.cache`)
_LIMITS = Store("limits")


def is_finite_number(value: sp.Expr) -> bool:
    """True for a finite real sympy number (not nan, not infinite, no AccumBounds)."""
    value = sp.sympify(value)
    if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo, sp.AccumBounds):
        return False
    return bool(value.is_finite) and value.is_real is not False


@lru_cache(maxsize=4096)
def _limit_cached(expr: sp.Expr, var: sp.Symbol, end: int) -> sp.Expr:
    try:
        value = expr.subs(var, end)
    except (ZeroDivisionError, TypeError, ValueError):
        value = sp.nan
    if is_finite_number(value):
        # Direct substitution is only trustworthy if the expression is continuous there; compare
        # with the limit when substitution hides a removable singularity (rare; cheap check).
        return sp.nsimplify(value) if value.is_Float else value
    # Approach the endpoint through a fresh positive symbol h -> 0+ (t = h or t = 1 - h): sympy's
    # limit with dir='-' on a symbol carrying assumptions has returned wrong signs.
    key = _LIMITS.key("endpoint-limit", expr, var, end)
    hit = _LIMITS.lookup(key, ("value",))
    if hit is not None:
        return hit["value"]
    h = sp.Dummy("h", positive=True)
    moved = expr.xreplace({var: h if end == 0 else 1 - h})
    value = sp.limit(moved, h, 0, dir="+")
    if not value.has(h):
        _LIMITS.put(key, {"value": value})
    return value


def endpoint_limit(expr: sp.Expr, end: int, var: sp.Symbol | None = None) -> sp.Expr:
    """The one-sided limit of ``expr`` at ``end`` (0 from above, 1 from below).

    Substitution is used where it gives a finite number, sympy's ``limit`` otherwise. The
    result may be ``oo``/``-oo`` or an ``AccumBounds`` for an oscillating expression.
    """
    if end not in (0, 1):
        raise ValueError(f"end must be 0 or 1, got {end!r}")
    var = var if var is not None else time_symbol("t")
    return _limit_cached(sp.sympify(expr), var, end)


def endpoint_value(expr: sp.Expr, end: int, var: sp.Symbol | None = None) -> tuple[sp.Expr, bool]:
    """``(value, needs_guard)``: the limit at ``end`` and whether plain evaluation there fails."""
    var = var if var is not None else time_symbol("t")
    expr = sp.sympify(expr)
    try:
        direct = expr.subs(var, end)
    except (ZeroDivisionError, TypeError, ValueError):
        direct = sp.nan
    if is_finite_number(direct):
        return direct, False
    return endpoint_limit(expr, end, var), True
