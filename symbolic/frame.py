"""The Gaussian frame of a schedule: per eigendirection of a data covariance, the exact flow of the
Gaussian part and the antiderivatives that integrate a polynomial residual (DERIVED with sympy).

Time runs forward, t = 0 base -> t = 1 data, on a schedule ``I_t = alpha_t Z + beta_t X``. For data
``N(m, Sigma)`` take an eigenvalue ``d`` of ``Sigma`` and the centred coordinate ``w = u^T (x - beta m)``
along its eigenvector. The exact probability-flow velocity is affine (C7), ``dw/dt = k(t, d) w`` with
``k = alpha_dot g_Z(d) + beta_dot g_X(d)`` (the Gaussian field gains of :mod:`lazysi.symbolic.fields`).
Derived here, for the schedule at hand:

* ``phi = exp(int k dt)``, normalised so that ``phi^2 = alpha^2 + beta^2 d`` (the marginal variance;
  checked), hence the exact Gaussian flow map ``w_1 = phi(t_1)/phi(t_0) w_0``;
* ``F = int dt/phi``, ``G = int t dt/phi``, ``H = int t^2 dt/phi``, ``K = int t^3 dt/phi`` (closed
  forms, e.g. with ``asinh`` on the linear schedule): a residual ``r(tau) = sum_j c_j tau^j`` of
  degree <= 3 adds ``phi_1 int_{t_0}^{t_1} r/phi`` (variation of constants).

The numeric frame (:mod:`lazysi.numeric.sampling.frame`) generates torch code from these
expressions; the derivations are kept in the disk cache (:mod:`lazysi.symbolic.cache`).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import sympy as sp

from .cache import Store
from .fields import ALPHA, BETA, gaussian_fields
from .schedule import Schedule, t

__all__ = ["FRAME_KERNELS", "MOMENT_KERNELS", "derive_frame_kernels"]

#: names of the derived per-direction kernels, functions of ``t`` and the variance ``D``
FRAME_KERNELS = ("phi", "k", "F", "G", "H", "K")
#: the moment kernels ``int t^j dt/phi``, j = 0, 1, ..., in order of j
MOMENT_KERNELS = ("F", "G", "H", "K")

_DERIVED = Store("cov_kernels")


@lru_cache(maxsize=None)
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def derive_frame_kernels(schedule: Schedule) -> dict[str, sp.Expr]:
    """:func:`_derive` for ``schedule`` (bound parameters), kept in the disk cache under the
    schedule and the source of this module."""
    bound = schedule.bound
    return _DERIVED.memo(("cov-kernels", bound.alpha, bound.beta, _source_hash()), FRAME_KERNELS,
                         lambda: _derive(schedule))


def _derive(schedule: Schedule) -> dict[str, sp.Expr]:
    """Per-direction kernels in ``t`` and ``D``: ``k = alpha_dot g_Z + beta_dot g_X``,
    ``phi = exp(int k)``, ``F = int 1/phi``, ``G = int t/phi``, ``H = int t^2/phi``,
    ``K = int t^3/phi`` (the residual's cubic term, third-order frame solvers). Raises
    NotImplementedError where sympy finds no closed form. Checks: ``d/dt log phi = k`` and
    ``phi^2 = alpha^2 + beta^2 d`` (the marginal variance)."""
    bound = schedule.bound
    a, b = bound.alpha, bound.beta
    g = gaussian_fields()
    sub = {ALPHA: a, BETA: b}
    k = sp.simplify((sp.diff(a, t) * g.gain_z + sp.diff(b, t) * g.gain_x).xreplace(sub))
    log_phi = sp.integrate(k, t)
    if log_phi.has(sp.Integral):
        raise NotImplementedError(f"no closed form for int k dt on schedule {schedule.name}")
    phi = sp.simplify(sp.exp(log_phi))
    # fix the integration constant: phi(0) must be the marginal std at t = 0
    var = g.var.xreplace(sub)
    phi = sp.simplify(phi * sp.sqrt(var.subs(t, 0)) / phi.subs(t, 0))
    if sp.simplify(sp.diff(sp.log(phi), t) - k) != 0 or sp.simplify(phi**2 - var) != 0:
        raise RuntimeError(f"Gaussian flow map derivation failed its checks on {schedule.name}")
    F = sp.integrate(1 / phi, t)
    G = sp.integrate(t / phi, t)
    H = sp.integrate(t**2 / phi, t)
    K = sp.integrate(t**3 / phi, t)
    if F.has(sp.Integral) or G.has(sp.Integral) or H.has(sp.Integral) or K.has(sp.Integral):
        raise NotImplementedError(f"no closed form for int t^j dt/phi (j <= 3) on schedule {schedule.name}")
    return {"phi": phi, "k": k, "F": F, "G": G, "H": H, "K": K}
