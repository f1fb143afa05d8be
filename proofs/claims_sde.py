"""Claims C16a-C16b: the covariance-aware SDE frame (MATH.md C16, beyond the paper).

Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data. Per eigendirection (variance d) of
Gaussian data the Gaussian part of ``dX = (b + eps s) dt + sqrt(2 eps) dW``, ``eps = nu eps*``, is
``dy = k y dt + sqrt(2 eps) dW`` with ``k = (alpha_dot - eps/alpha) g_Z + beta_dot g_X`` from the
derived field gains (:func:`lazysi.symbolic.sde_frame.sde_gain`). The transition
(:func:`lazysi.symbolic.sde_frame.transition`: ``M``, ``V``, residual weights ``W_j``) is built from
single-time kernels; these claims check it against that SDE, independently of how it was found:

* C16a, symbolic: ``M, V, W_j`` solve the moment ODEs ``dM/dt1 = k M``, ``dV/dt1 = 2 k V + 2 eps``,
  ``dW_j/dt1 = k W_j + (t1 - t0)^j`` with ``M = 1, V = W_j = 0`` at ``t1 = t0`` (sympy reduces every
  residual to 0) on the point-mass and linear schedules for nu in {1/2, 1, 2}; numeric: the
  same expressions in mpmath against an mpmath Taylor-series ODE integration at ``ctx.digits``.
* C16b, symbolic: a model's drift minus the Gaussian drift is ``(1 + nu) beta lambda_dot
  (eta_X - eta_X^G)`` for generic ``alpha(t), beta(t)`` and nu (the residual the sampler uses), and
  ``V -> phi1^2`` from a point-mass base; numeric: the generated float64 torch kernels of
  :mod:`lazysi.numeric.sampling.frame_sde` (transition and tanh-sinh weights, steps from the point mass at
  t = 0 and into t = 1 included) against those mpmath references.
"""
from __future__ import annotations

import random

import mpmath
import sympy as sp

from lazysi.symbolic.cache import reduced
from lazysi.symbolic.families import family
from lazysi.symbolic.fields import D
from lazysi.symbolic.schedule import Schedule, t
from lazysi.symbolic.sde_frame import T0, T1, derive_sde_kernels, sde_gain, transition

from .registry import Claim, Context, NumericOutcome, SymbolicOutcome, register

ORDER = 3  # residual weights W_0 .. W_2 (the solver's orders 1-3)


def _schedules() -> list[tuple[str, Schedule]]:
    return [("point-mass(sigma=1/2)", family("point-mass", sigma=sp.Rational(1, 2))), ("linear", family("linear"))]


def _cases(ctx: Context) -> list[tuple[str, Schedule, sp.Expr]]:
    nus = [sp.Integer(1)] if ctx.quick else [sp.Rational(1, 2), sp.Integer(1), sp.Integer(2)]
    return [(name, sch, nu) for name, sch in _schedules() for nu in nus]


# ------------------------------------------------------------------------------------ C16a
def _c16a_symbolic(ctx: Context) -> SymbolicOutcome:
    bad, done = [], []
    for name, sch, nu in _cases(ctx):
        tr = transition(derive_sde_kernels(sch, nu), nu, ORDER)
        k1 = sde_gain(sch, nu).xreplace({t: T1})
        eps1 = (nu * sch.bound.eps_star).xreplace({t: T1})
        residuals = {
            "dM/dt1 - k M (over M)": sp.diff(tr["M"], T1) / tr["M"] - k1,
            "dV/dt1 - 2kV - 2eps": sp.diff(tr["V"], T1) - 2 * k1 * tr["V"] - 2 * eps1,
            "M(t0) - 1": tr["M"].xreplace({T1: T0}) - 1,
            "V(t0)": tr["V"].xreplace({T1: T0}),
        }
        for j in range(ORDER):
            w = tr[f"W{j}"]
            residuals[f"dW{j}/dt1 - k W{j} - (t1 - t0)^{j}"] = sp.diff(w, T1) - k1 * w - (T1 - T0) ** j
            residuals[f"W{j}(t0)"] = w.xreplace({T1: T0}).doit()
        for what, res in residuals.items():
            r = reduced(res)
            if r != 0:
                bad.append(f"{name}, nu={nu}: {what} = {r}")
        done.append(f"{name} nu={nu}")
    return SymbolicOutcome("failed" if bad else "proved",
                           ("; ".join(bad[:3]) if bad else "all residuals reduce to 0") + f" ({', '.join(done)}; k from the field gains)")


def _rng(ctx: Context, salt: int) -> random.Random:
    return random.Random(1000 * ctx.seed + salt)


def _mp_ode(sch: Schedule, nu: sp.Expr, d: mpmath.mpf, t0: mpmath.mpf, ends: list[mpmath.mpf], digits: int) -> list[list]:
    """``[M, V, W_0, W_1, W_2]`` at each of ``ends`` by mpmath's Taylor-series ODE solver (``t0 > 0``)."""
    k = sp.lambdify([t, D], sde_gain(sch, nu), modules="mpmath")
    eps = sp.lambdify([t], nu * sch.bound.eps_star, modules="mpmath")
    with mpmath.workdps(digits + 10):
        def rhs(s, y):
            kk, e = k(s, d), eps(s)
            return [kk * y[0], 2 * kk * y[1] + 2 * e] + [kk * y[2 + j] + (s - t0) ** j for j in range(ORDER)]

        f = mpmath.odefun(rhs, t0, [mpmath.mpf(1)] + [mpmath.mpf(0)] * (1 + ORDER))
        return [[+v for v in f(e)] for e in ends]


def _mp_transition(tr: dict[str, sp.Expr], d: mpmath.mpf, t0: mpmath.mpf, t1: mpmath.mpf, digits: int) -> list:
    """The symbolic transition in mpmath: ``M, V`` evaluated, ``W_j`` by mpmath quadrature of its integrand."""
    out = []
    with mpmath.workdps(digits + 10):
        for name in ["M", "V"] + [f"W{j}" for j in range(ORDER)]:
            e = tr[name]
            if isinstance(e, sp.Integral):
                (s_sym, lo, hi), = e.limits
                f = sp.lambdify([s_sym, T0, T1, D], e.function, modules="mpmath")
                lo_v = t0 if t0 > 0 else mpmath.mpf(0)
                out.append(mpmath.quad(lambda s: f(s, t0, t1, d), [lo_v, t1]))
            elif name == "M" and t0 == 0:
                out.append(mpmath.mpf(0))  # the point-mass / infinite-eps* start (module doc of sde_frame)
            elif t0 == 0:  # the limit t0 -> 0+: V - V(t0) = O(t0^nu), evaluated at t0 = 10^(-8 digits)
                f = sp.lambdify([T0, T1, D], e, modules="mpmath")
                out.append(f(mpmath.mpf(10) ** (-8 * digits), t1, d))
            else:
                f = sp.lambdify([T0, T1, D], e, modules="mpmath")
                out.append(f(t0, t1, d))
    return out


def _rel(a, b) -> mpmath.mpf:
    return abs(a - b) / max(abs(b), mpmath.mpf(10) ** -300)


def _c16a_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 16)
    worst, used = mpmath.mpf(0), []
    for name, sch, nu in _cases(ctx):
        d = mpmath.mpf(f"{rng.uniform(0.05, 2.0):.4f}")
        t0 = mpmath.mpf("0.2")
        if ctx.quick and not sch.point_mass:
            continue  # quick: the point-mass schedule only (mpmath's ODE solver takes seconds per case)
        ends = [mpmath.mpf("0.5")] if ctx.quick else [mpmath.mpf("0.5"), mpmath.mpf(1)]
        ref = _mp_ode(sch, nu, d, t0, ends, ctx.digits)
        tr = transition(derive_sde_kernels(sch, nu), nu, ORDER)
        for e, r in zip(ends, ref):
            got = _mp_transition(tr, d, t0, e, ctx.digits)
            worst = max(worst, max(_rel(g, x) for g, x in zip(got, r)))
        used.append(f"{name} nu={nu} d={d}")
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"M, V, W_0..2 from t0 = 0.2 to {'0.5' if ctx.quick else '0.5 and 1'} vs mpmath odefun "
                          f"of the moment ODEs: {'; '.join(used)}")


register(Claim("C16a", "SDE frame: per eigendirection the transition M = A(t1)/A(t0), V = phi1^2 (1 - e^(-2 Lambda)) and residual weights "
               "W_j = int A(t1)/A(s) (s - t0)^j ds solve the moment ODEs of dy = k y dt + sqrt(2 nu eps*) dW",
               ("Gaussian data, eigenvalue d", "eps = nu eps*", "point-mass and linear schedules"), _c16a_symbolic, _c16a_numeric,
               ("M", "V", "W_j")))


# ------------------------------------------------------------------------------------ C16b
def _c16b_symbolic(ctx: Context) -> SymbolicOutcome:
    a = sp.Function("alpha", positive=True)(t)
    b = sp.Function("beta", positive=True)(t)
    nu = sp.Symbol("nu", nonnegative=True)
    x, ex, eg = sp.symbols("x eta_X eta_X_G", real=True)
    gen = Schedule("generic", a, b)
    eps = nu * gen.eps_star

    def drift(eta_x):  # (alpha_dot - eps/alpha) eta_Z + beta_dot eta_X, eta_Z = (x - beta eta_X)/alpha
        return (gen.alpha_dot - eps / a) * (x - b * eta_x) / a + gen.beta_dot * eta_x

    res = reduced(drift(ex) - drift(eg) - (1 + nu) * b * gen.lam_dot * (ex - eg))
    # from the point mass: Lambda = nu (L(t1) - L(t0)) -> oo, so V -> phi1^2
    sch = family("point-mass", sigma=sp.Rational(1, 2))
    ker = derive_sde_kernels(sch, 1)
    lim_l = sp.limit(ker["L"], t, 0, "+")
    lim_phi = sp.limit(ker["phi"], t, 0, "+")
    ok = res == 0 and lim_l == -sp.oo and lim_phi == 0
    return SymbolicOutcome("proved" if ok else "failed",
                           f"model drift - Gaussian drift - (1 + nu) beta lambda_dot (eta_X - eta_X^G) = {res} (generic alpha, beta, nu); "
                           f"point mass: L(0+) = {lim_l}, phi(0+) = {lim_phi}, so V = phi1^2 and M y0 = 0 from the base")


def _c16b_numeric(ctx: Context) -> NumericOutcome:
    import torch

    from lazysi.numeric.sampling.frame_sde import sde_kernels_for
    from lazysi.numeric.fields.schedule import NumericSchedule

    rng = _rng(ctx, 17)
    worst, used = 0.0, []
    steps = [(0.0, 0.3), (0.3, 0.7), (0.7, 1.0)] if ctx.quick else [(0.0, 0.3), (0.0, 1.0), (0.3, 0.31), (0.3, 0.7), (0.7, 1.0)]
    for name, sch, nu in _cases(ctx):
        kern = sde_kernels_for(NumericSchedule(sch), float(nu))
        tr = transition(derive_sde_kernels(sch, nu), nu, ORDER)
        ds = [f"{rng.uniform(0.05, 2.0):.4f}", "0.0001"]
        for dstr in ds:
            dt = torch.tensor([float(dstr)], dtype=torch.float64)
            for t0, t1 in steps:
                m, v = kern.transition(t0, t1, dt)
                w = kern.weights(t0, t1, dt, ORDER)
                got = [float(m[0]), float(v[0])] + [float(w[j, 0]) for j in range(ORDER)]
                ref = _mp_transition(tr, mpmath.mpf(dstr), mpmath.mpf(t0), mpmath.mpf(t1), ctx.digits)
                for g, r in zip(got, ref):
                    err = float(abs(mpmath.mpf(g) - r) / max(abs(r), mpmath.mpf(10) ** -300)) if r != 0 else abs(g)
                    worst = max(worst, err)
        used.append(f"{name} nu={nu}")
    return NumericOutcome(worst, 1e-11, ctx.digits,
                          f"float64 torch M, V, W_0..2 vs mpmath ({ctx.digits} digits), steps {steps}, "
                          f"d in (random, 1e-4): {'; '.join(used)}")


register(Claim("C16b", "SDE frame in float64: the residual is (1 + nu) beta lambda_dot (eta_X - eta_X^G); the generated transition kernels "
               "and tanh-sinh residual weights match mpmath, from the point-mass base (M = 0, V = phi1^2) to the data end",
               ("Gaussian approximation N(m, Sigma)", "eps = nu eps*", "point-mass and linear schedules"), _c16b_symbolic, _c16b_numeric,
               ("r_gain", "M", "V", "W_j")))
