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

import atexit
import hashlib
import json
import math
import os
from functools import lru_cache
from pathlib import Path

import mpmath
import sympy as sp

from lazysi.symbolic.cache import cache_enabled, cache_root
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
_DISK: dict[str, str] | None = None
_DIRTY = False


def cache_path() -> Path:
    """Where reference values persist between runs (``$LAZYSI_CACHE_DIR``, default
    ``~/.cache/lazysi``); ``LAZYSI_NO_CACHE=1`` disables it."""
    return cache_root() / "verify" / f"mp-references-sympy{sp.__version__}-mpmath{mpmath.__version__}.json"


def _disk() -> dict[str, str]:
    global _DISK
    if _DISK is None:
        _DISK = {}
        if cache_enabled():
            try:
                _DISK = json.loads(cache_path().read_text())
            except (OSError, ValueError):
                _DISK = {}
    return _DISK


def flush_cache() -> None:
    """Write new reference values to disk (atomic replace; failures only lose the cache)."""
    global _DIRTY
    if not _DIRTY or not cache_enabled():
        return
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_disk()))
        os.replace(tmp, path)
        _DIRTY = False
    except OSError:
        pass


atexit.register(flush_cache)


def mp_value_cached(expr: sp.Expr, var: sp.Symbol, t: float, digits: int) -> mpmath.mpf:
    """:func:`mp_value`, memoised in memory and on disk. The key is a sha256 of the
    expression's ``srepr`` (symbols with their assumptions), the variable, ``t`` and ``digits``;
    the file name carries the sympy and mpmath versions, so any change recomputes."""
    global _DIRTY
    key = hashlib.sha256(f"{sp.srepr(expr)}|{sp.srepr(var)}|{t!r}|{digits}".encode()).hexdigest()
    if key in _MEMO:
        return _MEMO[key]
    stored = _disk().get(key)
    if stored is not None:
        with mpmath.workdps(digits + 10):
            value = mpmath.mpf(stored)
    else:
        value = mp_value(expr, var, t, digits)
        with mpmath.workdps(digits + 10):
            _disk()[key] = mpmath.nstr(value, digits + 10) if mpmath.isfinite(value) else str(value)
        _DIRTY = True
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
