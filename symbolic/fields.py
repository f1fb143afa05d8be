"""Exact fields for Gaussian data, derived with sympy (claim C7).

Convention: ``I_t = alpha Z + beta X`` with ``Z ~ N(0, 1)`` independent of ``X``; t = 0 is the
base, t = 1 the data. For Gaussian data ``X ~ N(m, d)`` in one eigen-direction (scalar mean
``m``, variance ``d >= 0``) everything is *derived* here, never typed in:

* the posterior mean ``eta_X = E[X | I_t = x]`` by completing the square in the log joint
  density ``log p(X) + log p(x | X)`` (``solve(d/dX = 0)``);
* ``eta_Z = E[Z | I_t = x] = (x - beta eta_X) / alpha`` (the consistency relation, C1);
* the log marginal density of ``I_t`` by the (exact, for Gaussians) Laplace integral of the
  joint density over ``X``; its variance is read off as ``-1 / (d^2/dx^2 log p)``.

A full covariance ``Sigma = U diag(d) U^T`` reduces to this per eigen-direction: with
``y = U^T (x - beta m)`` the fields are ``eta_X = m + U (g_X(d) * y)``, ``eta_Z = U (g_Z(d) * y)``
and the log-density is ``-1/2 sum_j [log(2 pi v_j) + y_j^2 / v_j]`` with ``v_j = alpha^2 + beta^2 d_j``.
Gaussian mixtures are softmax-weighted sums over components (weights from the log-densities).

:func:`field_kernels` substitutes a schedule's ``alpha(t), beta(t)`` into the per-direction
coefficients; :func:`render_field_module` generates endpoint-safe torch code from them, with the
one-sided limits at t = 0 / t = 1 derived symbolically *as functions of d* (e.g. on the
point-mass schedule ``g_X(0) = d / sigma^2``, so ``eta_X(0, 0) = m``).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .codegen import (
    CodegenError,
    GeneratedFunction,
    TorchPrinter,
    compile_module,
    prepare,
    render_function,
    module_digest,
    module_preamble,
)
from .limits import endpoint_limit
from .schedule import Schedule, t

__all__ = [
    "ALPHA",
    "BETA",
    "X",
    "M",
    "D",
    "GaussianFields",
    "gaussian_fields",
    "FIELD_KERNEL_NAMES",
    "field_kernels",
    "render_field_module",
    "point_mass_sde",
    "point_mass_drift_kernels",
    "render_field_functions",
    "velocity_gain",
]

# Symbols of the per-direction derivation. alpha, beta > 0 inside (0, 1); d > 0 in the derivation
# (the results are rational in d and extend continuously to d = 0 whenever alpha > 0).
ALPHA = sp.Symbol("alpha", positive=True)
BETA = sp.Symbol("beta", positive=True)
X = sp.Symbol("x", real=True)
M = sp.Symbol("m", real=True)
D = sp.Symbol("d", positive=True)

_U = sp.Symbol("_u", real=True, nonnegative=True)  # the codegen's reflected variable u = 1 - t

FIELD_KERNEL_NAMES = ("gain_x", "gain_z", "inv_var", "var_ratio")


class GaussianFields:
    """The derived per-direction expressions (sympy, in ``ALPHA, BETA, X, M, D``).

    Attributes:
        eta_x: ``E[X | I = x]``.
        eta_z: ``E[Z | I = x]``.
        log_density: ``log p_{I}(x)``.
        var: the marginal variance of ``I`` (``-1 / d^2_x log p``).
        gain_x, gain_z: ``d eta_X / dx`` and ``d eta_Z / dx`` (the fields are affine in x:
            ``eta_X = m + gain_x (x - beta m)``, ``eta_Z = gain_z (x - beta m)``, checked exactly).
        derivation: human-readable steps.
    """

    def __init__(self) -> None:
        xs = sp.Symbol("X_data", real=True)
        # log joint density of (X, I) up to x-independent constants written out in full
        log_prior = -((xs - M) ** 2) / (2 * D) - sp.log(2 * sp.pi * D) / 2
        log_lik = -((X - BETA * xs) ** 2) / (2 * ALPHA**2) - sp.log(2 * sp.pi * ALPHA**2) / 2
        joint = log_prior + log_lik
        # posterior of X given I = x is Gaussian: its mean is the stationary point of the log joint
        stationary = sp.solve(sp.Eq(sp.diff(joint, xs), 0), xs)
        if len(stationary) != 1:
            raise RuntimeError(f"expected one stationary point, got {stationary}")
        eta_x = sp.factor(sp.cancel(stationary[0]))
        curvature = sp.cancel(sp.diff(joint, xs, 2))  # = -1/posterior variance, x-free
        if curvature.has(X) or curvature.has(xs):
            raise RuntimeError("log joint is not quadratic in X")
        # exact Laplace integral: int exp(joint) dX = exp(joint(X*)) sqrt(2 pi / -curvature)
        log_density = sp.simplify(joint.subs(xs, eta_x) + sp.log(2 * sp.pi / (-curvature)) / 2)
        log_density = sp.expand_log(log_density, force=True)
        var = sp.factor(sp.cancel(-1 / sp.diff(log_density, X, 2)))
        eta_z = sp.factor(sp.cancel((X - BETA * eta_x) / ALPHA))
        gain_x = sp.factor(sp.cancel(sp.diff(eta_x, X)))
        gain_z = sp.factor(sp.cancel(sp.diff(eta_z, X)))
        for name, residual in (
            ("eta_x affine", eta_x - (M + gain_x * (X - BETA * M))),
            ("eta_z affine", eta_z - gain_z * (X - BETA * M)),
            ("consistency", ALPHA * eta_z + BETA * eta_x - X),
            ("log density Gaussian", log_density + sp.log(2 * sp.pi * var) / 2 + (X - BETA * M) ** 2 / (2 * var)),
        ):
            if sp.cancel(sp.together(sp.expand_log(sp.expand(residual), force=True))) != 0 and sp.simplify(residual) != 0:
                raise RuntimeError(f"Gaussian field derivation failed its check {name!r}: residual {residual}")
        self.eta_x: sp.Expr = eta_x
        self.eta_z: sp.Expr = eta_z
        self.log_density: sp.Expr = log_density
        self.var: sp.Expr = var
        self.gain_x: sp.Expr = gain_x
        self.gain_z: sp.Expr = gain_z
        self.posterior_var: sp.Expr = sp.simplify(-1 / curvature)
        self.derivation = (
            "log p(X, I=x) = log N(X; m, d) + log N(x; beta X, alpha^2)",
            f"eta_X = argmax_X log p(X, I=x) = {sp.sstr(eta_x)}",
            f"Var[X | I=x] = -1 / d2/dX2 log p = {sp.sstr(self.posterior_var)}",
            f"eta_Z = (x - beta eta_X) / alpha = {sp.sstr(eta_z)}",
            f"log p_I(x) = log int exp(log p(X, I=x)) dX = {sp.sstr(log_density)}",
        )

    def kernels(self) -> dict[str, sp.Expr]:
        """Per-direction coefficients in ``ALPHA, BETA, D``: ``gain_x, gain_z``, ``inv_var = 1/v``
        and ``var_ratio = v / v|_{d=1}`` (finite and positive at both ends of a schedule for d > 0;
        the ``d = 1`` reference cancels in the mixture softmax; its log is taken in torch, the
        ratio is generated without a log so that no log of a rearranged negative factor appears)."""
        return {
            "gain_x": self.gain_x,
            "gain_z": self.gain_z,
            "inv_var": sp.factor(1 / self.var),
            "var_ratio": sp.factor(self.var / self.var.subs(D, 1)),
        }


@lru_cache(maxsize=1)
def gaussian_fields() -> GaussianFields:
    """The (cached) derivation; see :class:`GaussianFields`."""
    return GaussianFields()


def field_kernels(schedule: Schedule) -> dict[str, sp.Expr]:
    """The per-direction coefficients with ``alpha(t), beta(t)`` of ``schedule`` substituted
    (expressions in :data:`t`, ``D`` and the schedule's parameter symbols)."""
    names = {p.name for p in schedule.params}
    if D.name in names:
        raise CodegenError(f"schedule parameter name {D.name!r} clashes with the data-variance symbol")
    sub = {ALPHA: schedule.alpha, BETA: schedule.beta}
    return {k: v.xreplace(sub) for k, v in gaussian_fields().kernels().items()}


def point_mass_sde(schedule: Schedule, *, bind: bool = True) -> dict[str, sp.Expr]:
    """The optimal (eps*) SDE of a schedule in the form of C12 (t = 0 base, t = 1 data):
    ``dX = kappa (eta_X - X) dt + noise dW``.

    ``kappa`` is *solved* from ``b + eps* s = kappa (eta_X - x)`` as an identity in ``eta_X`` and
    ``x`` (with ``eta_Z = (x - beta eta_X)/alpha``); a ``ValueError`` is raised when no such
    x-independent ``kappa`` exists. Returns ``eps_star``, ``noise = sqrt(2 eps*)``, ``drift_gain``
    (kappa), parameters bound unless ``bind=False``.
    """
    sch = schedule.bound if bind else schedule
    ex = sp.Symbol("eta_X", real=True)
    eta_z = (X - sch.beta * ex) / sch.alpha
    drift = sch.alpha_dot * eta_z + sch.beta_dot * ex - sch.eps_star / sch.alpha * eta_z
    kappa_x = sp.simplify(-sp.diff(drift, X))  # coefficient of -x
    residual = sp.simplify(drift - kappa_x * (ex - X))
    if residual != 0:
        raise ValueError(f"b + eps* s is not of the form kappa (eta_X - x) on schedule {schedule.name!r}: residual {residual}")
    return {
        "eps_star": sp.simplify(sch.eps_star),
        "noise": sp.simplify(sp.sqrt(2 * sch.eps_star)),
        "drift_gain": kappa_x,
    }


def point_mass_drift_kernels(schedule: Schedule) -> dict[str, sp.Expr]:
    """For a schedule whose optimal SDE has the point-mass form ``dX = kappa (eta_X - X) dt + ...``
    (C12, solved by :func:`point_mass_sde`), the per-direction Gaussian drift
    coefficients: ``kappa (eta_X - x) = pm_drift_m * m + pm_drift_x * x`` in the eigenbasis, with
    ``pm_drift_x = kappa (gain_x - 1)`` and ``pm_drift_m = kappa (1 - beta gain_x)``. Their limits
    at t = 1 (where kappa = beta_dot/(1 - beta) is infinite and eta_X - x = 0) are finite and are
    generated. Empty for schedules without a point-mass base or without that form."""
    if not schedule.point_mass:
        return {}
    try:
        kappa = point_mass_sde(schedule, bind=False)["drift_gain"]
    except ValueError:
        return {}
    k = field_kernels(schedule)
    return {
        "pm_drift_x": sp.factor(sp.simplify(kappa * (k["gain_x"] - 1))),
        "pm_drift_m": sp.factor(sp.simplify(kappa * (1 - schedule.beta * k["gain_x"]))),
    }


def _decidable_limit(value: sp.Expr) -> bool:
    if value in (sp.oo, -sp.oo):
        return True
    if value.has(sp.nan, sp.zoo, sp.AccumBounds, sp.Limit) or value.has(t):
        return False
    return value.is_finite is not False and value.is_real is not False


_PROBE_T = (1e-12, 1e-9, 1e-6, 1e-3, 0.2, 0.5, 0.8, 1 - 1e-3, 1 - 1e-6, 1 - 1e-9, 1 - 1e-12)


def _form_error(name: str, source: sp.Expr, body: sp.Expr, reflected, params) -> float:
    """Worst float64 relative error (normalised by max(|ref|, 1e-12)) of a candidate form against
    mpmath (50 digits) at probe times near both ends, for d in {0, 0.7, 3} (d = 0 is a degenerate
    data direction, where rational forms tuned for d > 0 can cancel) and parameters 0.7 and 3."""
    import math

    import mpmath
    import torch

    pn = [(D, "d", 1.0)] + [(sym, f"_p{i}", 1.0) for i, (sym, _, _) in enumerate(params)]
    src = render_function(GeneratedFunction(name, source, body, (), reflected), t, pn)
    fn = compile_module(src, "fields_probe")[name]
    syms = [sym for sym, _, _ in pn]
    ref_f = sp.lambdify([t, *syms], source, modules="mpmath")
    tt = torch.tensor(_PROBE_T, dtype=torch.float64)
    worst = 0.0
    for dv in (0.0, 0.7, 3.0):
        for pv in ((0.7, 3.0) if params else (None,)):
            kw = {"d": torch.tensor(dv, dtype=torch.float64), **{p: pv for _, p, _ in pn[1:]}}
            with torch.no_grad():
                got = fn(tt, **kw).tolist()
            with mpmath.workdps(50):
                for tv, g in zip(_PROBE_T, got):
                    try:
                        r = ref_f(mpmath.mpf(tv), mpmath.mpf(dv), *([mpmath.mpf(pv)] * len(params) if params else []))
                    except (ZeroDivisionError, ValueError):
                        continue
                    if isinstance(r, mpmath.mpc) or not mpmath.isfinite(r):
                        continue
                    if not math.isfinite(g):
                        return math.inf
                    worst = max(worst, float(abs(mpmath.mpf(g) - r) / max(abs(r), mpmath.mpf(1e-12))))
    return worst


def _choose_forms(name: str, expr: sp.Expr, params) -> tuple[sp.Expr, sp.Expr | None]:
    """``(body, reflected)`` for one coefficient: the codegen's form choice made for d = 0 and for
    d > 0, their cross combinations, the most accurate over both (see :func:`_form_error`)."""
    import inspect

    candidates = []
    takes_values = "values" in inspect.signature(prepare).parameters
    for dv in (0.0, 0.7):
        kw = {"values": {D: dv, **{sym: default for sym, _, default in params}}} if takes_values else {}
        fn = prepare(name, expr, t, endpoints=(1,), **kw)
        candidates.append((fn.body, fn.reflected))
    # our own reflected candidate: t = 1 - u, rational parts re-expanded in u (no 1 - t cancellation)
    try:
        own = sp.factor(sp.cancel(expr.xreplace({t: 1 - _U})))
    except (sp.PolynomialError, NotImplementedError, RecursionError):
        own = None
    extra = [(candidates[0][0], candidates[1][1]), (candidates[1][0], candidates[0][1])]
    if own is not None and own.has(_U):
        extra += [(candidates[0][0], own), (candidates[1][0], own)]
    pairs = list(dict.fromkeys(candidates + extra))
    scored = [(_form_error(name, expr, b, r, params), i) for i, (b, r) in enumerate(pairs)]
    return pairs[min(scored)[1]]


def _render_one(name: str, expr: sp.Expr, params: list[tuple[sp.Symbol, str, float]]) -> str:
    """A generated function ``name(t, *, d, params...)`` with symbolic endpoint limits (in d)."""
    body, reflected = _choose_forms(name, expr, params)
    # the chosen form may be written in u = 1 - t (codegen's reflected variable); limits in t
    body_t = body.xreplace({_U: 1 - t})
    guards = []
    for end in (0, 1):
        value = endpoint_limit(body_t, end, t)
        if not _decidable_limit(value):
            raise NotImplementedError(f"limit of {name} at t = {end} is not decidable: {value}")
        guards.append((end, sp.simplify(value) if value not in (sp.oo, -sp.oo) else value))
    fn = GeneratedFunction(name, expr, body, (), reflected)
    all_params = [(D, "d", 1.0)] + params
    src = render_function(fn, t, all_params, doc=f"{name}(t, d) = {sp.sstr(expr)}  (one eigen-direction of variance d)")
    src = src.replace("d: float = 1.0", "d: torch.Tensor")
    # parameters may arrive as Python floats: make them tensors inside guard expressions
    printer = TorchPrinter(
        {t: "t", D: "d", **{sym: f"torch.as_tensor({pname}, dtype=t.dtype, device=t.device)" for sym, pname, _ in params}}
    )
    lines = []
    for end, value in guards:
        code = "math.inf" if value == sp.oo else "-math.inf" if value == -sp.oo else printer(value)
        if not value.free_symbols and value not in (sp.oo, -sp.oo):
            code = repr(float(value))
        lines.append(f"    _v = torch.where(t == {float(end)!r}, {code}, _v)")
    tail = "    return _v\n"
    if not src.endswith(tail):
        raise CodegenError("unexpected generated function layout")
    return src[: -len(tail)] + "\n".join(lines) + "\n" + tail


def velocity_gain(schedule: Schedule) -> sp.Expr:
    """Per-direction gain of the velocity on Gaussian data: with ``y = x - beta m`` in one
    eigen-direction of variance ``d``, ``b = alpha_dot eta_Z + beta_dot eta_X = beta_dot m + g y``
    with ``g = alpha_dot gain_z + beta_dot gain_x`` (``= v_dot / (2 v)``, ``v = alpha^2 + beta^2 d``;
    finite at both ends where ``alpha_dot eta_Z`` is inf * 0). An expression in t, ``D`` and the
    schedule's parameters."""
    k = field_kernels(schedule)
    return sp.factor(sp.cancel(schedule.alpha_dot * k["gain_z"] + schedule.beta_dot * k["gain_x"]))


def render_field_functions(exprs: dict[str, sp.Expr], params: list[tuple[sp.Symbol, str, float]] | None = None) -> list[str]:
    """One generated function ``name(t, *, d, params...)`` per entry (expressions in t and ``D``),
    with the endpoint limits derived as functions of ``d`` (raises ``NotImplementedError`` when a
    limit is not decidable)."""
    return [_render_one(k, v, list(params or [])) for k, v in exprs.items()]


def render_field_module(schedule: Schedule) -> str:
    """Module source of the Gaussian field coefficients for ``schedule``.

    Functions ``gain_x, gain_z, inv_var, var_ratio`` take ``(t, *, d, params...)`` where ``d``
    is a tensor of variances broadcasting against ``t``. Parameters stay keyword arguments when
    every endpoint limit is decidable for symbolic parameter values; otherwise they are bound
    (``PARAMS = {}``), as for the schedule kernels.
    """
    header = [
        f"Gaussian-data field coefficients, schedule {schedule.name}: alpha = {schedule.alpha}, beta = {schedule.beta}",
        "per eigen-direction of variance d: eta_X = m + gain_x (x - beta m), eta_Z = gain_z (x - beta m),",
        "v = alpha^2 + beta^2 d: inv_var = 1/v, var_ratio = v / (alpha^2 + beta^2)",
    ]
    attempts = [schedule]
    if schedule.params:
        attempts.append(schedule.bound)
    last: Exception | None = None
    for sch in attempts:
        params = [(p.symbol, p.name, float(sch.value_map[p.name])) for p in sch.params]
        exprs = field_kernels(sch)
        exprs.update(point_mass_drift_kernels(sch))
        try:
            funcs = render_field_functions(exprs, params)
        except (NotImplementedError, CodegenError) as exc:
            last = exc
            continue
        hdr = list(header)
        if sch is not schedule:
            values = ", ".join(f"{k}={v}" for k, v in schedule.value_map.items())
            hdr.append(f"parameters bound ({values}): endpoint limits depend on their values")
        digest = module_digest(exprs, "fields ", params)
        head = module_preamble(hdr, exprs, digest, generator="lazysi.symbolic.fields via lazysi.symbolic.codegen")
        pdict = "{" + ", ".join(f"{n!r}: {d!r}" for _, n, d in params) + "}"
        return "\n".join(head + funcs) + f"\nPARAMS = {pdict}\n"
    raise CodegenError(f"cannot generate Gaussian field kernels for schedule {schedule.name!r}: {last}")
