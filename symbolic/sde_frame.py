"""The covariance-aware SDE frame (MATH.md C16, beyond the paper): the Gaussian part of
``dX = (b + eps s) dt + sqrt(2 eps) dW`` per eigendirection, derived with sympy.

Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data, sampling forward in t. For data
``N(m, Sigma)`` take an eigenvalue ``d`` of ``Sigma`` and the centred coordinate
``y = u^T (x - beta m)`` along its eigenvector. With ``eps = nu eps*`` (``nu >= 0``; ``nu = 0`` the
probability-flow ODE, ``nu = 1`` the statistically optimal SDE, C2) the exact Gaussian fields
(:func:`lazysi.symbolic.fields.gaussian_fields`) make the drift affine, and per direction::

    dy = k(t) y dt + sqrt(2 eps) dW,     k = (alpha_dot - eps/alpha) g_Z(d) + beta_dot g_X(d).

Derived here (every identity is checked, see :func:`_derive_sde_kernels`):

* ``phi = sqrt(alpha^2 + beta^2 d)`` (the marginal standard deviation of ``y``);
* ``L = log(beta/phi)``, with ``dL/dt = eps*/phi^2`` (checked), so ``Lambda = int eps/phi^2 =
  nu (L(t1) - L(t0))`` needs no quadrature;
* ``log_A = log phi - nu L`` (``A = phi^(1+nu)/beta^nu``), with ``d log_A/dt = k`` (checked against
  the ``k`` derived from the field gains): the transition factor is ``Phi(t1, s) = A(t1)/A(s)``;
* ``gain_x = g_X(d)`` (``eta_X = m + gain_x y`` for the Gaussian);
* ``r_gain = d(b + eps s)/d eta_X`` at fixed x, checked ``= (1 + nu) beta lambda_dot``: a model's
  drift minus the Gaussian drift is ``r = r_gain (eta_X - eta_X^G)`` (the eta_Z terms cancel through
  ``x = alpha eta_Z + beta eta_X``), finite for ``t < 1`` even where ``eps*`` is infinite.

The transition over ``[t0, t1]`` (:func:`transition`) is Gaussian, ``y1 = M y0 + sum_j c_j W_j +
sqrt(V) xi`` for a residual polynomial ``sum_j c_j (s - t0)^j`` frozen over the step::

    M   = A(t1)/A(t0) = exp(log_A(t1) - log_A(t0)),
    V   = phi(t1)^2 (1 - exp(-2 nu (L(t1) - L(t0)))) = -phi1^2 expm1(-2 Lambda),
    W_j = int_{t0}^{t1} exp(log_A(t1) - log_A(s)) (s - t0)^j ds.

At a point-mass base (``phi(t0) = 0``) the state is ``y0 = 0`` and ``M`` is taken as 0 (its limit
is 0, finite or infinite depending on nu, but it multiplies ``y0 = 0``); ``L(t0) = -oo`` gives
``V = phi1^2``. At a standard base with ``nu > 0``, ``log_A(0) = +oo`` gives ``M = 0`` too (eps* is
infinite there, C3: the SDE forgets its start).

``W_j``: sympy finds closed forms for the single-time antiderivatives ``K_j = int t^j/A dt`` only
for some (schedule, nu) pairs (e.g. nu = 1 on the point-mass schedule, where they carry a removable
``1/(d - sigma^2)`` that float evaluation turns into 0/0 at the lazy variance ``d = sigma^2``; none
for nu = 1/2 or 2 on the linear or point-mass schedules). The numeric frame therefore integrates
the generated integrand ``exp(log_A(t1) - log_A(s))`` by double-exponential (tanh-sinh) quadrature,
which is exponentially convergent also with the algebraic endpoint singularity ``s^((nu - 1)/2)``
at a point-mass base; its accuracy is checked against mpmath (``lazysi verify``, C16b).
"""
from __future__ import annotations

import mpmath
import sympy as sp

from .cache import Store
from .fields import ALPHA, BETA, D, X, gaussian_fields
from .schedule import Schedule, as_number, t

__all__ = [
    "SDE_KERNEL_NAMES",
    "T0",
    "T1",
    "S",
    "check_nu",
    "derive_sde_kernels",
    "sde_gain",
    "transition",
]

SDE_KERNEL_NAMES = ("phi", "L", "log_A", "gain_x", "r_gain")
#: the two times of a transition and the integration variable of the residual weights
T0 = sp.Symbol("t0", nonnegative=True)
T1 = sp.Symbol("t1", positive=True)
S = sp.Symbol("s", positive=True)

_DERIVED = Store("sde_kernels")


def check_nu(nu: object) -> sp.Expr:
    """``nu`` as an exact non-negative sympy number (floats via their shortest repr); bad input raises."""
    value = as_number(nu, "nu")
    if not value.is_real or value.is_negative:
        raise ValueError(f"nu must be a real number >= 0, got {nu!r}")
    return value


def derive_sde_kernels(schedule: Schedule, nu: object = 1) -> dict[str, sp.Expr]:
    """:func:`_derive_sde_kernels`, kept in the disk cache (:mod:`lazysi.symbolic.cache`, whose file
    name carries the fingerprint of every ``lazysi.symbolic`` source) under the bound schedule and ``nu``."""
    bound = schedule.bound
    nu_v = check_nu(nu)
    return _DERIVED.memo(("sde-kernels", bound.alpha, bound.beta, nu_v), SDE_KERNEL_NAMES,
                         lambda: _derive_sde_kernels(schedule, nu_v))


def sde_gain(schedule: Schedule, nu: object = 1) -> sp.Expr:
    """``k(t, d) = (alpha_dot - eps/alpha) g_Z(d) + beta_dot g_X(d)``, ``eps = nu eps*``: the gain of
    the Gaussian SDE drift per eigendirection, straight from the derived field gains (C7)."""
    bound = schedule.bound
    nu_v = check_nu(nu)
    g = gaussian_fields()
    sub = {ALPHA: bound.alpha, BETA: bound.beta}
    eps = nu_v * bound.eps_star
    return ((bound.alpha_dot - eps / bound.alpha) * g.gain_z + bound.beta_dot * g.gain_x).xreplace(sub)


def _vanishes(expr: sp.Expr, points: int = 4) -> bool:
    """``expr`` (in t and d) reduces to 0 under ``simplify``, or, where sympy cannot decide (logs of
    square roots), is below 1e-35 at interior rational points evaluated at 50 digits."""
    try:
        if sp.simplify(expr) == 0:
            return True
    except (NotImplementedError, RecursionError, TypeError):
        pass
    f = sp.lambdify([t, D], expr, modules="mpmath")
    with mpmath.workdps(50):
        for i in range(points):
            tv = mpmath.mpf(i + 1) / (points + 1) + mpmath.mpf(1) / 97
            for dv in (mpmath.mpf("0.3"), mpmath.mpf("1.7")):
                v = f(tv, dv)
                if isinstance(v, mpmath.mpc):
                    v = abs(v)
                if not abs(v) < mpmath.mpf("1e-35"):
                    return False
    return True


def _derive_sde_kernels(schedule: Schedule, nu: sp.Expr) -> dict[str, sp.Expr]:
    """The single-time kernels in ``t`` and ``D`` (module docstring), with the checks
    ``phi^2 = alpha^2 + beta^2 d`` (the marginal variance from the log-density), ``dL/dt = eps*/phi^2``,
    ``d log_A/dt = k`` and ``r_gain = (1 + nu) beta lambda_dot``; a failed check raises RuntimeError
    naming it."""
    bound = schedule.bound
    a, b = bound.alpha, bound.beta
    g = gaussian_fields()
    sub = {ALPHA: a, BETA: b}
    var = g.var.xreplace(sub)
    phi = sp.sqrt(sp.factor(var))
    L = sp.log(b) - sp.log(phi)
    log_a = sp.log(phi) - nu * L
    k = sde_gain(schedule, nu)
    gain_x = g.gain_x.xreplace(sub)
    eta = sp.Symbol("eta_X", real=True)
    eps = nu * bound.eps_star
    drift = (bound.alpha_dot - eps / a) * (X - b * eta) / a + bound.beta_dot * eta  # eta_Z = (x - beta eta_X)/alpha
    r_gain = sp.simplify(sp.diff(drift, eta))
    checks = {
        "phi^2 = alpha^2 + beta^2 d": phi**2 - (a**2 + b**2 * D),
        "dL/dt = eps*/phi^2": sp.diff(L, t) - bound.eps_star / var,
        "d log_A/dt = k (the field-gain drift)": sp.diff(log_a, t) - k,
        "r_gain = (1 + nu) beta lambda_dot": r_gain - (1 + nu) * b * bound.lam_dot,
    }
    for name, residual in checks.items():
        if not _vanishes(residual):
            raise RuntimeError(f"SDE frame derivation failed its check {name!r} on schedule {schedule.name} (nu = {nu})")
    return {"phi": phi, "L": L, "log_A": log_a, "gain_x": gain_x, "r_gain": r_gain}


def transition(kernels: dict[str, sp.Expr], nu: object, order: int = 3) -> dict[str, sp.Expr]:
    """The transition over ``[T0, T1]`` as sympy expressions in :data:`T0`, :data:`T1` and ``D``:
    ``M``, ``V`` and ``W0 .. W{order-1}`` (``W_j`` an unevaluated ``Integral`` over :data:`S`), from the
    single-time ``kernels`` of :func:`derive_sde_kernels` (module docstring)."""
    nu_v = check_nu(nu)
    at = lambda name, when: kernels[name].xreplace({t: when})  # noqa: E731
    out = {
        "M": sp.exp(at("log_A", T1) - at("log_A", T0)),
        "V": at("phi", T1) ** 2 * (1 - sp.exp(-2 * nu_v * (at("L", T1) - at("L", T0)))),
    }
    for j in range(order):
        out[f"W{j}"] = sp.Integral(sp.exp(at("log_A", T1) - at("log_A", S)) * (S - T0) ** j, (S, T0, T1))
    return out
