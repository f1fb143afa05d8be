"""The generic claims instantiated for one schedule or one conversion (``lazysi verify --schedule``,
``lazysi verify --convert``).

Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data; a conversion maps A (time t) to
B (time s). For a user's schedule S (validated first) the claims are

* ``S:C1`` field identities on S: consistency ``alpha eta_Z + beta eta_X = x`` and the continuity
  equation of the Gaussian marginal with S's ``alpha(t), beta(t)`` substituted (sympy); numerically
  Tweedie's score against ``mpmath.diff`` of the mixture log-density and the continuity residual;
* ``S:C2`` optimal diffusion on S: ``eps* = alpha^2 lambda_dot`` and ``b = (beta_dot/beta) x + eps* s``;
* ``S:C3`` the base: ``eps* ~ beta_dot/beta -> oo`` (standard) or finite (point mass), by limits;
* ``S:C4``, ``S:C5``, ``S:C6`` conversion from the linear schedule to S (or A -> B for
  ``--convert``) with the derived tau, c, tau', c'/c, c^2 tau' (where the conversion exists);
* ``S:C7`` Gaussian fields on S against quadrature of the joint density;
* ``S:C13`` exactness, where it applies: S is lazy for N(0, sigma^2) with sigma = its data scale
  (ODE: ``b = 0``; or SDE: ``b + eps* s = 0`` with eps* constant), so Euler / Euler-Maruyama is exact.

The symbolic halves reduce each residual with the same strategies as the built-in claims; the
numeric halves evaluate at ``ctx.digits`` (>= 30) digits with the oracles of :mod:`lazysi.proofs.oracles`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import mpmath
import sympy as sp

from lazysi.symbolic.conversion import TAU, Conversion, ConversionError, s as S_SYM
from lazysi.symbolic.fields import ALPHA, BETA, X, gaussian_fields
from lazysi.symbolic.lazy import gaussian_drift
from lazysi.symbolic.limits import endpoint_limit
from lazysi.symbolic.schedule import Schedule, t

from .claims_conversion import c4_residuals, c5_residuals, c6_residuals, numeric_zero, reduces_to_zero
from .oracles import MpSchedule, mp_mixture_fields, mp_mixture_log_density
from .registry import Claim, Context, NumericOutcome, SymbolicOutcome

__all__ = ["Instances", "schedule_claims", "conversion_claims"]

_MIX = ([mpmath.mpf("0.3"), mpmath.mpf("0.7")], [[mpmath.mpf(-1)], [mpmath.mpf("1.5")]], [[mpmath.mpf("0.2")], [mpmath.mpf("0.5")]])


@dataclass(frozen=True)
class Instances:
    """The instantiated claims and, for each generic claim that does not apply, why."""

    claims: tuple[Claim, ...]
    skipped: tuple[tuple[str, str], ...]


def _reduces(expr: sp.Expr, var: sp.Symbol = t) -> str:
    """``proved`` / ``numeric-only`` / ``failed`` for "expr = 0 on (0, 1)"."""
    expr = sp.sympify(expr)
    if reduces_to_zero(expr) is True:
        return "proved"
    f = sp.lambdify(var, expr, modules="mpmath")
    with mpmath.workdps(40):
        for tv in ("0.13", "0.37", "0.5", "0.71", "0.93"):
            v = f(mpmath.mpf(tv))
            if abs(v) > mpmath.mpf(10) ** -30:
                return "failed"
    return "numeric-only"


def _outcome(parts: dict[str, sp.Expr], var: sp.Symbol = t) -> SymbolicOutcome:
    statuses = {k: _reduces(v, var) for k, v in parts.items()}
    detail = "; ".join(f"{k}: {st}" for k, st in statuses.items())
    if any(st == "failed" for st in statuses.values()):
        return SymbolicOutcome("failed", detail)
    return SymbolicOutcome("numeric-only" if any(st != "proved" for st in statuses.values()) else "proved", detail)


def _points(ctx: Context, seed: int) -> list[tuple[mpmath.mpf, mpmath.mpf]]:
    rng = random.Random(seed)
    return [(mpmath.mpf(rng.uniform(0.05, 0.95)), mpmath.mpf(rng.uniform(-2, 2))) for _ in range(2 if ctx.quick else 4)]


def _rel(a, b):
    return abs(a - b) / max(mpmath.mpf(1), abs(b))


def _c1(label: str, sch: Schedule) -> Claim:
    g = gaussian_fields()
    sub = {ALPHA: sch.alpha, BETA: sch.beta}

    def symbolic(ctx: Context) -> SymbolicOutcome:
        p = sp.exp(g.log_density.xreplace(sub))
        b = sch.alpha_dot * g.eta_z.xreplace(sub) + sch.beta_dot * g.eta_x.xreplace(sub)
        return _outcome({
            "consistency": (ALPHA * g.eta_z + BETA * g.eta_x - X).xreplace(sub),
            "continuity": sp.cancel(sp.together(sp.expand((sp.diff(p, t) + sp.diff(b * p, X)) / p))).xreplace({X: sp.Rational(3, 10)}),
        })

    def numeric(ctx: Context) -> NumericOutcome:
        ms, worst = MpSchedule(sch), mpmath.mpf(0)
        with mpmath.workdps(ctx.digits + 10):
            for tv, xv in _points(ctx, ctx.seed + 101):
                a, b = ms("alpha", tv), ms("beta", tv)
                ex, ez = mp_mixture_fields(a, b, [xv], *_MIX)
                worst = max(worst, _rel(a * ez[0] + b * ex[0], xv))

                def logp(tt, xx):
                    return mp_mixture_log_density(ms("alpha", tt), ms("beta", tt), [xx], *_MIX)

                worst = max(worst, _rel(-ez[0] / a, mpmath.diff(lambda xx: logp(tv, xx), xv)))

                def flux(xx):
                    fx, fz = mp_mixture_fields(a, b, [xx], *_MIX)
                    return (ms("alpha_dot", tv) * fz[0] + ms("beta_dot", tv) * fx[0]) * mpmath.exp(logp(tv, xx))

                worst = max(worst, _rel(mpmath.diff(lambda tt: mpmath.exp(logp(tt, xv)), tv) + mpmath.diff(flux, xv), 0))
        return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits, "bimodal mixture: consistency, Tweedie vs mpmath.diff, continuity")

    return Claim(f"{label}:C1", f"field identities on {label}: consistency, Tweedie score, velocity transports p_t", (str(sch),), symbolic, numeric)


def _c2(label: str, sch: Schedule) -> Claim:
    ex = sp.Symbol("eta_X", real=True)

    def symbolic(ctx: Context) -> SymbolicOutcome:
        eta_z = (X - sch.beta * ex) / sch.alpha
        b = sch.alpha_dot * eta_z + sch.beta_dot * ex
        return _outcome({
            "eps* = alpha^2 lambda_dot": sch.eps_star - sch.alpha**2 * sch.lam_dot,
            "b = (beta_dot/beta) x + eps* s": sp.expand(b - (sch.beta_dot / sch.beta * X - sch.eps_star * eta_z / sch.alpha)).xreplace({X: sp.Rational(7, 10), ex: sp.Rational(-1, 3)}),
        })

    def numeric(ctx: Context) -> NumericOutcome:
        ms, worst = MpSchedule(sch), mpmath.mpf(0)
        with mpmath.workdps(ctx.digits + 10):
            for tv, xv in _points(ctx, ctx.seed + 102):
                a, be, ad, bd, es = (ms(k, tv) for k in ("alpha", "beta", "alpha_dot", "beta_dot", "eps_star"))
                fx, fz = mp_mixture_fields(a, be, [xv], *_MIX)
                worst = max(worst, _rel(ad * fz[0] + bd * fx[0], bd / be * xv - es * fz[0] / a))
                lam = sp.lambdify(t, sch.lam, modules="mpmath")
                worst = max(worst, _rel(es, a**2 * mpmath.diff(lam, tv)))
        return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits, "eps* vs alpha^2 d/dt lambda (mpmath.diff); b decomposition on a mixture")

    return Claim(f"{label}:C2", f"optimal diffusion on {label}: eps* = alpha^2 lambda_dot, b = (beta_dot/beta) x + eps* s", (str(sch),), symbolic, numeric)


def _c3(label: str, sch: Schedule) -> Claim:
    def symbolic(ctx: Context) -> SymbolicOutcome:
        lim = endpoint_limit(sch.eps_star, 0)
        if sch.point_mass:
            ok = lim.is_finite is True
            return SymbolicOutcome("proved" if ok else "failed", f"point-mass base: eps*(0+) = {lim} (finite)")
        ratio = endpoint_limit(sch.eps_star / (sch.beta_dot / sch.beta), 0)
        ok = lim == sp.oo and ratio == 1
        return SymbolicOutcome("proved" if ok else "failed", f"standard base: eps*(0+) = {lim}, eps*/(beta_dot/beta) -> {ratio}")

    def numeric(ctx: Context) -> NumericOutcome:
        ms = MpSchedule(sch)
        with mpmath.workdps(ctx.digits + 20):
            tiny = mpmath.mpf(10) ** (-(ctx.digits + 5))
            if sch.point_mass:
                # eps* approaches its finite limit at a schedule-dependent rate (e.g. sqrt(t)):
                # the gap must shrink from t = 1e-(digits/2) to t = 1e-(digits+5) and be small there
                lim = mpmath.mpf(sp.N(endpoint_limit(sch.eps_star, 0), ctx.digits + 20))
                near = mpmath.mpf(10) ** (-(ctx.digits // 2))
                gap_tiny, gap_near = _rel(ms("eps_star", tiny), lim), _rel(ms("eps_star", near), lim)
                err = gap_tiny if gap_tiny <= gap_near else mpmath.inf
                tol = 1e-6
                where = f"|eps* - lim| / max(1, |lim|) = {mpmath.nstr(gap_tiny, 3)} at t = 1e-{ctx.digits + 5} (shrinking from {mpmath.nstr(gap_near, 3)} at 1e-{ctx.digits // 2})"
            else:
                err = abs(ms("eps_star", tiny) * ms("beta", tiny) / ms("beta_dot", tiny) - 1)
                tol = 1e-3
                where = f"eps* beta / beta_dot - 1 at t = 1e-{ctx.digits + 5}"
        return NumericOutcome(float(err), tol, ctx.digits, where)

    kind = "point mass: eps* finite at 0" if sch.point_mass else "standard: eps* ~ beta_dot/beta -> oo at 0"
    return Claim(f"{label}:C3", f"base of {label} ({kind})", (str(sch),), symbolic, numeric)


def _conversion_claims(label: str, conv: Conversion) -> list[Claim]:
    pair = f"{conv.A.name}->{conv.B.name}"

    def sym(residuals_of, name):
        def symbolic(ctx: Context) -> SymbolicOutcome:
            parts, status = [], "proved"
            for i, r in enumerate(residuals_of(conv)):
                if reduces_to_zero(r) is True:
                    parts.append(f"{i}: 0")
                elif numeric_zero(r, max(ctx.digits, 30)):
                    parts.append(f"{i}: numerically 0")
                    status = "numeric-only"
                else:
                    return SymbolicOutcome("failed", f"{name} residual {i} for {pair} is not 0: {sp.sstr(r)[:200]}")
            return SymbolicOutcome(status, f"{pair}: " + ", ".join(parts))

        return symbolic

    ma, mb = MpSchedule(conv.A), MpSchedule(conv.B)
    tau_sym = sp.Symbol("_tau", positive=True)
    g = {n: sp.lambdify([S_SYM, tau_sym], getattr(conv, n).xreplace({TAU(S_SYM): tau_sym}), modules="mpmath")
         for n in ("tau_dot", "c", "c_dot_over_c", "eps_scale")}
    tau_f = sp.lambdify([S_SYM], conv.tau, modules="mpmath") if conv.closed_form else (lambda sv: conv.mp_tau(sv, 40))

    def drift_gap(ctx: Context, nu) -> float:
        worst = mpmath.mpf(0)
        with mpmath.workdps(ctx.digits + 10):
            for sv, xv in _points(ctx, ctx.seed + 104):
                tau = tau_f(sv)
                c, td, cdc, scale = (g[n](sv, tau) for n in ("c", "tau_dot", "c_dot_over_c", "eps_scale"))
                y = xv / c
                ax, az = mp_mixture_fields(ma("alpha", tau), ma("beta", tau), [y], *_MIX)
                eps_a = nu * ma("eps_star", tau)
                drift_a = (ma("alpha_dot", tau) - eps_a / ma("alpha", tau)) * az[0] + ma("beta_dot", tau) * ax[0]
                bx, bz = mp_mixture_fields(mb("alpha", sv), mb("beta", sv), [xv], *_MIX)
                eps_b = scale * eps_a
                drift_b = (mb("alpha_dot", sv) - eps_b / mb("alpha", sv)) * bz[0] + mb("beta_dot", sv) * bx[0]
                worst = max(worst, _rel(drift_b, cdc * xv + c * td * drift_a))
                if nu:
                    worst = max(worst, _rel(eps_b, nu * mb("eps_star", sv)))  # C6: eps* maps to eps*
        return float(worst)

    def num(nu, what):
        def numeric(ctx: Context) -> NumericOutcome:
            return NumericOutcome(drift_gap(ctx, nu), 10.0 ** (8 - ctx.digits), ctx.digits, f"{pair}, bimodal mixture: {what}")

        return numeric

    return [
        Claim(f"{label}:C4", f"conversion {pair} (ODE): I_B = c I_A(tau), b_B = (c'/c) x + c tau' b_A(tau, x/c)", (pair,),
              sym(c4_residuals, "C4"), num(0, "b_B(s, x) vs (c'/c) x + c tau' b_A(tau, x/c)")),
        Claim(f"{label}:C5", f"path conversion {pair} (SDE): eps_B = c^2 tau' eps_A(tau) gives B's SDE drift", (pair,),
              sym(c5_residuals, "C5"), num(1, "SDE drift with eps_B = c^2 tau' eps_A(tau), eps_A = eps*_A")),
        Claim(f"{label}:C6", f"eps* invariance {pair}: eps*_B = c^2 tau' eps*_A(tau)", (pair,),
              sym(c6_residuals, "C6"), num(1, "c^2 tau' eps*_A(tau) vs eps*_B")),
    ]


def _c7(label: str, sch: Schedule) -> Claim:
    from .claims_fields import c7_symbolic

    def numeric(ctx: Context) -> NumericOutcome:
        ms, worst = MpSchedule(sch), mpmath.mpf(0)
        w, means, var = _MIX
        with mpmath.workdps(ctx.digits + 5):
            for tv, xv in _points(ctx, ctx.seed + 107)[:2]:
                a, b = ms("alpha", tv), ms("beta", tv)
                ex, ez = mp_mixture_fields(a, b, [xv], w, means, var)

                def joint(u):
                    prior = mpmath.fsum(wk * mpmath.npdf(u, mk[0], mpmath.sqrt(vk[0])) for wk, mk, vk in zip(w, means, var))
                    return prior * mpmath.npdf(xv, b * u, a)

                # pieces between the prior's and the likelihood's (x/beta +- k alpha/beta) scale points
                cuts = {mk[0] + j * mpmath.sqrt(vk[0]) for mk, vk in zip(means, var) for j in (-14, -7, 0, 7, 14)}
                cuts |= {xv / b + j * a / b for j in (-14, -7, -3, 0, 3, 7, 14)}
                lo, hi = min(m[0] for m in means) - 14 * 2, max(m[0] for m in means) + 14 * 2
                cuts = sorted(c for c in cuts if lo <= c <= hi)
                z = mpmath.quad(joint, cuts, method="gauss-legendre")
                mean_x = mpmath.quad(lambda u: u * joint(u), cuts, method="gauss-legendre") / z
                worst = max(worst, _rel(ex[0], mean_x), _rel(ez[0], (xv - b * mean_x) / a))
        return NumericOutcome(float(worst), 10.0 ** (8 - ctx.digits), ctx.digits, "oracle fields vs mpmath.quad of the joint density")

    return Claim(f"{label}:C7", f"Gaussian data on {label}: fields affine in x, mixture fields = posterior-weighted sums", (str(sch),), c7_symbolic, numeric)


def _c13(label: str, sch: Schedule) -> tuple[Claim | None, str]:
    sigma = sch.data_scale
    ode = gaussian_drift(sch, sp.Integer(0), sigma**2)
    sde = gaussian_drift(sch, sch.eps_star, sigma**2)
    probe = {X: sp.Rational(7, 10)}
    candidates = []
    if _reduces(sp.together(ode).xreplace(probe)) != "failed":
        candidates.append(("ODE", sp.Integer(0), "Euler on the probability-flow ODE"))
    if sch.point_mass and _reduces(sp.together(sde).xreplace(probe)) != "failed" and not sp.simplify(sch.eps_star).has(t):
        candidates.append(("SDE", sch.eps_star, "Euler-Maruyama on the eps*-SDE (constant eps*)"))
    if not candidates:
        return None, f"{label} is not lazy for N(0, sigma^2) with sigma = its data scale {sigma} (b + eps s is not 0)"
    kind, eps, what = candidates[0]
    drift = ode if kind == "ODE" else sde

    def symbolic(ctx: Context) -> SymbolicOutcome:
        return _outcome({f"b + eps s on N(0, {sigma}^2) ({kind})": sp.together(drift).xreplace(probe)})

    def numeric(ctx: Context) -> NumericOutcome:
        ms, worst = MpSchedule(sch), mpmath.mpf(0)
        gauss = ([mpmath.mpf(1)], [[mpmath.mpf(0)]], [[mpmath.mpf(sp.N(sigma**2, ctx.digits + 10))]])
        with mpmath.workdps(ctx.digits + 10):
            for tv, xv in _points(ctx, ctx.seed + 113):
                a = ms("alpha", tv)
                ex, ez = mp_mixture_fields(a, ms("beta", tv), [xv], *gauss)
                e = ms("eps_star", tv) if kind == "SDE" else 0
                worst = max(worst, _rel((ms("alpha_dot", tv) - e / a) * ez[0] + ms("beta_dot", tv) * ex[0], 0))
        return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits, f"|b + eps s| on N(0, {sigma}^2): zero drift, so {what} is exact")

    return Claim(f"{label}:C13", f"exactness on {label}: {what} is exact on N(0, {sigma}^2) for any number of steps", (str(sch),), symbolic, numeric), ""


def schedule_claims(schedule: Schedule, label: str = "S") -> Instances:
    """C1, C2, C3, C4-C6 (linear -> schedule), C7 and, where it applies, C13 for ``schedule``.
    Raises :class:`~lazysi.symbolic.schedule.ScheduleError` naming every violated validity condition."""
    schedule.require_valid()
    sch = schedule.bound
    out = [_c1(label, sch), _c2(label, sch), _c3(label, sch)]
    skipped = []
    from lazysi.symbolic.families import family

    try:
        out += _conversion_claims(label, Conversion(family("linear"), schedule))
    except ConversionError as exc:
        skipped.append(("C4-C6", str(exc)))
    out.append(_c7(label, sch))
    c13, why = _c13(label, sch)
    if c13 is not None:
        out.append(c13)
    else:
        skipped.append(("C13", why))
    return Instances(tuple(out), tuple(skipped))


def conversion_claims(A: Schedule, B: Schedule, label: str = "A->B") -> Instances:
    """C4, C5, C6 for the conversion ``A -> B`` (both validated; raises ScheduleError/ConversionError)."""
    for sch in (A, B):
        sch.require_valid()
    return Instances(tuple(_conversion_claims(label, Conversion(A, B))), ())
