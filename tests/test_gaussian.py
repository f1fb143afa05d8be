"""Exact Gaussian / mixture field providers against independent oracles.

Oracles: the mpmath evaluation (50 digits) of the sympy derivation, exact Gaussian conditioning
with torch.linalg on the full covariance, numerical quadrature of the joint density (mpmath.quad),
and the consistency relation ``x = alpha eta_Z + beta eta_X``.
"""
from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazysi.numeric.fields.gaussian import GaussianProvider, MixtureProvider
from lazysi.proofs.oracles import mp_gaussian_fields, mp_mixture_fields, mp_mixture_log_density
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.symbolic.families import family
from lazysi.symbolic.fields import ALPHA, BETA, D, M, X, gaussian_fields
from lazysi.symbolic.schedule import Schedule

F64 = torch.float64
FAMILIES = {
    "linear": {},
    "vp": {"sigma": 0.7},
    "point-mass": {"sigma": 0.7},
    "sd3": {"shift": 3},
    "polynomial": {},
    "ddpm": {},
}


def _mp_schedule(schedule, t: float):
    """alpha(t), beta(t) at 50 digits from the sympy schedule (t taken exactly)."""
    b = schedule.bound
    with mpmath.workdps(60):
        tt = mpmath.mpf(t)
        a = sp.lambdify(b.t, b.alpha, "mpmath")(tt)
        be = sp.lambdify(b.t, b.beta, "mpmath")(tt)
    return a, be


def _mp_list(v: torch.Tensor):
    return [mpmath.mpf(float(x)) for x in v.reshape(-1)]


def _rel_err(got: torch.Tensor, ref: list) -> float:
    scale = max([abs(r) for r in ref] + [mpmath.mpf(1)])
    return float(max(abs(mpmath.mpf(float(g)) - r) for g, r in zip(got.reshape(-1), ref)) / scale)


def _mixture(gen: torch.Generator, k: int, dim: int, kind: str):
    w = torch.rand(k, generator=gen, dtype=F64) + 0.05
    means = 2 * torch.randn(k, dim, generator=gen, dtype=F64)
    if kind == "iso":
        covs = torch.rand(k, generator=gen, dtype=F64) * 2 + 0.01
    elif kind == "diag":
        covs = torch.rand(k, dim, generator=gen, dtype=F64) * 2
        covs[0, 0] = 0.0  # a degenerate direction
    else:
        a = torch.randn(k, dim, dim, generator=gen, dtype=F64)
        covs = a @ a.transpose(1, 2) / dim
    return w, means, covs


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("kind", ["iso", "diag"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.one_of(st.floats(1e-6, 1 - 1e-6), st.sampled_from([1e-12, 0.5, 1 - 1e-12])), seed=st.integers(0, 10**6))
def test_mixture_fields_match_mpmath_oracle(name, kind, t, seed):
    schedule = family(name, **FAMILIES[name])
    ns = NumericSchedule(schedule)
    gen = torch.Generator().manual_seed(seed)
    k, dim = 3, 2
    w, means, covs = _mixture(gen, k, dim, kind)
    prov = MixtureProvider(ns, w, means, covs)
    a, b = _mp_schedule(schedule, t)
    # on the support of I_t (off-support states make the posterior weights ill-conditioned:
    # logits ~ |x - beta m|^2 / alpha^2, an inherent float64 limit, not a property of the code)
    x = prov.sample_marginal(t, 1, gen)
    ex, ez = prov.fields(torch.tensor(t, dtype=F64), x)
    # Rounding y = x - beta m (|error| <= eps (|x| + |beta m|)) moves y^2 / v by ~ 2 eps |x| |y| / v:
    # the condition number of the log-densities (large in a degenerate direction d = 0 near t = 1).
    v = float(a) ** 2 + float(b) ** 2 * (covs[:, None] if kind == "iso" else covs)
    eps = 2.0**-52
    size = x.abs() + float(b) * means.abs()
    y = (x - float(b) * means).abs() + eps * size
    cond = float((size * y / v).sum(-1).max())
    with mpmath.workdps(50):
        variances = [float(c) for c in covs] if kind == "iso" else [_mp_list(c) for c in covs]
        rx, rz = mp_mixture_fields(a, b, _mp_list(x), _mp_list(w), [_mp_list(m) for m in means], variances)
        spread = 1.0 + float(means.abs().max()) + float(x.abs().max()) / max(float(b), 1e-300)
        assert _rel_err(ex, rx) <= 1e-12 + 4 * eps * cond * spread, (ex, rx)
        # eta_Z = (x - beta eta_X)/alpha amplifies absolute errors by beta/alpha; compare on that scale
        zs = max(1.0, float(b) / float(a)) if a > 0 else 1.0
        assert _rel_err(ez, rz) <= (1e-12 + 4 * eps * cond * spread) * zs, (ez, rz)
        lp = prov.log_density(torch.tensor(t, dtype=F64), x)
        ref = mp_mixture_log_density(a, b, _mp_list(x), _mp_list(w), [_mp_list(m) for m in means], variances)
        assert abs(float(lp[0]) - ref) <= 1e-13 * (1 + abs(ref)) + 4 * eps * cond


@pytest.mark.parametrize("name", ["linear", "vp", "point-mass"])
def test_full_covariance_equals_gaussian_conditioning(name):
    """eta_X by exact conditioning with torch.linalg (Cov(X, I) Var(I)^-1) vs the eigenbasis formula."""
    ns = NumericSchedule(family(name, **FAMILIES[name]))
    gen = torch.Generator().manual_seed(1)
    dim = 5
    a = torch.randn(dim, dim - 2, generator=gen, dtype=F64)
    cov = a @ a.T  # rank deficient
    mean = torch.randn(dim, generator=gen, dtype=F64)
    prov = GaussianProvider(ns, mean, cov)
    x = torch.randn(4, dim, generator=gen, dtype=F64)
    for t in (0.1, 0.5, 0.93):
        tt = torch.tensor(t, dtype=F64)
        al, be = float(ns.alpha(tt)), float(ns.beta(tt))
        var_i = al**2 * torch.eye(dim, dtype=F64) + be**2 * cov
        ref_x = mean + (be * cov @ torch.linalg.solve(var_i, (x - be * mean).T)).T
        ref_z = (al * torch.linalg.solve(var_i, (x - be * mean).T)).T
        ex, ez = prov.fields(tt, x)
        assert torch.allclose(ex, ref_x, rtol=1e-12, atol=1e-12)
        assert torch.allclose(ez, ref_z, rtol=1e-12, atol=1e-12)
        assert torch.allclose(al * ez + be * ex, x, rtol=1e-13, atol=1e-13)
        lp = prov.log_density(tt, x)
        ref_lp = torch.distributions.MultivariateNormal(be * mean, var_i).log_prob(x)
        assert torch.allclose(lp, ref_lp, rtol=1e-11, atol=1e-11)


def test_full_mixture_matches_rotated_diagonal_oracle():
    """Full-covariance mixture vs the mpmath oracle in each component's eigenbasis (1 component
    at a time has to agree with rotation; the mixture weights use the rotation-invariant density)."""
    ns = NumericSchedule(family("vp", sigma=0.7))
    gen = torch.Generator().manual_seed(2)
    w, means, covs = _mixture(gen, 3, 3, "full")
    prov = MixtureProvider(ns, w, means, covs)
    x = torch.randn(2, 3, generator=gen, dtype=F64)
    t = 0.4
    ex, ez = prov.fields(torch.tensor(t, dtype=F64), x)
    a, b = _mp_schedule(family("vp", sigma=0.7), t)
    # independent: each component by torch.linalg conditioning, weights by MultivariateNormal
    al, be = float(a), float(b)
    logits, exs, ezs = [], [], []
    for k in range(3):
        var_i = al**2 * torch.eye(3, dtype=F64) + be**2 * covs[k]
        r = torch.linalg.solve(var_i, (x - be * means[k]).T).T
        exs.append(means[k] + be * r @ covs[k])
        ezs.append(al * r)
        logits.append(torch.log(w[k] / w.sum()) + torch.distributions.MultivariateNormal(be * means[k], var_i).log_prob(x))
    post = torch.softmax(torch.stack(logits), 0)
    ref_x = sum(post[k][:, None] * exs[k] for k in range(3))
    ref_z = sum(post[k][:, None] * ezs[k] for k in range(3))
    assert torch.allclose(ex, ref_x, rtol=1e-11, atol=1e-11)
    assert torch.allclose(ez, ref_z, rtol=1e-11, atol=1e-11)
    assert torch.allclose(prov.posterior_weights(torch.tensor(t, dtype=F64), x), post.T, rtol=1e-11, atol=1e-12)


def test_log_density_derivation_against_quadrature():
    """The derived log p_I(x) equals log of the numerically integrated joint density."""
    g = gaussian_fields()
    f = sp.lambdify((ALPHA, BETA, X, M, D), g.log_density, "mpmath")
    fx = sp.lambdify((ALPHA, BETA, X, M, D), g.eta_x, "mpmath")
    with mpmath.workdps(30):
        a, b, x, m, d = mpmath.mpf("0.6"), mpmath.mpf("0.8"), mpmath.mpf("0.3"), mpmath.mpf("-0.4"), mpmath.mpf("1.7")
        joint = lambda u: mpmath.npdf(u, m, mpmath.sqrt(d)) * mpmath.npdf(x, b * u, a)  # noqa: E731
        z = mpmath.quad(joint, [-mpmath.inf, m, mpmath.inf])
        assert abs(f(a, b, x, m, d) - mpmath.log(z)) < mpmath.mpf(10) ** -25
        mean = mpmath.quad(lambda u: u * joint(u), [-mpmath.inf, m, mpmath.inf]) / z
        assert abs(fx(a, b, x, m, d) - mean) < mpmath.mpf(10) ** -25


@pytest.mark.parametrize("kind", ["iso", "diag", "full"])
def test_point_mass_endpoints_finite_and_exact(kind):
    """At t = 0 of the point-mass schedule I_0 = 0: eta_X(0, 0) = E[X], eta_Z = 0; at t = 1
    eta_X = x, eta_Z = 0 (alpha = 0, beta = 1)."""
    ns = NumericSchedule(family("point-mass", sigma=0.7))
    gen = torch.Generator().manual_seed(3)
    w, means, covs = _mixture(gen, 3, 4, kind)
    prov = MixtureProvider(ns, w, means, covs)
    zero = torch.zeros(2, 4, dtype=F64)
    ex, ez = prov.fields(torch.tensor(0.0, dtype=F64), zero)
    assert torch.allclose(ex, (w / w.sum()) @ means, rtol=1e-14, atol=1e-14)
    assert torch.equal(ez, torch.zeros_like(ez))
    x1 = prov.sample_data(3, gen)
    ex, ez = prov.fields(torch.tensor(1.0, dtype=F64), x1)
    assert torch.allclose(ex, x1, rtol=1e-14, atol=1e-14) and torch.isfinite(ez).all()
    # batched times including both ends and the interior: all finite
    tt = torch.tensor([0.0, 1e-14, 0.5, 1 - 1e-14, 1.0], dtype=F64)
    xs = torch.cat([zero[:1], prov.sample_marginal(1e-14, 1, gen), prov.sample_marginal(0.5, 1, gen), prov.sample_marginal(1 - 1e-14, 1, gen), x1[:1]])
    ex, ez = prov.fields(tt, xs)
    assert torch.isfinite(ex).all() and torch.isfinite(ez).all()
    # the eps*-SDE drift is finite at the point-mass base (the ODE velocity is not: alpha_dot = inf)
    from lazysi.numeric.fields.providers import Diffusion

    assert torch.isfinite(prov.drift(tt[:4], xs[:4], Diffusion.optimal(1.0))).all()


def test_custom_schedule_generated_at_runtime_matches_builtin():
    custom = NumericSchedule(Schedule.from_strings("a*sqrt(t*(1-t))", "t", {"a": 0.7}))
    builtin = NumericSchedule(family("point-mass", sigma=0.7))
    gen = torch.Generator().manual_seed(4)
    mean, var = torch.randn(3, generator=gen, dtype=F64), torch.rand(3, generator=gen, dtype=F64)
    x = torch.randn(5, 3, generator=gen, dtype=F64)
    tt = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=F64)
    a = GaussianProvider(custom, mean, var).fields(tt, x)
    b = GaussianProvider(builtin, mean, var).fields(tt, x)
    assert all(torch.allclose(u, v, rtol=1e-13, atol=1e-13) for u, v in zip(a, b))


def test_float32_and_event_shapes():
    ns = NumericSchedule(family("linear"))
    gen = torch.Generator().manual_seed(5)
    mean = torch.randn(1, 2, 2, generator=gen, dtype=F64)
    prov = GaussianProvider(ns, mean, 0.5)
    x = torch.randn(3, 1, 2, 2, generator=gen, dtype=F64)
    ex64, ez64 = prov.fields(torch.tensor([0.1, 0.5, 0.9], dtype=F64), x)
    ex32, ez32 = prov.fields(torch.tensor([0.1, 0.5, 0.9]), x.float())
    assert ex32.dtype == torch.float32 and ex32.shape == x.shape
    assert torch.allclose(ex32.double(), ex64, rtol=1e-5, atol=1e-5)
    assert prov.sample_data(4, gen).shape == (4, 1, 2, 2)


def test_sampling_is_seeded():
    ns = NumericSchedule(family("vp"))
    gen = torch.Generator().manual_seed(6)
    w, means, covs = _mixture(gen, 2, 3, "full")
    prov = MixtureProvider(ns, w, means, covs)
    a = prov.sample_marginal(0.3, 5, torch.Generator().manual_seed(9))
    b = prov.sample_marginal(0.3, 5, torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.shape == (5, 3)


def test_bad_input_is_refused_with_a_clear_error():
    ns = NumericSchedule(family("linear"))
    with pytest.raises(ValueError, match="positive semi-definite"):
        GaussianProvider(ns, torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianProvider(ns, torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="variances"):
        GaussianProvider(ns, torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="weights"):
        MixtureProvider(ns, torch.tensor([-1.0, 2.0]), torch.zeros(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match="covs"):
        MixtureProvider(ns, torch.ones(2), torch.zeros(2, 2), torch.ones(3, 3))
    prov = GaussianProvider(ns, torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        prov.fields(0.5, torch.zeros(3, 4))


def test_oracle_catches_a_wrong_provider():
    """A perturbed mean (1e-9) must be detected by the same comparison as above."""
    ns = NumericSchedule(family("vp"))
    mean = torch.tensor([0.3, -0.2], dtype=F64)
    prov = GaussianProvider(ns, mean + 1e-9, torch.tensor([0.5, 2.0], dtype=F64))
    x = torch.tensor([[0.1, 0.4]], dtype=F64)
    a, b = _mp_schedule(family("vp"), 0.5)
    ex, _ = prov.fields(torch.tensor(0.5, dtype=F64), x)
    with mpmath.workdps(50):
        rx, _, _ = mp_gaussian_fields(a, b, _mp_list(x), _mp_list(mean), [mpmath.mpf("0.5"), mpmath.mpf(2)])
    assert _rel_err(ex, rx) > 1e-12


def test_point_mass_sde_drift_generated_with_endpoint_limits():
    """kappa (eta_X - x) of C12 from generated coefficients: equals the provider's eps*-drift inside,
    the mpmath value of beta_dot (eta_X - x)/(1 - beta) at 50 digits, and its finite limit at t = 1."""
    from lazysi.numeric.fields.providers import Diffusion

    sigma = 0.8
    ns = NumericSchedule(family("point-mass", sigma=sigma))
    gen = torch.Generator().manual_seed(7)
    a = torch.randn(3, 3, generator=gen, dtype=F64)
    cov = a @ a.T + 0.1 * torch.eye(3, dtype=F64)
    mean = torch.randn(3, generator=gen, dtype=F64)
    prov = GaussianProvider(ns, mean, cov)
    x = prov.sample_marginal(0.6, 4, gen)
    tt = torch.tensor(0.6, dtype=F64)
    assert torch.allclose(prov.point_mass_drift(tt, x), prov.drift(tt, x, Diffusion.optimal(1.0)), rtol=1e-12, atol=1e-12)
    # diagonal case against the mpmath oracle, near and at t = 1
    var = torch.tensor([0.3, 1.7], dtype=F64)
    prov = GaussianProvider(ns, mean[:2], var)
    for tv in (0.5, 1 - 1e-9):
        x = prov.sample_marginal(tv, 1, gen)
        got = prov.point_mass_drift(torch.tensor(tv, dtype=F64), x)
        a_t, b_t = _mp_schedule(family("point-mass", sigma=sigma), tv)
        with mpmath.workdps(50):
            ex, _, _ = mp_gaussian_fields(a_t, b_t, _mp_list(x), _mp_list(mean[:2]), _mp_list(var))
            ref = [(e - xv) / (1 - b_t) for e, xv in zip(ex, _mp_list(x))]
        assert _rel_err(got, ref) <= 1e-9 if tv > 0.9 else _rel_err(got, ref) <= 1e-12
    x1 = prov.sample_data(3, gen)
    d1 = prov.point_mass_drift(torch.tensor(1.0, dtype=F64), x1)
    limit = (var - sigma**2) / var * x1 + sigma**2 / var * mean[:2]  # d -> 1 limit of the rational coefficients
    assert torch.allclose(d1, limit, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="point-mass"):
        GaussianProvider(NumericSchedule(family("linear")), mean, 1.0).point_mass_drift(tt, x1[:, :1].repeat(1, 3))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_generated_coefficients_match_mpmath_including_endpoints(name):
    """Every generated per-direction coefficient (committed module) vs its sympy source at 50 digits,
    at t = 0, t = 1 (one-sided limits) and near both ends, for d = 0 (degenerate direction) and d > 0."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from oracle import close, mp_value

    from lazysi.numeric.fields.gaussian import GaussianFieldKernels
    from lazysi.symbolic.fields import D, field_kernels, point_mass_drift_kernels

    schedule = family(name, **FAMILIES[name])
    kern = GaussianFieldKernels(NumericSchedule(schedule))
    bound = schedule.bound
    exprs = {**field_kernels(bound), **point_mass_drift_kernels(bound)}
    for kname, expr in exprs.items():
        for dv in (0.0, 1.7):
            for tv in (0.0, 1e-12, 0.3, 1 - 1e-12, 1.0):
                if dv == 0.0 and tv in (0.0, 1.0):
                    continue  # the generated guards hold the d > 0 limit (documented)
                got = float(kern(kname, torch.tensor([tv], dtype=F64), torch.tensor(dv, dtype=F64))[0])
                ref = mp_value(expr.xreplace({D: sp.Float(dv) if dv else sp.Integer(0)}), bound.t, tv)
                assert close(got, ref, 1e-13, 1e-300), (name, kname, dv, tv, got, ref)


def _mp_drift_near_data_end(schedule, nu: float, delta: str, x, w, means, variances):
    """mpmath drift ``(alpha_dot - nu eps*/alpha) eta_Z + beta_dot eta_X`` at t = 1 - delta (60 digits),
    from the lambdified sympy schedule and the mpmath mixture fields."""
    b = schedule.bound
    f = {k: sp.lambdify(b.t, getattr(b, k), "mpmath") for k in ("alpha", "beta", "alpha_dot", "beta_dot", "eps_star")}
    with mpmath.workdps(60):
        tt = 1 - mpmath.mpf(delta)
        v = {k: fn(tt) for k, fn in f.items()}
        ex, ez = mp_mixture_fields(v["alpha"], v["beta"], x, w, means, variances)
        cz = v["alpha_dot"] - nu * v["eps_star"] / v["alpha"]
        return [cz * z + v["beta_dot"] * e for e, z in zip(ex, ez)]


@pytest.mark.parametrize("nu", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["iso", "diag", "full"])
def test_drift_finite_and_exact_at_point_mass_data_end(kind, nu):
    """At t = 1 of a point-mass schedule alpha_dot = -inf and eta_Z = 0, so ``(alpha_dot - eps/alpha)
    eta_Z`` is inf * 0 (NaN before); the drift now takes its limit ``-(alpha alpha_dot - eps) s``
    with the exact data score. Oracles: the mpmath drift at t = 1 - 1e-30 (diagonal mixtures), the
    data score by torch.linalg (full covariances), and C12's separately derived point-mass drift."""
    from lazysi.numeric.fields.providers import Diffusion

    sigma = 0.7
    sch = family("point-mass", sigma=sigma)
    ns = NumericSchedule(sch)
    gen = torch.Generator().manual_seed(11)
    w, means, covs = _mixture(gen, 3, 3, kind)
    if kind == "diag":  # the data score needs a density: no degenerate direction here
        covs = covs + 0.05
    elif kind == "full":  # and well-conditioned covariances (seed 11 draws an eigenvalue 1e-6)
        covs = covs + 0.1 * torch.eye(3, dtype=F64)
    prov = MixtureProvider(ns, w, means, covs)
    x = prov.sample_data(4, gen)
    one = torch.tensor(1.0, dtype=F64)
    diff = Diffusion.optimal(nu) if nu else Diffusion.zero()
    got = prov.drift(one, x, diff)
    assert torch.isfinite(got).all()
    if kind == "full":
        comps = torch.distributions.MultivariateNormal(means, covariance_matrix=covs)
        logp = comps.log_prob(x[:, None, :]) + torch.log(w / w.sum())  # (B, K)
        post = torch.softmax(logp, dim=1)
        prec = torch.linalg.inv(covs)
        s = -torch.einsum("bk,kij,bkj->bi", post, prec, x[:, None, :] - means[None])
        eps1 = nu * sigma**2 / 2  # eps* = sigma^2 / 2 on this schedule (C10)
        ref = (sigma**2 / 2 + eps1) * s + x  # -(alpha alpha_dot - eps)(1) s + beta_dot eta_X, eta_X = x
        assert torch.allclose(got, ref, rtol=1e-11, atol=1e-11)
    else:
        var = [float(c) if kind == "iso" else _mp_list(c) for c in covs]
        for i in range(x.shape[0]):
            ref = _mp_drift_near_data_end(sch, nu, "1e-30", _mp_list(x[i]), _mp_list(w), [_mp_list(m) for m in means], var)
            assert _rel_err(got[i], ref) <= 1e-11
    # batched times with the end among them agree with one-time calls
    tt = torch.tensor([0.3, 0.8, 1.0, 1.0], dtype=F64)
    assert torch.allclose(prov.drift(tt, x, diff)[2:], got[2:], rtol=1e-14, atol=1e-14)
    # on an accelerator the end is detected on the host from the grid's times (no device sync per
    # call); that decision agrees with the device-side one for numbers, 0-d and batched CPU times
    for tv, expect in [(1.0, True), (0.8, False), (0.3, False), (one, True), (tt, True), (tt[:2], False)]:
        coeff = ns.alpha_dot(torch.as_tensor(tv, dtype=F64)) - diff.eps_over_alpha(ns, torch.as_tensor(tv, dtype=F64))
        device_side = bool((~torch.isfinite(coeff) & (torch.as_tensor(tv, dtype=F64) >= 0.5)).any())
        assert prov._late_coefficient_infinite_on_host(tv, x, diff) is expect is device_side
    assert prov._late_coefficient_infinite_on_host(torch.ones(1, device="meta"), x, diff) is None
    if nu == 1.0:  # a single Gaussian: C12's point-mass form, derived separately, at t = 1
        g = GaussianProvider(ns, means[0], covs[0])
        assert torch.allclose(g.drift(one, x, diff), g.point_mass_drift(one, x), rtol=1e-11, atol=1e-11)
