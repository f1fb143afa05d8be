"""Independent oracles for tests: sympy expressions evaluated by mpmath at high precision."""
from __future__ import annotations

import math

import mpmath
import sympy as sp

from lazysi.symbolic.limits import endpoint_limit

DIGITS = 50


def mp_value(expr: sp.Expr, var: sp.Symbol, t: float, digits: int = DIGITS):
    """``expr`` at the float ``t`` (taken exactly) with ``digits`` digits; the one-sided limit at
    t = 0 and t = 1. Returns an mpf (possibly +-inf)."""
    if t in (0.0, 1.0):
        lim = endpoint_limit(expr, int(t), var)
        if lim == sp.oo:
            return mpmath.inf
        if lim == -sp.oo:
            return -mpmath.inf
        with mpmath.workdps(digits):
            return mpmath.mpf(sp.N(lim, digits))
    # Adaptive precision: the source expression may cancel catastrophically near an endpoint
    # (e.g. 2 alpha_dot/alpha - beta_dot/beta at t = 1e-130), so raise the working precision
    # until two successive evaluations agree to ``digits`` digits.
    f = _lambdified(expr, var)
    prev = None
    # Cancellation near an endpoint scales like 1/t or 1/(1-t): start with that many extra digits.
    extra = 10 + int(max(0.0, -math.log10(t) if t > 0 else 0.0, -math.log10(1 - t) if t < 1 else 0.0))
    base = digits + extra
    for dps in (base, 2 * base, 4 * base, 8 * base):
        with mpmath.workdps(dps):
            v = f(mpmath.mpf(t))
            if isinstance(v, mpmath.mpc):
                v = v.real
            v = +v
        if prev is not None:
            with mpmath.workdps(dps):
                if v == prev or abs(v - prev) <= abs(v) * mpmath.mpf(10) ** (-digits):
                    return v
        prev = v
    raise AssertionError(f"mpmath oracle did not converge for {expr} at t={t!r}")


_CACHE: dict = {}


def _lambdified(expr, var):
    key = (expr, var)
    if key not in _CACHE:
        _CACHE[key] = sp.lambdify(var, expr, modules="mpmath")
    return _CACHE[key]


def close(got: float, ref, rel: float, abs_: float) -> bool:
    """``|got - ref| <= rel |ref| + abs_``; infinities must match exactly."""
    if mpmath.isinf(ref) or abs(ref) > 1.7976931348623157e308:
        # infinite, or beyond the float64 range: the only correct float answer is a signed inf
        return math.isinf(got) and (got > 0) == (ref > 0)
    if not math.isfinite(got):
        return False
    return abs(mpmath.mpf(got) - ref) <= rel * abs(ref) + abs_


def three_d_mixture(schedule):
    """A fixed two-component Gaussian mixture in 3-d (seeded) on ``schedule`` and its full Gaussian
    approximation from the exact moments (law of total covariance): ``(provider, approx)``."""
    import torch

    from lazysi.numeric.fields.approx import GaussianApprox
    from lazysi.numeric.fields.gaussian import MixtureProvider

    torch.manual_seed(1)
    means = torch.tensor([[1.5, -0.5, 0.3], [-1.0, 0.8, -0.2]], dtype=torch.float64)
    a = torch.randn(2, 3, 3, dtype=torch.float64) * 0.4
    covs = a @ a.transpose(1, 2) + 0.05 * torch.eye(3, dtype=torch.float64)
    w = torch.tensor([0.35, 0.65], dtype=torch.float64)
    provider = MixtureProvider(schedule, w, means, covs)
    mu = w @ means
    dm = means - mu
    cov = torch.einsum("k,kde->de", w, covs) + torch.einsum("k,kd,ke->de", w, dm, dm)
    return provider, GaussianApprox.from_moments(mu, cov, (3,), "full")
