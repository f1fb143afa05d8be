"""Claims C4 (schedule conversion, ODE), C5 (path conversion, SDE), C6 (invariance of eps*).

Symbolic halves: each identity reduces to 0 (i) for generic schedules -- ``alpha, beta`` sympy
``Function``s of t and the target written as ``alpha_B = c alpha(tau)``, ``beta_B = c beta(tau)``
with ``c, tau`` unknown functions of s (every target with the same lambda range has this form) --
and (ii) for built-in pairs with the *derived* tau, c, tau', c'/c, c^2 tau' (the expressions that
are generated into torch code). ``ddpm`` is skipped: its terminal SNR is finite (lambda(0) > -oo),
so it does not convert to or from a schedule with lambda range (-oo, oo).

Numeric halves: C4 -- two ODE solutions on a Gaussian mixture, each integrated at ``ctx.digits``
(>= 30) digits with an order-16 extrapolation method, agree (x_B(s1) = c x_A(tau(s1))) to 1e-15;
C5 -- Euler-Maruyama on B driven by the time-changed Brownian path converges to the converted
A-path at the measured strong order 1 (additive noise), |slope - 1| <= 0.15; C6 -- the generated
``c^2 tau'`` times A's eps* at tau(s) matches B's eps* evaluated by mpmath.
"""
from __future__ import annotations

import math

import mpmath
import sympy as sp
import torch

from lazysi.symbolic.cache import Store
from lazysi.symbolic.conversion import Conversion, s, t
from lazysi.symbolic.families import family
from lazysi.symbolic.validity import within_size_bound

from .registry import Claim, NumericOutcome, SymbolicOutcome, register

__all__ = ["VALID_FAMILIES", "SKIPPED_FAMILIES", "builtin_pairs", "strong_order_fit", "get_conversion", "c4_residuals", "c5_residuals", "c6_residuals", "reduces_to_zero", "numeric_zero"]

VALID_FAMILIES = ("linear", "vp", "polynomial", "sd3", "point-mass")
SKIPPED_FAMILIES = {"ddpm": "finite terminal SNR: lambda(0+) is finite, so the lambda ranges differ"}
QUICK_PAIRS = (("linear", "vp"), ("linear", "point-mass"))

_CONV: dict = {}


def get_conversion(a: str, b: str) -> Conversion:
    """A cached conversion between default-parameter built-in families."""
    if (a, b) not in _CONV:
        _CONV[(a, b)] = Conversion(family(a), family(b))
    return _CONV[(a, b)]


def builtin_pairs(quick: bool) -> list[tuple[str, str]]:
    """Quick: two pairs. Full: every ordered pair through the linear hub (linear -> X and X -> linear);
    any other pair is the composition of two of these (composition is proved generically in C4)."""
    if quick:
        return list(QUICK_PAIRS)
    others = [f for f in VALID_FAMILIES if f != "linear"]
    return [("linear", f) for f in others] + [(f, "linear") for f in others]


# ---------------------------------------------------------------------- generic objects
_al, _be, _c, _tau, _eps = (sp.Function(n) for n in ("alpha", "beta", "c", "tau", "eps"))
_ez, _ex = sp.symbols("eta_Z eta_X", real=True)


def _generic():
    tau, c = _tau(s), _c(s)
    aB, bB = c * _al(tau), c * _be(tau)
    return tau, c, aB, bB


_U = sp.Symbol("u", positive=True)


def _on_open_interval(e: sp.Expr) -> sp.Expr:
    """``e`` with ``s = u/(1+u)``, u > 0: a bijection onto (0, 1) that makes ``s`` and ``1 - s``
    manifestly positive, so sympy may split and cancel their square roots (soundly)."""
    return e.xreplace({s: _U / (1 + _U)})


_STRATEGIES = (
    sp.expand,
    lambda e: sp.together(sp.expand(e)),
    lambda e: sp.simplify(sp.expand_trig(e)),
    lambda e: sp.simplify(sp.together(_on_open_interval(e))),
    lambda e: sp.simplify(sp.expand_trig(_on_open_interval(e))),
)


_PROVED = Store("proved_zero", scope="sympy")


#: residuals above this many operations are not handed to sympy (size bound, not time: see
#: :func:`lazysi.symbolic.validity.prove_positive`); they can still be 'numeric-only'
MAX_ZERO_OPS = 1000


def reduces_to_zero(expr: sp.Expr, max_ops: int = MAX_ZERO_OPS) -> bool | None:
    """True when sympy reduces ``expr`` to 0 by one of a few rewrites (tried only when ``expr`` has
    at most ``max_ops`` operations): expand, together, simplify, trig expansion, and the
    substitution s = u/(1+u) (u > 0).
    A reduction found once is remembered on disk under the expression's ``srepr`` and the sympy
    version (see :mod:`lazysi.symbolic.cache`; ``LAZYSI_NO_CACHE=1`` re-proves)."""
    key = _PROVED.key("zero", expr)
    if _PROVED.lookup(key, ()) is not None:
        return True
    if not within_size_bound(expr, max_ops):
        return None
    for strategy in _STRATEGIES:
        try:
            if strategy(expr) == 0:
                _PROVED.put(key, {})
                return True
        except (NotImplementedError, RecursionError, TypeError):
            continue
    return None


_zero = reduces_to_zero  # the name tests/test_cache.py uses


def numeric_zero(expr: sp.Expr, digits: int = 30) -> bool:
    f = sp.lambdify(s, expr, modules="mpmath")
    with mpmath.workdps(digits):
        for sv in ("0.13", "0.37", "0.5", "0.71", "0.93"):
            v = f(mpmath.mpf(sv))
            if abs(v) > mpmath.mpf(10) ** (-digits + 8):
                return False
    return True


def _pair_outcome(claim: str, residuals_of, ctx) -> SymbolicOutcome:
    """Reduce every pair's residuals; 'proved' if sympy reduces all to 0, 'numeric-only' when some
    only vanish numerically (30 digits, 5 points), 'failed' on a nonzero residual."""
    generic = residuals_of(None)
    bad = [i for i, r in enumerate(generic) if reduces_to_zero(r) is not True]
    if bad:
        return SymbolicOutcome("failed", f"{claim}: generic residual(s) {bad} do not reduce to 0")
    numeric_only, names = [], []
    for a, b in builtin_pairs(ctx.quick):
        conv = get_conversion(a, b)
        for r in residuals_of(conv):
            if reduces_to_zero(r) is True:
                continue
            if numeric_zero(r):
                numeric_only.append(f"{a}->{b}")
            else:
                return SymbolicOutcome("failed", f"{claim}: residual for {a}->{b} is not 0: {sp.sstr(r)[:200]}")
        names.append(f"{a}->{b}")
    skipped = "; ".join(f"{k} skipped ({v})" for k, v in SKIPPED_FAMILIES.items())
    detail = f"generic alpha, beta, c, tau: 0; pairs {', '.join(names)}: 0; {skipped}"
    if numeric_only:
        return SymbolicOutcome("numeric-only", detail + f"; only numerically zero for {sorted(set(numeric_only))}")
    return SymbolicOutcome("proved", detail)


# ---------------------------------------------------------------------- C4
def c4_residuals(conv):
    if conv is None:
        tau, c, aB, bB = _generic()
        lam = lambda a, b: sp.log(b) - sp.log(a)  # noqa: E731  log(beta/alpha) for positive functions
        tau_dot, cdc = sp.diff(tau, s), sp.diff(c, s) / c
        x = c * (_al(tau) * _ez + _be(tau) * _ex)
        b_A = sp.diff(_al(t), t).subs(t, tau) * _ez + sp.diff(_be(t), t).subs(t, tau) * _ex
        velocity_B = sp.diff(aB, s) * _ez + sp.diff(bB, s) * _ex
        # composition: (A -> B by tau1, c1) then (B -> C by tau2, c2) is A -> C by tau1(tau2), c2 c1(tau2)
        t2, c2 = sp.Function("tau2")(s), sp.Function("c2")(s)
        aC = c2 * aB.subs(s, t2)
        return [
            sp.expand_log(lam(aB, bB) - lam(_al(tau), _be(tau)), force=True),
            velocity_B - (cdc * x + c * tau_dot * b_A),
            aC - (c2 * c.subs(s, t2)) * _al(tau.subs(s, t2)),
        ]
    tau, c = conv.tau, conv.c
    aA, bA = conv.a.alpha, conv.a.beta
    return [
        conv.alpha_B - c * conv.at_tau(aA),
        conv.beta_B - c * conv.at_tau(bA),
        sp.diff(conv.alpha_B, s) - conv.c_dot_over_c * conv.alpha_B - c * conv.tau_dot * conv.at_tau(sp.diff(aA, t)),
        sp.diff(conv.beta_B, s) - conv.c_dot_over_c * conv.beta_B - c * conv.tau_dot * conv.at_tau(sp.diff(bA, t)),
    ]


def _c4_symbolic(ctx) -> SymbolicOutcome:
    return _pair_outcome("C4", c4_residuals, ctx)


def _c4_numeric(ctx) -> NumericOutcome:
    from lazysi.proofs.oracles import Mixture, mp_conversion_ode_gap

    digits = max(ctx.digits, 30)
    mix = Mixture((0.3, 0.7), ((-1.0,), (1.5,)), (0.2, 0.5))
    steps = 6 if ctx.quick else 8
    gap = mp_conversion_ode_gap(get_conversion("linear", "vp"), mix, 0.1, 0.9, [0.3], digits, steps)
    return NumericOutcome(gap, 1e-15, digits, f"linear -> vp ODE, bimodal mixture, s in [0.1, 0.9], {steps} GBS(16) steps at {digits} digits: |x_B - c x_A| = {gap:.3g}")


# ---------------------------------------------------------------------- C5
def c5_residuals(conv):
    if conv is None:
        tau, c, aB, bB = _generic()
        tau_dot = sp.diff(tau, s)
        epsA = _eps(tau)
        epsB = c**2 * tau_dot * epsA
        x = c * (_al(tau) * _ez + _be(tau) * _ex)
        # A's SDE drift (b + eps s) with s = -eta_Z/alpha; Ito for X_B = c X_A(tau): dX_B = c' X_A ds + c dX_A(tau)
        drift_A = (sp.diff(_al(t), t).subs(t, tau) - epsA / _al(tau)) * _ez + sp.diff(_be(t), t).subs(t, tau) * _ex
        drift_B = (sp.diff(aB, s) - epsB / aB) * _ez + sp.diff(bB, s) * _ex
        diffusion_sq = (c * sp.sqrt(2 * epsA)) ** 2 * tau_dot  # (c sqrt(2 eps) sqrt(tau'))^2
        return [drift_B - (sp.diff(c, s) / c * x + c * tau_dot * drift_A), diffusion_sq - 2 * epsB]
    epsA = sp.Symbol("eps_A_at_tau", positive=True)  # eps_A(tau(s)): any value; the residual is affine in it
    epsB = conv.eps_scale * epsA
    aA, bA = conv.a.alpha, conv.a.beta
    x = conv.c * (conv.at_tau(aA) * _ez + conv.at_tau(bA) * _ex)
    drift_A = (conv.at_tau(sp.diff(aA, t)) - epsA / conv.at_tau(aA)) * _ez + conv.at_tau(sp.diff(bA, t)) * _ex
    drift_B = (sp.diff(conv.alpha_B, s) - epsB / conv.alpha_B) * _ez + sp.diff(conv.beta_B, s) * _ex
    r = sp.expand(drift_B - (conv.c_dot_over_c * x + conv.c * conv.tau_dot * drift_A))
    out = []
    for part in (r.coeff(_ez), r.coeff(_ex)):
        part = sp.expand(part)
        out += [part.coeff(epsA), part.subs(epsA, 0)]
    return out


def _c5_symbolic(ctx) -> SymbolicOutcome:
    return _pair_outcome("C5", c5_residuals, ctx)


def strong_order_fit(levels=(8, 16, 32, 64), fine: int = 1024, paths: int = 200, seed: int = 0, solver: str = "em", a: str = "linear", b: str = "vp", nu: float = 1.0, s0: float = 0.2, s1: float = 0.8):
    """Pathwise discrepancy between B's SDE (``nu eps*_B``) solved by ``solver`` on coarse s-grids,
    driven by the time-changed Brownian path, and the converted A-path ``c_s X_A(tau(s))`` (A's
    ``nu eps*_A`` SDE solved on the fine tau-grid with the same W). Returns ``(slope, errors)``:
    least-squares slope of log(mean_paths max_k |error|) against log(step)."""
    from lazysi.numeric.sampling.brownian import BrownianPath
    from lazysi.numeric.fields.convert import NumericConversion
    from lazysi.numeric.fields.gaussian import MixtureProvider
    from lazysi.numeric.sampling.grids import uniform
    from lazysi.numeric.fields.schedule import NumericSchedule
    from lazysi.numeric.fields.providers import Diffusion
    from lazysi.numeric.sampling.solvers import integrate, provider_sde

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add contention (softmax 20 ms -> 3 us)
    try:
        return _strong_order_fit(levels, fine, paths, seed, solver, a, b, nu, s0, s1, BrownianPath, NumericConversion, MixtureProvider, uniform, NumericSchedule, Diffusion, integrate, provider_sde)
    finally:
        torch.set_num_threads(threads)


def _strong_order_fit(levels, fine, paths, seed, solver, a, b, nu, s0, s1, BrownianPath, NumericConversion, MixtureProvider, uniform, NumericSchedule, Diffusion, integrate, provider_sde):
    A, B = NumericSchedule(family(a)), NumericSchedule(family(b))
    w, m, v = (torch.tensor(z, dtype=torch.float64) for z in ([0.3, 0.7], [[-1.0], [1.5]], [0.2, 0.5]))
    pa, pb = MixtureProvider(A, w, m, v), MixtureProvider(B, w, m, v)
    conv = NumericConversion(A, family(b))
    s_f = uniform(fine, s0, s1)
    tau_f = conv.tau(s_f)
    c_f = conv.c(s_f)
    W = BrownianPath.sample(tau_f, paths, (1,), seed=seed)
    Wb = W.time_changed(s_f, tau_f)
    g = torch.Generator().manual_seed(seed)
    x0 = pa.sample_marginal(float(tau_f[0]), paths, g)
    diff = Diffusion.optimal(nu)
    ref = torch.stack(integrate(solver, provider_sde(pa, diff), tau_f, x0, W, keep_path=True)) * c_f.reshape(-1, 1, 1)
    errors = []
    for n in levels:
        step = fine // n
        grid = s_f[::step]
        xb = torch.stack(integrate(solver, provider_sde(pb, diff), grid, c_f[0] * x0, Wb, keep_path=True))
        errors.append(float((xb - ref[::step]).abs().amax(dim=(0, 2)).mean()))
    hs = [math.log((s1 - s0) / n) for n in levels]
    le = [math.log(e) for e in errors]
    mh, me = sum(hs) / len(hs), sum(le) / len(le)
    slope = sum((h - mh) * (e - me) for h, e in zip(hs, le)) / sum((h - mh) ** 2 for h in hs)
    return slope, errors


def _c5_numeric(ctx) -> NumericOutcome:
    levels = (8, 16, 32) if ctx.quick else (8, 16, 32, 64)
    slope, errors = strong_order_fit(levels=levels, fine=512 if ctx.quick else 1024, paths=100 if ctx.quick else 200, seed=ctx.seed)
    return NumericOutcome(
        abs(slope - 1.0), 0.15, 16,
        f"EM on vp (nu=1) driven by the time-changed W vs converted linear path: strong-order slope {slope:.3f} "
        f"(theory 1, additive noise), errors {[f'{e:.2e}' for e in errors]} at n = {list(levels)}",
    )


# ---------------------------------------------------------------------- C6
def c6_residuals(conv):
    if conv is None:
        tau, c, aB, bB = _generic()
        eps_star = lambda a, b, v: a**2 * sp.diff(b, v) / b - a * sp.diff(a, v)  # noqa: E731
        eA = eps_star(_al(t), _be(t), t).subs(t, tau)
        return [eps_star(aB, bB, s) - c**2 * sp.diff(tau, s) * eA]
    return [conv.eps_star_B - conv.eps_scale * conv.at_tau(conv.a.eps_star)]


def _c6_symbolic(ctx) -> SymbolicOutcome:
    return _pair_outcome("C6", c6_residuals, ctx)


def _c6_numeric(ctx) -> NumericOutcome:
    from lazysi.numeric.fields.convert import NumericConversion
    from lazysi.numeric.fields.schedule import NumericSchedule

    digits = max(ctx.digits, 30)
    worst, where = 0.0, ""
    pairs = [("linear", "vp"), ("linear", "point-mass")] if ctx.quick else [("linear", "vp"), ("linear", "point-mass"), ("vp", "point-mass"), ("sd3", "vp")]
    sv = torch.tensor([0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99], dtype=torch.float64)
    for a, b in pairs:
        conv = NumericConversion(family(a), family(b))
        A = NumericSchedule(family(a))
        got = conv.eps_scale(sv) * A.eps_star(conv.tau(sv))
        ref_f = sp.lambdify(t, family(b).bound.eps_star, modules="mpmath")
        with mpmath.workdps(digits):
            for k, x in enumerate(sv.tolist()):
                ref = ref_f(mpmath.mpf(x))
                err = float(abs(mpmath.mpf(float(got[k])) - ref) / abs(ref))
                if err > worst:
                    worst, where = err, f"{a}->{b} at s={x}"
    return NumericOutcome(worst, 1e-12, digits, f"generated c^2 tau' eps*_A(tau) vs mpmath eps*_B: worst relative error {worst:.2e} ({where})")


register(Claim("C4", "Schedule conversion (ODE): I_B(s) = c_s I_A(tau(s)), eta_B(s,x) = eta_A(tau, x/c), b_B = (c'/c) x + c tau' b_A(tau, x/c)",
               ("lambda_B(s) = lambda_A(tau(s))", "both lambda ranges (-oo, oo)"), _c4_symbolic, _c4_numeric, ("tau", "c", "tau_dot", "c_dot_over_c")))
register(Claim("C5", "Path conversion (SDE): c_s X_{tau(s)} solves B's SDE with eps_B = c^2 tau' eps_A(tau) driven by dW_B = dW_{tau(s)}/sqrt(tau')",
               ("additive noise sqrt(2 eps(t))", "same lambda range"), _c5_symbolic, _c5_numeric, ("eps_scale",)))
register(Claim("C6", "Invariance of eps*: eps*_B = c^2 tau' eps*_A(tau), so nu = eps/eps* is preserved",
               ("same lambda range",), _c6_symbolic, _c6_numeric, ("eps_scale", "eps_star")))
