"""Claims C8-C15: lazy schedules, the point-mass SDE, exactness, means, anisotropy.

Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data. Symbolic halves use
:mod:`lazysi.symbolic.lazy` (sympy *solves* for the lazy schedules) on generic ``alpha(t), beta(t)``;
numeric halves evaluate drifts from the mpmath field oracle (lambdified sympy derivation) at
``ctx.digits`` digits on fixed-seed parameters and, for C13, one float64 torch step.
"""
from __future__ import annotations

import random

import mpmath
import sympy as sp

from lazysi.symbolic.cache import reduced
from lazysi.symbolic.families import family
from lazysi.symbolic.fields import X
from lazysi.symbolic.lazy import B, MU, NU, SIGMA, derive_lazy, gaussian_drift, generic_schedule, lazy_condition, point_mass_sde
from lazysi.symbolic.schedule import Schedule, t

from .claims_fields import MpSchedule, mp_fields, random_mixture, rel
from .registry import Claim, Context, NumericOutcome, SymbolicOutcome, register


def _rng(ctx: Context, salt: int) -> random.Random:
    return random.Random(1000 * ctx.seed + salt)


def _times(ctx: Context, rng: random.Random, n: int = 4) -> list[mpmath.mpf]:
    return [mpmath.mpf(rng.uniform(0.02, 0.98)) for _ in range(2 if ctx.quick else n)]


def _drift(ms: MpSchedule, tv, xv, eps, mixture) -> mpmath.mpf:
    """``b + eps s = (alpha_dot - eps/alpha) eta_Z + beta_dot eta_X`` from the oracle fields."""
    ex, ez = mp_fields(ms, tv, [xv], mixture)
    return (ms("alpha_dot", tv) - eps / ms("alpha", tv)) * ez[0] + ms("beta_dot", tv) * ex[0]


def _gauss(sigma, mu=0) -> tuple[list, list, list]:
    """N(mu, sigma^2) as a one-component mixture; pass decimal strings so that the value equals
    the exact rational the schedule was derived with."""
    return [mpmath.mpf(1)], [[mpmath.mpf(mu)]], [[mpmath.mpf(sigma) ** 2]]


def _dec(rng: random.Random, lo: float, hi: float) -> str:
    """A random decimal string (4 places): exact both as a sympy Rational and as an mpf."""
    return f"{rng.uniform(lo, hi):.4f}"


def _lazy_residual(ctx: Context, schedule: Schedule, sigma, eps_of_t, salt: int) -> mpmath.mpf:
    """Worst |b + eps s| / max(1, |x|) on N(0, sigma^2) data for ``eps = eps_of_t(ms, t)``."""
    rng = _rng(ctx, salt)
    ms = MpSchedule(schedule)
    worst = mpmath.mpf(0)
    with mpmath.workdps(ctx.digits + 10):
        for tv in _times(ctx, rng):
            xv = mpmath.mpf(rng.uniform(-3, 3))
            worst = max(worst, rel(_drift(ms, tv, xv, eps_of_t(ms, tv), _gauss(sigma)), 0))
    return worst


# ------------------------------------------------------------------------------------ C8
def _c8_symbolic(ctx: Context) -> SymbolicOutcome:
    eps_lazy, residual = lazy_condition()
    return SymbolicOutcome("proved" if residual == 0 else "failed", f"solve(b + eps s = 0, eps) = {eps_lazy}; minus v_dot/2: {residual}")


def _c8_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 8)
    sigma = mpmath.mpf(rng.uniform(0.3, 2.0))
    sch = family("sd3")  # any schedule: eps = v_dot/2 makes it lazy

    def eps(ms, tv):
        return ms("alpha", tv) * ms("alpha_dot", tv) + sigma**2 * ms("beta", tv) * ms("beta_dot", tv)

    worst = _lazy_residual(ctx, sch, sigma, eps, 8)
    with mpmath.workdps(ctx.digits + 10):
        ms = MpSchedule(sch)
        off = abs(_drift(ms, mpmath.mpf("0.5"), mpmath.mpf(1), eps(ms, mpmath.mpf("0.5")) + mpmath.mpf("0.1"), _gauss(sigma)))
    ok = off > mpmath.mpf("1e-3")
    return NumericOutcome(float(worst) if ok else float("inf"), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"sd3 schedule, sigma={float(sigma):.4f}: |b + eps s| with eps = v_dot/2; eps + 0.1 gives drift {float(off):.3g} != 0")


register(Claim("C8", "lazy condition: for X ~ N(0, sigma^2 I), b + eps s = 0 identically iff eps = v_dot/2, v = alpha^2 + sigma^2 beta^2",
               ("generic schedule", "isotropic Gaussian data"), _c8_symbolic, _c8_numeric, ("eps",)))


# ------------------------------------------------------------------------------------ C9-C11
def _c9_symbolic(ctx: Context) -> SymbolicOutcome:
    der = derive_lazy("zero", 1)
    res = reduced(der.alpha_sq + SIGMA**2 * B**2 - 1)
    vp = family("vp")
    same = reduced(der.schedule.alpha - vp.alpha) == 0 and reduced(der.schedule.beta - vp.beta) == 0
    ok = res == 0 and same and reduced(der.schedule.data_scale - SIGMA) == 0 and not der.point_mass
    return SymbolicOutcome("proved" if ok else "failed",
                           f"ODE {der.ode}, solution {der.general}, {der.boundary}: alpha^2 = {der.alpha_sq}; alpha^2 + sigma^2 beta^2 - 1 = {res}; "
                           f"beta_1 = 1/sigma; schedule = vp family: {same}")


def _c9_numeric(ctx: Context) -> NumericOutcome:
    sigma = _dec(_rng(ctx, 9), 0.3, 2.0)
    sch = derive_lazy("zero", sigma).schedule
    worst = _lazy_residual(ctx, sch, sigma, lambda ms, tv: mpmath.mpf(0), 9)
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits, f"derived ODE schedule, sigma={sigma}: |b| on N(0, sigma^2)")


register(Claim("C9", "deterministic lazy => variance preserving: eps = 0 gives alpha^2 + sigma^2 beta^2 = 1 (beta_1 = 1/sigma; sigma = 1: cos/sin)",
               ("N(0, sigma^2 I) data", "Gaussian base alpha_0 = 1"), _c9_symbolic, _c9_numeric, ("alpha", "beta")))


def _c10_symbolic(ctx: Context) -> SymbolicOutcome:
    der = derive_lazy("optimal", 1, nu=1)
    a2 = der.alpha_sq.subs(NU, 1)
    res = reduced(a2 - SIGMA**2 * B * (1 - B))
    invariant = reduced(a2 / B + SIGMA**2 * B)  # alpha^2/beta + sigma^2 beta: constant
    sch = der.schedule.bound
    eps_t = reduced(sch.eps_star)
    pm = family("point-mass", sigma=1).bound
    same = reduced(sch.alpha**2 - pm.alpha**2) == 0 and sch.beta == pm.beta
    ok = res == 0 and not invariant.has(B) and der.point_mass and same and eps_t == sp.Rational(1, 2)
    return SymbolicOutcome("proved" if ok else "failed",
                           f"alpha^2 = {a2}; minus sigma^2 beta(1-beta): {res}; alpha^2/beta + sigma^2 beta = {invariant}; point mass {der.point_mass}; "
                           f"beta = t: eps* = {eps_t} (sigma = 1), equals the point-mass family: {same}")


def _c10_numeric(ctx: Context) -> NumericOutcome:
    sigma = _dec(_rng(ctx, 10), 0.3, 2.0)
    sch = derive_lazy("optimal", sigma, nu=1).schedule
    worst = _lazy_residual(ctx, sch, sigma, lambda ms, tv: ms("eps_star", tv), 10)
    with mpmath.workdps(ctx.digits + 10):
        ms = MpSchedule(sch)
        worst = max(worst, rel(ms("eps_star", mpmath.mpf("0.3")), mpmath.mpf(sigma) ** 2 / 2))
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits, f"derived eps*-schedule, sigma={sigma}: |b + eps* s|, eps* = sigma^2/2")


register(Claim("C10", "optimal lazy => point mass: eps = eps* gives alpha^2 = sigma^2 beta (1 - beta) (alpha_0 = 0); beta = t: eps* = sigma^2/2",
               ("N(0, sigma^2 I) data", "beta_1 = 1"), _c10_symbolic, _c10_numeric, ("alpha", "eps_star")))


def _c11_symbolic(ctx: Context) -> SymbolicOutcome:
    der = derive_lazy("optimal", 1)  # nu symbolic (positive)
    res = reduced(der.alpha_sq - SIGMA**2 * (B ** (2 * NU / (1 + NU)) - B**2))
    at0 = sp.limit(der.alpha_sq, B, 0, dir="+")
    ok = res == 0 and at0 == 0 and der.point_mass
    return SymbolicOutcome("proved" if ok else "failed",
                           f"{der.ode} -> {der.general}; {der.boundary}: alpha^2 = {der.alpha_sq}; minus sigma^2 (b^(2nu/(1+nu)) - b^2): {res}; alpha^2 -> {at0} at b = 0 for all nu > 0")


def _c11_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 11)
    worst, used = mpmath.mpf(0), []
    for k in range(1 if ctx.quick else 2):
        sigma, nu = _dec(rng, 0.3, 2.0), _dec(rng, 0.2, 4.0)
        used.append((sigma, nu))
        sch = derive_lazy("optimal", sigma, nu=nu).schedule
        worst = max(worst, _lazy_residual(ctx, sch, sigma, lambda ms, tv: mpmath.mpf(nu) * ms("eps_star", tv), 110 + k))
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits, f"(sigma, nu) = {used}: |b + nu eps* s| on the derived schedules")


register(Claim("C11", "nu-family: eps = nu eps* gives alpha^2 = sigma^2 (beta^(2nu/(1+nu)) - beta^2), a point-mass schedule for every nu > 0",
               ("N(0, sigma^2 I) data", "beta_1 = 1", "nu > 0"), _c11_symbolic, _c11_numeric, ("alpha",)))


# ------------------------------------------------------------------------------------ C12
def _c12_symbolic(ctx: Context) -> SymbolicOutcome:
    beta = sp.Function("beta", positive=True)(t)
    sch = Schedule("point-mass-generic", SIGMA * sp.sqrt(beta * (1 - beta)), beta)
    out = point_mass_sde(sch)
    bd = sp.diff(beta, t)
    r1 = reduced(out["drift_gain"] - bd / (1 - beta))
    r2 = reduced(out["eps_star"] - SIGMA**2 * bd / 2)
    ok = r1 == 0 and r2 == 0
    return SymbolicOutcome("proved" if ok else "failed",
                           f"alpha^2 = sigma^2 beta(1-beta), generic beta(t): b + eps* s = kappa (eta_X - x) with kappa - beta_dot/(1-beta) = {r1}; "
                           f"2 eps* - sigma^2 beta_dot = {2 * r2} (noise sigma sqrt(beta_dot))")


def _c12_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 12)
    sigma = _dec(rng, 0.3, 2.0)
    mixture = random_mixture(ctx.seed + 12, k=2, dim=1)  # non-Gaussian data: the identity is for any data
    worst = mpmath.mpf(0)
    for beta in ("t", "t**2"):
        sch = Schedule.from_strings(f"s*sqrt(({beta})*(1-({beta})))", beta, {"s": sigma})
        ms = MpSchedule(sch)
        with mpmath.workdps(ctx.digits + 10):
            for tv in _times(ctx, rng, 3):
                xv = mpmath.mpf(rng.uniform(-2, 2))
                ex, _ = mp_fields(ms, tv, [xv], mixture)
                lhs = _drift(ms, tv, xv, ms("eps_star", tv), mixture)
                rhs = ms("beta_dot", tv) * (ex[0] - xv) / (1 - ms("beta", tv))
                worst = max(worst, rel(lhs, rhs), rel(2 * ms("eps_star", tv), mpmath.mpf(sigma) ** 2 * ms("beta_dot", tv)))
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"2-component mixture, sigma={sigma}, beta in (t, t^2): b + eps* s vs beta_dot (eta_X - x)/(1 - beta)")


register(Claim("C12", "point-mass optimal SDE: on alpha^2 = sigma^2 beta(1-beta), dX = beta_dot (eta_X - X)/(1 - beta) dt + sigma sqrt(beta_dot) dW, X_0 = 0",
               ("any data (the identity holds for every eta_X)", "generic beta(t)"), _c12_symbolic, _c12_numeric, ("drift", "noise")))


# ------------------------------------------------------------------------------------ C13
def _c13_symbolic(ctx: Context) -> SymbolicOutcome:
    """Lazy drift is zero (C8), so Euler's step x + h * 0 is the exact ODE flow; on the point-mass
    schedule with beta = t the SDE is dX = sigma dW (C10, C12 with eta_X = E[X | I] for N(0, sigma^2)),
    whose Euler-Maruyama step is its exact solution; the law of X_t = sigma W_t is N(0, sigma^2 t),
    which is the law of I_t (alpha^2 + sigma^2 beta^2 = sigma^2 t)."""
    ode = derive_lazy("zero", 1).schedule  # symbolic sigma (the parameter symbol)
    pm = derive_lazy("optimal", 1, nu=1).schedule
    sde = Schedule("lazy-sde", pm.alpha.subs(NU, 1), pm.beta)
    d_ode = reduced(gaussian_drift(ode, 0))
    d_sde = reduced(gaussian_drift(sde, sde.eps_star))
    noise2 = reduced(2 * sde.eps_star)
    var_it = reduced(sde.alpha**2 + SIGMA**2 * sde.beta**2)
    var_path = sp.integrate(noise2, (t, 0, t))
    ok = d_ode == 0 and d_sde == 0 and not noise2.has(t) and reduced(var_it - var_path) == 0
    return SymbolicOutcome("proved" if ok else "failed",
                           f"ODE drift {d_ode}; SDE drift {d_sde}, noise^2 = {noise2} (constant); Var I_t = {var_it} = int_0^t noise^2 = {var_path}")


def _c13_torch(sigma: float, seed: int) -> float:
    """One float64 step of each lazy scheme with the exact Gaussian provider vs the exact solution."""
    import torch

    from lazysi.numeric.fields.gaussian import GaussianProvider
    from lazysi.numeric.fields.schedule import NumericSchedule
    from lazysi.numeric.fields.providers import Diffusion

    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    # point-mass SDE (derived schedule == point-mass family, C10): one Euler-Maruyama step 0 -> 1
    pm = NumericSchedule(family("point-mass", sigma=sigma))
    prov = GaussianProvider(pm, torch.zeros(3, dtype=torch.float64), sigma**2)
    for t0, t1 in ((0.0, 1.0), (0.3, 0.8)):
        x0 = prov.sample_marginal(t0, 64, gen)
        dw = torch.randn(x0.shape, generator=gen, dtype=torch.float64) * (t1 - t0) ** 0.5
        tt = torch.tensor(t0, dtype=torch.float64)
        x1 = x0 + prov.drift(tt, x0, Diffusion.optimal(1.0)) * (t1 - t0) + torch.sqrt(2 * pm.eps_star(tt)) * dw
        exact = x0 + sigma * dw  # X_t = sigma W_t
        worst = max(worst, float(((x1 - exact).abs() / exact.abs().clamp_min(1e-300)).max()))
    # lazy ODE on vp(sigma) (derived schedule == vp family, C9): one Euler step 0 -> 1 is the identity
    vp = NumericSchedule(family("vp", sigma=sigma))
    prov = GaussianProvider(vp, torch.zeros(3, dtype=torch.float64), sigma**2)
    x0 = prov.sample_marginal(0.0, 64, gen)
    x1 = x0 + prov.drift(torch.tensor(0.0, dtype=torch.float64), x0) * 1.0
    worst = max(worst, float(((x1 - x0).abs() / x0.abs()).max()))
    return worst


def _c13_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 13)
    sigma = _dec(rng, 0.3, 2.0)
    worst = mpmath.mpf(0)
    with mpmath.workdps(ctx.digits + 10):
        sde = MpSchedule(derive_lazy("optimal", sigma, nu=1).schedule)
        ode = MpSchedule(derive_lazy("zero", sigma).schedule)
        g = _gauss(sigma)
        sg = mpmath.mpf(sigma)
        for t0, t1 in ((mpmath.mpf("0.1"), mpmath.mpf(1)), (mpmath.mpf("0.25"), mpmath.mpf("0.6"))):
            x0 = sde("alpha", t0) * mpmath.mpf(rng.gauss(0, 1)) + sde("beta", t0) * sg * mpmath.mpf(rng.gauss(0, 1))
            dw = mpmath.sqrt(t1 - t0) * mpmath.mpf(rng.gauss(0, 1))
            x1 = x0 + _drift(sde, t0, x0, sde("eps_star", t0), g) * (t1 - t0) + mpmath.sqrt(2 * sde("eps_star", t0)) * dw
            worst = max(worst, rel(x1, x0 + sg * dw))
            y0 = mpmath.mpf(rng.gauss(0, 1))
            worst = max(worst, rel(y0 + _drift(ode, t0, y0, 0, g) * (t1 - t0), y0))
    torch_err = _c13_torch(float(sigma), ctx.seed + 13)
    ok = torch_err <= 1e-12
    return NumericOutcome(float(worst) if ok else float("inf"), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"sigma={sigma}: one Euler / Euler-Maruyama step vs the exact path (mpmath); float64 torch one step "
                          f"(t 0->1 and 0.3->0.8) relative error {torch_err:.2e} (<= 1e-12 required)")


register(Claim("C13", "exactness: on Gaussian data, Euler on the lazy ODE and Euler-Maruyama on the lazy point-mass SDE are exact for any number of steps, one included",
               ("N(0, sigma^2 I) data", "beta = t for the SDE"), _c13_symbolic, _c13_numeric, ("drift",)))


# ------------------------------------------------------------------------------------ C14
def _c14_symbolic(ctx: Context) -> SymbolicOutcome:
    from lazysi.symbolic.fields import M, gaussian_fields

    gs = generic_schedule()
    eps_lazy = sp.diff(gs.alpha**2 + SIGMA**2 * gs.beta**2, t) / 2
    res = reduced(gaussian_drift(gs, eps_lazy, SIGMA**2, MU) - gs.beta_dot * MU)
    from lazysi.symbolic.fields import BETA

    g = gaussian_fields()
    xp = sp.Symbol("x_c", real=True)
    centred = g.eta_x.xreplace({M: MU, X: xp + BETA * MU}) - MU  # any variance d, any schedule
    res_c = reduced(centred - g.eta_x.xreplace({M: 0, X: xp}))
    ok = res == 0 and res_c == 0
    return SymbolicOutcome("proved" if ok else "failed",
                           f"N(mu, sigma^2), eps = v_dot/2: b + eps s - beta_dot mu = {res} (constant drift mu when beta = t); "
                           f"eta_(X-mu)(x') - [eta_X(x' + beta mu) - mu] = {res_c}")


def _c14_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 14)
    sigma, mu = _dec(rng, 0.3, 2.0), _dec(rng, -2, 2)
    worst = mpmath.mpf(0)
    with mpmath.workdps(ctx.digits + 10):
        sde = MpSchedule(derive_lazy("optimal", sigma, nu=1).schedule)
        ode = MpSchedule(derive_lazy("zero", sigma).schedule)
        g_mu, g_0 = _gauss(sigma, mu), _gauss(sigma)
        sg, mu = mpmath.mpf(sigma), mpmath.mpf(mu)
        t0, t1 = mpmath.mpf("0.2"), mpmath.mpf("0.9")
        x0 = sde("alpha", t0) * mpmath.mpf(rng.gauss(0, 1)) + sde("beta", t0) * (mu + sg * mpmath.mpf(rng.gauss(0, 1)))
        dw = mpmath.sqrt(t1 - t0) * mpmath.mpf(rng.gauss(0, 1))
        x1 = x0 + _drift(sde, t0, x0, sde("eps_star", t0), g_mu) * (t1 - t0) + mpmath.sqrt(2 * sde("eps_star", t0)) * dw
        worst = max(worst, rel(x1, x0 + mu * (t1 - t0) + sg * dw))
        # ODE on vp(sigma): exact flow X_t1 = X_t0 + (beta_t1 - beta_t0) mu; centred Euler reproduces it
        y0 = ode("alpha", t0) * mpmath.mpf(rng.gauss(0, 1)) + ode("beta", t0) * (mu + sg * mpmath.mpf(rng.gauss(0, 1)))
        exact = y0 + (ode("beta", t1) - ode("beta", t0)) * mu
        yc = y0 - ode("beta", t0) * mu
        yc1 = yc + _drift(ode, t0, yc, 0, g_0) * (t1 - t0)
        worst = max(worst, rel(yc1 + ode("beta", t1) * mu, exact))
        raw = y0 + _drift(ode, t0, y0, 0, g_mu) * (t1 - t0)
        raw_err = abs(raw - exact)
    ok = raw_err > mpmath.mpf("1e-6")
    return NumericOutcome(float(worst) if ok else float("inf"), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"sigma={sigma}, mu={mu}: EM step of the point-mass SDE exact with drift mu; centred Euler on vp exact; "
                          f"uncentred Euler error {float(raw_err):.3g} (nonzero, as expected)")


register(Claim("C14", "means: for N(mu, sigma^2 I) the lazy drift is beta_dot mu (constant for the point-mass SDE with beta = t, still exact); "
               "the ODE needs centring eta_(X-mu)(t, x') = eta_X(t, x' + beta mu) - mu",
               ("N(mu, sigma^2 I) data",), _c14_symbolic, _c14_numeric, ("drift",)))


# ------------------------------------------------------------------------------------ C15
def _c15_symbolic(ctx: Context) -> SymbolicOutcome:
    gs = generic_schedule()
    d1, d2 = sp.symbols("d1 d2", positive=True)
    eps, bd = sp.Symbol("epsilon"), sp.Symbol("beta_dot")
    conds = [sp.numer(sp.together(gaussian_drift(gs, eps, d).subs(sp.Derivative(gs.beta, t), bd))) for d in (d1, d2)]
    conds = [sp.Poly(c, X).coeffs()[0] for c in conds]  # drift is linear in x: its coefficient must vanish
    sol = sp.solve(conds, [eps, bd], dict=True)
    ok = len(sol) == 1 and reduced(sol[0][bd]) == 0
    return SymbolicOutcome("proved" if ok else "failed",
                           f"lazy in two directions with d1 != d2 forces {sol}: beta_dot = 0, so beta is constant, contradicting beta_0 = 0, beta_1 = 1")


def _c15_numeric(ctx: Context) -> NumericOutcome:
    rng = _rng(ctx, 15)
    s1, s2 = _dec(rng, 0.3, 1.0), _dec(rng, 1.2, 2.0)
    worst, other = mpmath.mpf(0), mpmath.mpf("inf")
    with mpmath.workdps(ctx.digits + 10):
        for lazy_for, against in ((s1, s2), (s2, s1)):
            ms = MpSchedule(derive_lazy("optimal", lazy_for, nu=1).schedule)
            for tv in _times(ctx, rng, 3):
                xv = mpmath.mpf(rng.uniform(0.5, 2))
                e = ms("eps_star", tv)
                worst = max(worst, rel(_drift(ms, tv, xv, e, _gauss(lazy_for)), 0))
                other = min(other, abs(_drift(ms, tv, xv, e, _gauss(against))))
    ok = other > mpmath.mpf("1e-4")
    return NumericOutcome(float(worst) if ok else float("inf"), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"sigma = ({s1}, {s2}): the schedule lazy for one direction leaves drift >= {float(other):.3g} in the other")


register(Claim("C15", "anisotropy: for N(0, Sigma) with Sigma not proportional to I no scalar schedule is lazy",
               ("two eigen-directions with variances d1 != d2",), _c15_symbolic, _c15_numeric, ("drift",)))
