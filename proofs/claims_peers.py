"""Formulas other libraries rely on, restated in lazysi's convention and checked as claims.

Our convention: ``I_t = alpha Z + beta X``, t = 0 base (noise), t = 1 data. The peers write
``x_t = alpha_t x_1 + sigma_t x_0`` with x_1 the data: their ``alpha`` is our ``beta`` and their
``sigma`` is our ``alpha`` (flow_matching and SiT, both with t = 1 data); diffusers' flow
schedulers use ``sigma = 1 - t`` (sigma = 1 is noise).

* ``P1`` flow_matching ``ScheduleTransformedModel.forward`` (scale-time transform, transcribed
  from flow_matching 1.0.10): ``t_r = snr^-1(snr_new(r))``, ``s_r = sigma_r / sigma_t``,
  ``dt_r = sigma_t^2 (sigma_r alpha_r' - alpha_r sigma_r') / (sigma_r^2 (sigma_t alpha_t' - alpha_t sigma_t'))``,
  ``ds_r = (sigma_t sigma_r' - sigma_r sigma_t' dt_r) / sigma_t^2``,
  ``u_r(x) = ds_r x / s_r + dt_r s_r u_t(x / s_r)`` -- is our C4 with ``tau = t_r``, ``c = s_r``.
* ``P2`` diffusers' SD3/FLUX shift ``sigma' = shift sigma / (1 + (shift - 1) sigma)``: the sd3
  family is the linear schedule under the time change ``tau(t) = beta_sd3(t)`` with ``c = 1``;
  equivalently ``lambda_sd3 = lambda_linear - log(shift)``. Implication for the lazy conversion:
  a shifted model *is* a linear model queried at other times, so converting it to a lazy
  schedule needs no extra scale factor -- the shift only relabels network times.
* ``P3`` SiT ``get_score_from_velocity``: ``score = (r v - x) / (sigma^2 - r sigma' sigma)`` with
  ``r = alpha / alpha'`` (their names) is, in ours, ``s = ((beta/beta_dot) b - x) / (alpha^2 -
  (beta/beta_dot) alpha_dot alpha) = (b - (beta_dot/beta) x) / eps*``: true for every schedule
  (linear: ``s = (t b - x) / (1 - t)``).

Each claim has a symbolic identity (sympy reduces the residual to 0) and a numeric check of the
full field identity on Gaussian data ``X ~ N(mu, v)`` (exact fields, C7) with mpmath at
``ctx.digits`` digits; P1 and P2 also run the installed libraries' own code in float64.
The peers' formulas live in :data:`FORMULAS` so that ``lazysi verify --mutate`` can perturb them.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import mpmath
import sympy as sp

from lazysi.symbolic.families import family
from lazysi.symbolic.schedule import t

from .mutant import Mutant, register_mutants
from .registry import Claim, Context, NumericOutcome, SymbolicOutcome, register

__all__ = ["FORMULAS", "PEER_MUTANTS", "gaussian_fields"]

x = sp.Symbol("x", real=True)
r = sp.Symbol("r", positive=True)
MU, VAR = sp.Rational(3, 10), sp.Rational(9, 4)  # Gaussian data N(0.3, 1.5^2)
T_GRID = (1e-6, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-6)
X_GRID = (-1.3, 0.4, 2.1)


def gaussian_fields(alpha: sp.Expr, beta: sp.Expr, var: sp.Symbol = t, mu=MU, v=VAR) -> dict[str, sp.Expr]:
    """Exact fields of ``I = alpha Z + beta X``, ``X ~ N(mu, v)`` (C7): ``eta_z, eta_x, score, velocity``."""
    total = alpha**2 + beta**2 * v
    eta_x = mu + beta * v * (x - beta * mu) / total
    eta_z = alpha * (x - beta * mu) / total
    score = -(x - beta * mu) / total
    velocity = sp.diff(alpha, var) * eta_z + sp.diff(beta, var) * eta_x
    return {"eta_x": eta_x, "eta_z": eta_z, "score": score, "velocity": velocity}


# ------------------------------------------------------------------------- peers' formulas
def _fm_transform(a_r, s_r_, da_r, ds_r_, snr_inverse, orig: Callable[[sp.Expr], tuple]) -> dict[str, sp.Expr]:
    """flow_matching ScheduleTransformedModel.forward, their names (alpha = data coefficient)."""
    tt = snr_inverse(a_r / s_r_)
    a_t, sg_t, da_t, dsg_t = orig(tt)
    s_r = s_r_ / sg_t
    dt_r = sg_t * sg_t * (s_r_ * da_r - a_r * ds_r_) / (s_r_ * s_r_ * (sg_t * da_t - a_t * dsg_t))
    ds_r = (sg_t * ds_r_ - s_r_ * dsg_t * dt_r) / (sg_t * sg_t)
    return {"t_r": tt, "s_r": s_r, "dt_r": dt_r, "ds_r": ds_r}


def _sit_score(velocity, xx, alpha_t, d_alpha_t, sigma_t, d_sigma_t):
    """SiT transport/path.py get_score_from_velocity (their alpha = data coefficient)."""
    reverse_alpha_ratio = alpha_t / d_alpha_t
    var = sigma_t**2 - reverse_alpha_ratio * d_sigma_t * sigma_t
    return (reverse_alpha_ratio * velocity - xx) / var


def _diffusers_shift(sigma, shift):
    """diffusers FlowMatchEulerDiscreteScheduler (static shift)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


FORMULAS: dict[str, Callable] = {
    "flow_matching.schedule_transform": _fm_transform,
    "sit.get_score_from_velocity": _sit_score,
    "diffusers.shift": _diffusers_shift,
}


def _mp_error(lhs: sp.Expr, rhs: sp.Expr, var: sp.Symbol, digits: int, grid=T_GRID) -> tuple[float, str]:
    """Worst relative difference of two expressions in ``(var, x)`` on the grid, mpmath at ``digits``."""
    f = sp.lambdify((var, x), lhs, modules="mpmath")
    g = sp.lambdify((var, x), rhs, modules="mpmath")
    worst, where = 0.0, ""
    with mpmath.workdps(2 * digits + 20):  # the identities cancel catastrophically near t = 1
        for tv in grid:
            for xv in X_GRID:
                a, b = f(mpmath.mpf(tv), mpmath.mpf(xv)), g(mpmath.mpf(tv), mpmath.mpf(xv))
                err = float(abs(a - b) / max(abs(b), mpmath.mpf(10) ** (-digits)))
                if not err <= worst:
                    worst, where = (err if err == err else math.inf), f"at {var}={tv}, x={xv}: {mpmath.nstr(a, 12)} vs {mpmath.nstr(b, 12)}"
    return worst, where


def _zero(expr: sp.Expr) -> bool:
    """Cheap exact zero test: cancel/together first, trig simplification only on small trees."""
    e = sp.cancel(sp.together(expr))
    if e == 0:
        return True
    if sp.count_ops(e) < 400:
        e = sp.simplify(sp.expand_trig(e))
    return e == 0


# ------------------------------------------------------------------------------------ P1
@lru_cache(maxsize=8)
def _p1_exprs(fm: Callable) -> dict[str, sp.Expr]:
    new = family("vp").bound  # flow_matching CosineScheduler: alpha = sin(pi r/2), sigma = cos(pi r/2)
    bar_a, bar_b = new.alpha.subs(t, r), new.beta.subs(t, r)  # ours: alpha = noise coeff
    lin = family("linear")

    def condot(tt):  # CondOTScheduler: alpha = t, sigma = 1 - t (theirs)
        return lin.beta.subs(t, tt), lin.alpha.subs(t, tt), sp.diff(lin.beta, t).subs(t, tt), sp.diff(lin.alpha, t).subs(t, tt)

    def snr_inverse_condot(snr):  # ConvexScheduler.snr_inverse: kappa^-1(snr / (1 + snr)), kappa = t
        return snr / (1 + snr)

    out = fm(bar_b, bar_a, sp.diff(bar_b, r), sp.diff(bar_a, r), snr_inverse_condot, condot)
    # ours (C4 from the linear schedule): tau = beta_bar / (alpha_bar + beta_bar), c = alpha_bar + beta_bar
    tau = bar_b / (bar_a + bar_b)
    c = bar_a + bar_b
    lin_v = gaussian_fields(lin.alpha, lin.beta)["velocity"]
    u_t = lin_v.subs(x, x / out["s_r"]).subs(t, out["t_r"])
    u_r = out["ds_r"] * x / out["s_r"] + out["dt_r"] * out["s_r"] * u_t
    exact = gaussian_fields(bar_a, bar_b, r)["velocity"]
    return {"tau_res": out["t_r"] - tau, "c_res": out["s_r"] - c, "dtau_res": out["dt_r"] - sp.diff(tau, r),
            "dc_res": out["ds_r"] - sp.diff(c, r), "u_r": u_r, "exact": exact}


def _p1_symbolic(ctx: Context) -> SymbolicOutcome:
    e = _p1_exprs(FORMULAS["flow_matching.schedule_transform"])
    bad = [k for k in ("tau_res", "c_res", "dtau_res", "dc_res") if not _zero(e[k])]
    if bad:
        return SymbolicOutcome("failed", "nonzero residual(s): " + ", ".join(f"{k} = {sp.simplify(e[k])}" for k in bad))
    return SymbolicOutcome("proved", "t_r = tau, s_r = c, dt_r = tau', ds_r = c' (linear -> cos/sin), residuals reduced to 0")


def _p1_numeric(ctx: Context) -> NumericOutcome:
    e = _p1_exprs(FORMULAS["flow_matching.schedule_transform"])
    err, where = _mp_error(e["u_r"], e["exact"], r, ctx.digits)
    detail = f"u_r vs exact cos/sin Gaussian velocity, worst {where}"
    lib_err, lib_note = _p1_library()
    if lib_err is not None:
        detail += f"; installed flow_matching float64 worst rel. error {lib_err:.1e} on (0,1) ({lib_note})"
        if lib_err > 1e-10:
            err = max(err, lib_err)
    return NumericOutcome(err, 10.0 ** (5 - ctx.digits), ctx.digits, detail)


def _p1_library() -> tuple[float | None, str]:
    """Run flow_matching's own ScheduleTransformedModel (float64) on the exact linear Gaussian velocity."""
    try:
        import torch
        from flow_matching.path.scheduler import CondOTScheduler, CosineScheduler, ScheduleTransformedModel
        from flow_matching.utils import ModelWrapper
    except ImportError:
        return None, "flow_matching not installed"
    lin = family("linear")
    v_lin = sp.lambdify((t, x), gaussian_fields(lin.alpha, lin.beta)["velocity"], modules="math")
    vp = family("vp").bound
    exact = sp.lambdify((r, x), gaussian_fields(vp.alpha.subs(t, r), vp.beta.subs(t, r), r)["velocity"], modules="mpmath")

    class Exact(ModelWrapper):
        def __init__(self):
            super().__init__(model=torch.nn.Identity())

        def forward(self, x, t, **extras):  # noqa: ARG002 - flow_matching passes extras through
            tt = t.expand_as(x) if t.ndim else t.expand_as(x)
            return torch.tensor([v_lin(float(a), float(b)) for a, b in zip(tt.flatten(), x.flatten())], dtype=x.dtype).reshape(x.shape)

    model = ScheduleTransformedModel(Exact(), CondOTScheduler(), CosineScheduler())
    worst = 0.0
    for rv in (0.05, 0.3, 0.5, 0.8, 0.95):
        xs = torch.tensor(X_GRID, dtype=torch.float64)
        got = model(x=xs, t=torch.full_like(xs, rv))
        for xv, g in zip(X_GRID, got.tolist()):
            ref = exact(mpmath.mpf(rv), mpmath.mpf(xv))
            worst = max(worst, float(abs(g - ref) / abs(ref)))
    at_one = model(x=torch.tensor([0.4], dtype=torch.float64), t=torch.tensor([1.0], dtype=torch.float64))
    limit = sp.limit(gaussian_fields(vp.alpha.subs(t, r), vp.beta.subs(t, r), r)["velocity"].subs(x, sp.Rational(2, 5)), r, 1, "-")
    return worst, f"at r = 1 it returns {float(at_one[0])!r} where the limit is {float(limit):.6g}"


# ------------------------------------------------------------------------------------ P2
@lru_cache(maxsize=8)
def _p2_exprs(shift_fn: Callable) -> dict[str, sp.Expr]:
    sd3 = family("sd3")
    shift = sd3.params[0].symbol
    lin = family("linear")
    sigma = 1 - t
    shifted = shift_fn(sigma, shift)  # diffusers' sigma' = our alpha_sd3
    tau = 1 - shifted  # linear time of the shifted grid point
    res_alpha = lin.alpha.subs(t, tau) - sd3.alpha
    res_beta = lin.beta.subs(t, tau) - sd3.beta
    # lambda_sd3 - lambda_lin = -log(shift)  <=>  the SNR ratio is exactly 1/shift
    res_lam = (sd3.beta / sd3.alpha) / (lin.beta / lin.alpha) - 1 / shift
    sd3b = sd3.bound
    tau_b = sd3.bind(tau)
    b_lin = gaussian_fields(lin.alpha, lin.beta)["velocity"]
    lhs = gaussian_fields(sd3b.alpha, sd3b.beta)["velocity"]
    rhs = sp.diff(tau_b, t) * b_lin.subs(t, tau_b)  # C4 with c = 1
    return {"res_alpha": res_alpha, "res_beta": res_beta, "res_lam": res_lam, "lhs": lhs, "rhs": rhs, "shift": shift}


def _p2_symbolic(ctx: Context) -> SymbolicOutcome:
    e = _p2_exprs(FORMULAS["diffusers.shift"])
    bad = [k for k in ("res_alpha", "res_beta", "res_lam") if not _zero(e[k])]
    if not bad and not _zero(e["lhs"] - e["rhs"]):
        bad.append("velocity b_sd3 - tau' b_lin(tau)")
    if bad:
        return SymbolicOutcome("failed", "nonzero residual(s): " + ", ".join(bad))
    return SymbolicOutcome(
        "proved",
        "alpha_sd3 = alpha_lin(tau), beta_sd3 = beta_lin(tau) with tau = 1 - sigma', c = 1; "
        "lambda_sd3 = lambda_lin - log(shift); b_sd3 = tau' b_lin(tau) on Gaussian data",
    )


def _p2_numeric(ctx: Context) -> NumericOutcome:
    e = _p2_exprs(FORMULAS["diffusers.shift"])
    err, where = _mp_error(e["lhs"], e["rhs"], t, ctx.digits)
    detail = f"b_sd3 vs tau' b_lin(tau) (shift 3), worst {where}"
    lib = _p2_library()
    if lib is not None:
        lib_err, note = lib
        detail += f"; {note}"
        if lib_err > 0:
            err = math.inf
    return NumericOutcome(err, 10.0 ** (5 - ctx.digits), ctx.digits, detail)


def _p2_library() -> tuple[float, str] | None:
    """The shift formula *as written in the installed diffusers source* (read, not imported --
    importing diffusers costs ~10 s): every ``sigmas = ... shift ...`` assignment in
    ``FlowMatchEulerDiscreteScheduler`` is parsed with our safe parser and compared with
    :data:`FORMULAS` ``["diffusers.shift"]``. Returns ``(0 or 1, note)``, None when not installed."""
    import ast
    from importlib import metadata

    from lazysi.symbolic.expr import parse_expression

    try:
        dist = metadata.distribution("diffusers")
    except metadata.PackageNotFoundError:
        return None
    path = dist.locate_file("diffusers/schedulers/scheduling_flow_match_euler_discrete.py")
    if not path.exists():
        return 1.0, "diffusers installed but its FlowMatchEulerDiscreteScheduler source was not found"
    tree = ast.parse(path.read_text())
    sig, shift = sp.Symbol("sigmas", positive=True), family("sd3").params[0].symbol
    ours = sp.sympify(FORMULAS["diffusers.shift"](sig, shift))
    found, bad = 0, []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and ast.unparse(node.targets[0]) == "sigmas"
                and "shift" in ast.unparse(node.value) and not isinstance(node.value, ast.Call)):
            text = ast.unparse(node.value).replace("self.shift", "shift")
            theirs = parse_expression(text, {"sigmas": sig, "shift": shift})
            found += 1
            if sp.cancel(theirs - ours) != 0:
                bad.append(text)
    if not found:
        return 1.0, "no `sigmas = shift ...` assignment found in diffusers' FlowMatchEulerDiscreteScheduler"
    if bad:
        return 1.0, f"diffusers {dist.version} source differs: {bad}"
    return 0.0, f"diffusers {dist.version} source: {found} shift assignments equal the formula"


# ------------------------------------------------------------------------------------ P3
_SCHEDULES_P3 = (("linear", {}), ("vp", {"sigma": 1}), ("sd3", {"shift": 3}), ("point-mass", {"sigma": 0.5}))


@lru_cache(maxsize=8)
def _p3_generic(sit: Callable) -> sp.Expr:
    a, b = sp.Function("alpha")(t), sp.Function("beta")(t)
    ez = sp.Symbol("eta_z", real=True)
    eta_x = (x - a * ez) / b
    vel = sp.diff(a, t) * ez + sp.diff(b, t) * eta_x
    score = -ez / a
    return sit(vel, x, b, sp.diff(b, t), a, sp.diff(a, t)) - score


def _p3_symbolic(ctx: Context) -> SymbolicOutcome:
    sit = FORMULAS["sit.get_score_from_velocity"]
    res = _p3_generic(sit)
    if not _zero(res):
        return SymbolicOutcome("failed", f"residual {sp.simplify(res)} for generic alpha(t), beta(t)")
    lin = family("linear")
    v = sp.Symbol("v")
    lin_form = sit(v, x, lin.beta, sp.diff(lin.beta, t), lin.alpha, sp.diff(lin.alpha, t)) - (t * v - x) / (1 - t)
    if not _zero(lin_form):
        return SymbolicOutcome("failed", f"linear form differs from (t v - x)/(1 - t) by {sp.simplify(lin_form)}")
    return SymbolicOutcome("proved", "s = ((beta/beta_dot) b - x)/(alpha^2 - (beta/beta_dot) alpha_dot alpha) for generic alpha, beta; linear: (t b - x)/(1 - t)")


def _p3_numeric(ctx: Context) -> NumericOutcome:
    sit = FORMULAS["sit.get_score_from_velocity"]
    worst, where = 0.0, ""
    for name, values in _SCHEDULES_P3:
        s = family(name, **values).bound
        f = gaussian_fields(s.alpha, s.beta)
        got = sit(f["velocity"], x, s.beta, s.beta_dot, s.alpha, s.alpha_dot)
        err, w = _mp_error(got, f["score"], t, ctx.digits)
        if not err <= worst:
            worst, where = err, f"{name} {w}"
    return NumericOutcome(worst, 10.0 ** (5 - ctx.digits), ctx.digits, f"SiT score of the exact velocity vs exact score on N(0.3, 1.5^2), worst {where}")


register(Claim(
    "P1",
    "flow_matching's scale-time schedule transform is our C4 (tau = t_r, c = s_r); checked linear -> cos/sin",
    ("flow_matching 1.0.10 ScheduleTransformedModel.forward", "their alpha = our beta, their sigma = our alpha"),
    _p1_symbolic, _p1_numeric, relates=("tau", "c", "tau'", "c'", "u_r"),
))
register(Claim(
    "P2",
    "diffusers' SD3/FLUX shift = linear schedule under the time change tau = 1 - sigma' (c = 1; lambda - log shift)",
    ("FlowMatchEulerDiscreteScheduler static shift", "sigma = 1 - t"),
    _p2_symbolic, _p2_numeric, relates=("alpha_sd3", "beta_sd3", "lambda_sd3", "b_sd3"),
))
register(Claim(
    "P3",
    "SiT's score-from-velocity s = ((beta/beta_dot) b - x)/(alpha^2 - (beta/beta_dot) alpha_dot alpha) holds for every schedule",
    ("SiT transport/path.py get_score_from_velocity", "their alpha = our beta, their sigma = our alpha"),
    _p3_symbolic, _p3_numeric, relates=("score", "velocity"),
))


# ------------------------------------------------------------------------- mutants for --mutate
@register_mutants
def PEER_MUTANTS():  # noqa: N802 - a factory registered for lazysi.proofs.mutation
    """Wrong versions of each peer formula; the matching P claim must fail on each."""

    def fm_wrong_dt(a_r, s_r_, da_r, ds_r_, snr_inverse, orig):
        out = _fm_transform(a_r, s_r_, da_r, ds_r_, snr_inverse, orig)
        a_t, sg_t, _, _ = orig(out["t_r"])
        out["dt_r"] = out["dt_r"] / sg_t  # sigma_t^2 -> sigma_t
        return out

    def fm_wrong_s(a_r, s_r_, da_r, ds_r_, snr_inverse, orig):
        out = _fm_transform(a_r, s_r_, da_r, ds_r_, snr_inverse, orig)
        out["s_r"] = out["s_r"] * sp.Rational(1001, 1000)
        return out

    def sit_sign(velocity, xx, alpha_t, d_alpha_t, sigma_t, d_sigma_t):
        ratio = alpha_t / d_alpha_t
        return (ratio * velocity - xx) / (sigma_t**2 + ratio * d_sigma_t * sigma_t)

    def sit_no_ratio(velocity, xx, alpha_t, d_alpha_t, sigma_t, d_sigma_t):
        ratio = alpha_t / d_alpha_t
        return (velocity - xx) / (sigma_t**2 - ratio * d_sigma_t * sigma_t)

    def shift_wrong(sigma, shift):
        return shift * sigma / (1 + shift * sigma)

    def shift_nudged(sigma, shift):
        return shift * sigma / (1 + (shift - 1) * sigma) * sp.Rational(1001, 1000)

    cases = [
        ("flow_matching.schedule_transform", "P1", "dt_r with sigma_t instead of sigma_t^2", fm_wrong_dt),
        ("flow_matching.schedule_transform", "P1", "s_r scaled by 1.001", fm_wrong_s),
        ("sit.get_score_from_velocity", "P3", "sign of the var correction flipped", sit_sign),
        ("sit.get_score_from_velocity", "P3", "velocity not multiplied by alpha/alpha'", sit_no_ratio),
        ("diffusers.shift", "P2", "1 + shift sigma in the denominator", shift_wrong),
        ("diffusers.shift", "P2", "shifted sigma scaled by 1.001", shift_nudged),
    ]
    for i, (key, cid, desc, fn) in enumerate(cases):
        def apply(key=key, fn=fn):
            original = FORMULAS[key]
            FORMULAS[key] = fn

            def undo():
                FORMULAS[key] = original

            return undo

        yield Mutant(f"{key}~{i}", "symbolic", cid, key, desc, apply)
