"""High-precision reference values for the numeric halves of claims.

``mp_value(expr, var, t, digits)`` evaluates a sympy expression with mpmath at ``digits``
significant digits at the float ``t`` (taken exactly), raising the working precision until two
evaluations agree (the source expressions cancel catastrophically near t = 0 and t = 1); at
t = 0 and t = 1 it returns the one-sided symbolic limit (t -> 0+ at the base, t -> 1- at the data).
``rel_error(got, ref)`` is the relative error of a float against such a reference, with
infinities required to match exactly. Results are cached: claims are re-run many times by
``lazysi verify --mutate`` against the same references.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import mpmath
import sympy as sp

from lazysi.symbolic.cache import Store
from lazysi.symbolic.limits import endpoint_limit

__all__ = ["mp_value", "mp_value_cached", "rel_error", "lambdified", "flush_cache", "cache_path", "TINY"]

# Below this magnitude a reference counts as zero and the error is absolute (no float64 kernel
# can be relatively accurate for a value that underflows).
TINY = 1e-300


@lru_cache(maxsize=None)
def lambdified(expr: sp.Expr, var: sp.Symbol):
    """``expr`` as an mpmath function of ``var`` (cached per expression)."""
    return sp.lambdify(var, expr, modules="mpmath")


def mp_value(expr: sp.Expr, var: sp.Symbol, t: float, digits: int = 30) -> mpmath.mpf:
    """``expr(t)`` to ``digits`` digits (possibly +-inf at an endpoint); see the module docstring."""
    if t in (0.0, 1.0):
        lim = endpoint_limit(expr, int(t), var)
        if lim == sp.oo:
            return mpmath.inf
        if lim == -sp.oo:
            return -mpmath.inf
        if lim.has(sp.nan, sp.zoo, sp.AccumBounds):
            return mpmath.nan
        with mpmath.workdps(digits):
            return +mpmath.mpf(sp.N(lim, digits + 5))
    f = lambdified(expr, var)
    extra = 10 + int(max(0.0, -math.log10(t) if t > 0 else 0.0, -math.log10(1 - t) if t < 1 else 0.0))
    base = digits + extra
    prev = None
    for dps in (base, 2 * base, 4 * base, 8 * base):
        with mpmath.workdps(dps):
            v = f(mpmath.mpf(t))
            if isinstance(v, mpmath.mpc):
                v = v.real
            v = +v
            if prev is not None and (v == prev or abs(v - prev) <= abs(v) * mpmath.mpf(10) ** (-digits)):
                return v
        prev = v
    raise ArithmeticError(f"mpmath reference did not converge for {expr} at t={t!r}")


_MEMO: dict[str, mpmath.mpf] = {}
#: reference values on disk: one entry ``{"value": Float | oo | -oo | nan}`` per key, in the shared
#: derivation cache (``$LAZYSI_CACHE_DIR``, default ``~/.cache/lazysi``; ``LAZYSI_NO_CACHE=1``
#: disables it; nothing is stored inside ``lazysi.symbolic.cache.read_only()``)
_STORE = Store("mp_references", scope="sympy")


def cache_path() -> Path:
    """Where reference values persist between runs (the shared cache's ``mp_references`` file)."""
    return _STORE.path()


def flush_cache() -> None:
    """Write new reference values to disk (merged, atomic replace; failures only lose the cache)."""
    _STORE.flush()


def _to_sympy(value: mpmath.mpf, digits: int) -> sp.Expr:
    if mpmath.isnan(value):
        return sp.nan
    if mpmath.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    return sp.Float(value, digits + 10)


def _to_mpmath(stored: sp.Expr) -> mpmath.mpf:
    if stored is sp.nan:
        return mpmath.nan
    if stored in (sp.oo, -sp.oo):
        return mpmath.inf if stored is sp.oo else -mpmath.inf
    if isinstance(stored, sp.Float):
        return mpmath.mpf(stored._mpf_)  # the stored binary value, exactly
    return mpmath.mpf(int(stored))  # an exact zero reads back as Integer(0)


def mp_value_cached(expr: sp.Expr, var: sp.Symbol, t: float, digits: int) -> mpmath.mpf:
    """:func:`mp_value`, memoised in memory and on disk. The key is a sha256 of the
    expression's ``srepr`` (symbols with their assumptions), the variable, ``t``, ``digits`` and
    the mpmath version; the store's file name carries the sympy version, so any change recomputes."""
    key = Store.key(expr, var, repr(t), digits, f"mpmath {mpmath.__version__}")
    if key in _MEMO:
        return _MEMO[key]
    stored = _STORE.lookup(key, ("value",))
    if stored is not None:
        with mpmath.workdps(digits + 10):  # mpf() rounds to the working precision
            value = _to_mpmath(stored["value"])
    else:
        value = mp_value(expr, var, t, digits)
        _STORE.put(key, {"value": _to_sympy(value, digits)})
    _MEMO[key] = value
    return value


def rel_error(got: float, ref: mpmath.mpf, scale: float = 0.0, zero_below: float = 0.0) -> float:
    """``|got - ref| / |ref|``; where ``|ref| <= zero_below`` (a zero of the function at the
    reference's resolution, e.g. lambda at t = 1/2) the error is measured against ``scale``, the
    quantity's typical magnitude, instead; below :data:`TINY` it is absolute. A reference beyond
    the float64 range must come out as the signed infinity; anything else non-finite is an
    infinite error."""
    if mpmath.isnan(ref):
        return 0.0 if math.isnan(got) else math.inf
    if mpmath.isinf(ref) or abs(ref) > 1.7976931348623157e308:
        return 0.0 if (math.isinf(got) and (got > 0) == (ref > 0)) else math.inf
    if not math.isfinite(got):
        return math.inf
    diff = abs(mpmath.mpf(got) - ref)
    denom = abs(ref) if abs(ref) > zero_below else mpmath.mpf(scale)
    return float(diff / max(denom, mpmath.mpf(TINY)))
