"""Claims C1 (field identities), C2 (optimal diffusion), C3 (singular base), C7 (Gaussian data).

Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data. Symbolic halves work on a generic
schedule (``alpha(t), beta(t)`` sympy Functions) or on every built-in family; numeric halves use
Gaussian-mixture data (fixed seeds) and the mpmath oracle of :mod:`lazysi.proofs.oracles`
(lambdified from the sympy derivation) at ``ctx.digits`` digits, against independent references:
numerical differentiation (``mpmath.diff``) and quadrature (``mpmath.quad``).
"""
from __future__ import annotations

import random
from functools import lru_cache

import mpmath
import sympy as sp

from lazysi.symbolic.cache import reduced
from lazysi.symbolic.families import family
from lazysi.symbolic.fields import ALPHA, BETA, D, M, X, gaussian_fields
from lazysi.symbolic.lazy import generic_schedule
from lazysi.symbolic.limits import endpoint_limit
from lazysi.symbolic.schedule import Schedule, t

from .oracles import MpSchedule, mp_mixture_fields, mp_mixture_log_density
from .registry import Claim, Context, NumericOutcome, SymbolicOutcome, register

__all__ = ["MpSchedule", "random_mixture", "mp_fields", "rel", "c7_symbolic"]


def random_mixture(seed: int, k: int = 2, dim: int = 1) -> tuple[list, list, list]:
    """A fixed-seed diagonal Gaussian mixture ``(weights, means, variances)`` (mpf lists)."""
    rng = random.Random(seed)
    w = [mpmath.mpf(rng.uniform(0.2, 1.0)) for _ in range(k)]
    means = [[mpmath.mpf(rng.uniform(-2, 2)) for _ in range(dim)] for _ in range(k)]
    var = [[mpmath.mpf(rng.uniform(0.05, 1.5)) for _ in range(dim)] for _ in range(k)]
    return w, means, var


def mp_fields(ms: MpSchedule, tv, x: list, mixture) -> tuple[list, list]:
    return mp_mixture_fields(ms("alpha", tv), ms("beta", tv), x, *mixture)


def rel(a, b) -> mpmath.mpf:
    """``|a - b| / max(1, |b|)``."""
    return abs(a - b) / max(mpmath.mpf(1), abs(b))


def _points(ctx: Context, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    n = 2 if ctx.quick else 5
    return [(rng.uniform(0.05, 0.95), rng.uniform(-2.0, 2.0)) for _ in range(n)]


# ------------------------------------------------------------------------------------ C1
def _c1_symbolic(ctx: Context) -> SymbolicOutcome:
    g = gaussian_fields()
    gs = generic_schedule()
    details = []
    # consistency x = alpha eta_Z + beta eta_X (per component, hence for any mixture: both linear)
    res_c = reduced(ALPHA * g.eta_z + BETA * g.eta_x - X)
    # Tweedie: d/dx log p = -eta_Z / alpha for a two-component mixture (w p1 + (1 - w) p2)
    w = sp.Symbol("w", positive=True)
    m2, d2 = sp.Symbol("m2", real=True), sp.Symbol("d2", positive=True)
    p1 = sp.exp(g.log_density)
    p2 = sp.exp(g.log_density.xreplace({M: m2, D: d2}))
    ez2 = g.eta_z.xreplace({M: m2, D: d2})
    mix = w * p1 + (1 - w) * p2
    post_ez = (w * p1 * g.eta_z + (1 - w) * p2 * ez2) / mix
    res_t = reduced(sp.diff(sp.log(mix), X) + post_ez / ALPHA, "cancel-together")
    # velocity b = alpha_dot eta_Z + beta_dot eta_X solves the continuity equation of p_t
    sub = {ALPHA: gs.alpha, BETA: gs.beta}
    p = sp.exp(g.log_density.xreplace(sub))
    b = gs.alpha_dot * g.eta_z.xreplace(sub) + gs.beta_dot * g.eta_x.xreplace(sub)
    res_v = reduced((sp.diff(p, t) + sp.diff(b * p, X)) / p, "cancel-together-expand")
    details = f"consistency {res_c}, Tweedie (2-component mixture) {res_t}, continuity equation {res_v}"
    ok = res_c == 0 and res_t == 0 and res_v == 0
    return SymbolicOutcome("proved" if ok else "failed", details)


def _c1_numeric(ctx: Context) -> NumericOutcome:
    worst = mpmath.mpf(0)
    mixture = random_mixture(ctx.seed + 11, k=2, dim=1)
    w, means, var = mixture
    with mpmath.workdps(ctx.digits + 10):
        for name in ("linear", "vp"):
            ms = MpSchedule(family(name))
            for tv, xv in _points(ctx, ctx.seed + 1):
                tv, xv = mpmath.mpf(tv), mpmath.mpf(xv)
                ex, ez = mp_fields(ms, tv, [xv], mixture)
                a, b = ms("alpha", tv), ms("beta", tv)
                worst = max(worst, rel(a * ez[0] + b * ex[0], xv))

                def logp(tt, xx):
                    return mp_mixture_log_density(ms("alpha", tt), ms("beta", tt), [xx], w, means, var)

                score = mpmath.diff(lambda xx: logp(tv, xx), xv)
                worst = max(worst, rel(-ez[0] / a, score))

                def flux(xx):
                    exx, ezz = mp_fields(ms, tv, [xx], mixture)
                    vel = ms("alpha_dot", tv) * ezz[0] + ms("beta_dot", tv) * exx[0]
                    return vel * mpmath.exp(logp(tv, xx))

                dpdt = mpmath.diff(lambda tt: mpmath.exp(logp(tt, xv)), tv)
                worst = max(worst, rel(dpdt + mpmath.diff(flux, xv), 0))
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits,
                          "2-component mixture, linear and vp: consistency, Tweedie score vs mpmath.diff of log p, continuity residual")


register(
    Claim(
        "C1",
        "field identities: x = alpha eta_Z + beta eta_X, score s = -eta_Z/alpha = d/dx log p_t (Tweedie), "
        "velocity b = alpha_dot eta_Z + beta_dot eta_X transports p_t",
        ("I_t = alpha Z + beta X, Z ~ N(0, I) independent of X", "Gaussian-mixture data for the numeric half"),
        _c1_symbolic,
        _c1_numeric,
        ("eta_x", "eta_z", "log_density"),
    )
)


# ------------------------------------------------------------------------------------ C2
def _c2_symbolic(ctx: Context) -> SymbolicOutcome:
    gs = generic_schedule()
    ex = sp.Symbol("eta_X", real=True)
    eps = sp.Symbol("epsilon", positive=True)
    eta_z = (X - gs.beta * ex) / gs.alpha
    s = -eta_z / gs.alpha
    b = gs.alpha_dot * eta_z + gs.beta_dot * ex
    res_b = reduced(b - (gs.beta_dot / gs.beta * X + gs.eps_star * s))
    res_d = reduced((b + eps * s) - (gs.beta_dot / gs.beta * X + (gs.eps_star + eps) * s))
    res_l = reduced(gs.eps_star - gs.alpha**2 * gs.lam_dot)
    es = sp.Symbol("eps_star", positive=True)
    kl = (es + eps) ** 2 / eps
    crit = sp.solve(sp.diff(kl, eps), eps)
    second = reduced(sp.diff(kl, eps, 2).subs(eps, es))
    ok = res_b == 0 and res_d == 0 and res_l == 0 and crit == [es] and second.is_positive
    return SymbolicOutcome(
        "proved" if ok else "failed",
        f"b - (beta_dot/beta)x - eps* s = {res_b}; decomposition residual {res_d}; eps* - alpha^2 lam_dot = {res_l}; "
        f"d/de (eps*+e)^2/e = 0 at e = {crit}, second derivative there {second}",
    )


def _c2_numeric(ctx: Context) -> NumericOutcome:
    worst = mpmath.mpf(0)
    mixture = random_mixture(ctx.seed + 12, k=3, dim=1)
    with mpmath.workdps(ctx.digits + 10):
        for name in ("linear", "sd3"):
            ms = MpSchedule(family(name))
            for tv, xv in _points(ctx, ctx.seed + 2):
                tv, xv = mpmath.mpf(tv), mpmath.mpf(xv)
                ex, ez = mp_fields(ms, tv, [xv], mixture)
                a, be, ad, bd, es = (ms(k, tv) for k in ("alpha", "beta", "alpha_dot", "beta_dot", "eps_star"))
                s = -ez[0] / a
                for eps in (mpmath.mpf(0), mpmath.mpf("0.37"), 2 * es):
                    lhs = ad * ez[0] + bd * ex[0] + eps * s
                    worst = max(worst, rel(lhs, bd / be * xv + (es + eps) * s))
                # the KL density (eps* + eps)^2 / eps is minimised at eps*: numeric root of its derivative
                root = mpmath.findroot(lambda e: mpmath.diff(lambda u: (es + u) ** 2 / u, e), (es / 3, es * 3), solver="illinois")
                worst = max(worst, rel(root, es))
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits,
                          "3-component mixture, linear and sd3, eps in {0, 0.37, 2 eps*}; argmin of (eps*+e)^2/e by findroot")


register(
    Claim(
        "C2",
        "optimal diffusion: eps* = alpha^2 beta_dot/beta - alpha alpha_dot = alpha^2 lambda_dot, b = (beta_dot/beta) x + eps* s, "
        "b + eps s = (beta_dot/beta) x + (eps* + eps) s, and (eps* + eps)^2/eps is minimised at eps = eps*",
        ("generic schedule alpha(t), beta(t) > 0 on (0, 1)", "Gaussian-mixture data for the numeric half"),
        _c2_symbolic,
        _c2_numeric,
        ("eps_star", "velocity", "score"),
    )
)


# ------------------------------------------------------------------------------------ C3
STANDARD = ("linear", "vp", "polynomial", "sd3")


def _c3_symbolic(ctx: Context) -> SymbolicOutcome:
    parts, ok = [], True
    for name in STANDARD:
        s = family(name).bound
        ratio = endpoint_limit(reduced(s.eps_star / (s.beta_dot / s.beta)), 0)
        lim = endpoint_limit(s.eps_star, 0)
        ok &= ratio == 1 and lim == sp.oo
        parts.append(f"{name}: eps*/(beta_dot/beta) -> {ratio}, eps* -> {lim}")
    sig = sp.Symbol("sigma", positive=True)
    pm = family("point-mass")
    lim_pm = endpoint_limit(reduced(pm.eps_star), 0)
    ok &= lim_pm.is_finite is True and reduced(lim_pm - sig**2 / 2) == 0
    parts.append(f"point-mass: eps* -> {lim_pm}")
    return SymbolicOutcome("proved" if ok else "failed", "; ".join(parts))


def _c3_numeric(ctx: Context) -> NumericOutcome:
    worst = mpmath.mpf(0)
    with mpmath.workdps(ctx.digits + 20):
        tiny = mpmath.mpf(10) ** (-(ctx.digits + 5))
        for name in STANDARD:
            ms = MpSchedule(family(name))
            ratio = ms("eps_star", tiny) * ms("beta", tiny) / ms("beta_dot", tiny)
            worst = max(worst, abs(ratio - 1))
        for sigma in ("0.7", "2.5"):
            ms = MpSchedule(family("point-mass", sigma=sigma))
            worst = max(worst, rel(ms("eps_star", tiny), mpmath.mpf(sigma) ** 2 / 2))
    return NumericOutcome(float(worst), 10.0 ** (5 - ctx.digits), ctx.digits,
                          f"eps* beta/beta_dot at t = 1e-{ctx.digits + 5} for {', '.join(STANDARD)}; point-mass eps* = sigma^2/2 there")


register(
    Claim(
        "C3",
        "singular base: eps*_t ~ beta_dot/beta -> oo as t -> 0 for standard schedules; finite (sigma^2/2) for the point-mass schedule",
        ("standard schedules linear, vp, polynomial, sd3", "point-mass alpha = sigma sqrt(t(1-t)), beta = t"),
        _c3_symbolic,
        _c3_numeric,
        ("eps_star",),
    )
)


# ------------------------------------------------------------------------------------ C7
def c7_symbolic(ctx: Context) -> SymbolicOutcome:
    """Independent of the derivation (completing the square): the orthogonality principle.
    With I = alpha Z + beta X, E[(X - eta_X(I)) I^k] = 0 for k = 0, 1 and the same for Z, where the
    moments are E[X] = m, E[X^2] = d + m^2, E[Z] = 0, E[Z^2] = 1, E[XZ] = 0. For jointly Gaussian
    (X, I) the affine least-squares predictor is the conditional mean."""
    g = gaussian_fields()
    xs, zs = sp.Symbol("X_", real=True), sp.Symbol("Z_", real=True)
    ii = ALPHA * zs + BETA * xs
    mx = {0: 1, 1: M, 2: D + M**2}
    mz = {0: 1, 1: 0, 2: 1}

    def expect(poly_expr):
        poly = sp.Poly(sp.expand(poly_expr), xs, zs)
        return sp.Add(*[c * mx[i] * mz[j] for (i, j), c in poly.terms()])

    residuals = []
    for target, eta in ((xs, g.eta_x), (zs, g.eta_z)):
        err = target - eta.xreplace({X: ii})
        for k in (0, 1):
            residuals.append(reduced(expect(sp.together(err * ii**k) * (ALPHA**2 + BETA**2 * D)) / (ALPHA**2 + BETA**2 * D)))
    var_i = reduced(expect((ii - BETA * M) ** 2))
    res_var = reduced(var_i - g.var)
    ok = all(r == 0 for r in residuals) and res_var == 0
    return SymbolicOutcome(
        "proved" if ok else "failed",
        f"orthogonality residuals {residuals}; Var(I) from moments - derived variance = {res_var}; derivation: "
        + " | ".join(g.derivation),
    )


def _c7_numeric(ctx: Context) -> NumericOutcome:
    """Mixture fields from the oracle vs posterior means by quadrature of the joint density."""
    worst = mpmath.mpf(0)
    w, means, var = random_mixture(ctx.seed + 17, k=3, dim=1)
    with mpmath.workdps(ctx.digits + 5):
        for name in ("linear",) if ctx.quick else ("linear", "point-mass"):
            ms = MpSchedule(family(name, **({"sigma": "0.8"} if name == "point-mass" else {})))
            for tv, xv in _points(ctx, ctx.seed + 7)[: 1 if ctx.quick else 2]:
                tv, xv = mpmath.mpf(tv), mpmath.mpf(xv)
                a, b = ms("alpha", tv), ms("beta", tv)
                ex, ez = mp_fields(ms, tv, [xv], (w, means, var))
                total = mpmath.fsum(w)

                def joint(u):
                    prior = mpmath.fsum(wk * mpmath.npdf(u, mk[0], mpmath.sqrt(vk[0])) for wk, mk, vk in zip(w, means, var)) / total
                    return prior * mpmath.npdf(xv, b * u, a)

                # the prior's mass lies within 14 standard deviations of its component means (tails
                # < 1e-43); Gauss-Legendre on the pieces between those points
                cuts = sorted({mk[0] + j * mpmath.sqrt(vk[0]) for mk, vk in zip(means, var) for j in (-14, -7, 0, 7, 14)})
                z = mpmath.quad(joint, cuts, method="gauss-legendre")
                mean_x = mpmath.quad(lambda u: u * joint(u), cuts, method="gauss-legendre") / z
                worst = max(worst, rel(ex[0], mean_x), rel(ez[0], (xv - b * mean_x) / a))
    return NumericOutcome(float(worst), 10.0 ** (8 - ctx.digits), ctx.digits,
                          "3-component mixture, linear and point-mass(0.8): oracle fields vs mpmath.quad of the joint density")


register(
    Claim(
        "C7",
        "Gaussian data: for X ~ N(m, Sigma) the fields are affine in x (I_t ~ N(beta m, alpha^2 I + beta^2 Sigma)); "
        "for mixtures they are softmax-weighted sums",
        ("per eigen-direction of Sigma = U diag(d) U^T", "mixture weights by Bayes' rule"),
        c7_symbolic,
        _c7_numeric,
        ("eta_x", "eta_z", "log_density"),
    )
)
