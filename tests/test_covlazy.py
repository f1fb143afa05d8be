"""Covariance-aware lazy samplers: generated kernels vs mpmath, exactness on anisotropic Gaussians
(which no scalar lazy schedule achieves, C15), measured orders on a mixture, NFE, errors."""
from __future__ import annotations

import math

import mpmath
import pytest
import torch

from dataclasses import replace
from types import SimpleNamespace

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.fields.gaussian import MixtureProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.models.moments import approx_for_model
from lazysi.numeric.sampling.frame import GaussianTerm, frame_kernels
from lazysi.numeric.sampling.frames import FRAMES, SamplingSetup
from lazysi.numeric.sampling.generate import CountingProvider, generate, sample
from lazysi.numeric.sampling.solvers import SOLVERS, integrate, provider_ode
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.numeric.models.zoo import load_model
from lazysi.symbolic.families import family
from oracle import three_d_mixture

mpmath.mp.dps = 50
LINEAR = NumericSchedule(family("linear"))


def _generate_cov(provider, sampler, steps, indices, seed, shape, approx, *, grid=None, sigma=1.0):
    return generate(sampler, provider, steps, indices, seed, shape, setup=SamplingSetup(sigma=sigma, approx=approx), grid=grid)


def _sample_cov(provider, sampler, steps, n, seed, shape, approx, *, batch, sigma=1.0, progress=None):
    return sample(sampler, provider, steps, n, seed, shape, batch=batch, setup=SamplingSetup(sigma=sigma, approx=approx),
                  progress=progress)


def _cov_lazy_solve(provider, approx, grid, x0, order=1, method=None, lower_order_final=False, denoise_final=False):
    """One exponential integrator of the registry's solvers over ``grid`` (the frame's step solvers)."""
    method = method or {1: "euler", 2: "ab2"}[order]
    solver = SOLVERS[{"euler": "exp-euler", "ab2": "exp-ab2", "pc": "exp-pc"}[method]]
    if method == "pc":
        solver = replace(solver, low_final_below=10**9 if lower_order_final else 0)
    if denoise_final:
        solver = replace(solver, final=SOLVERS["exp-pc-denoise"].final, low_final=None)
    term = GaussianTerm(provider, approx, tuple(x0.shape[1:]), x0.dtype, x0.device)
    return integrate(solver, term, grid, x0.reshape(x0.shape[0], -1)).reshape(x0.shape)


#: the call shapes of the former covlazy module, expressed through the one generate path
covlazy = SimpleNamespace(
    kernels_for=frame_kernels, approx_for_model=approx_for_model, GaussianApprox=GaussianApprox,
    generate_cov=_generate_cov, sample_cov=_sample_cov, cov_lazy_solve=_cov_lazy_solve,
    make_cov_grid=lambda kind, schedule, steps, sigma=1.0: FRAMES["gaussian"].grid(kind, schedule, steps, SamplingSetup(sigma=sigma)),
)


def _mp_var(tv, d):
    """Marginal variance of I_t = (1 - t) Z + t X in a direction of variance d (definition)."""
    return (1 - tv) ** 2 + tv**2 * d


@pytest.mark.parametrize("d", [1e-4, 0.3, 2.0, 20.0])
def test_generated_kernels_match_mpmath(d):
    kern = covlazy.kernels_for(LINEAR)
    dt = torch.tensor([d], dtype=torch.float64)
    times = [0.0, 0.1, 0.37, 0.5, 0.8, 0.999, 1.0]
    md = mpmath.mpf(d)
    for tv in times:
        mt = mpmath.mpf(tv)
        phi = float(kern("phi", torch.tensor(tv, dtype=torch.float64), dt))
        assert phi == pytest.approx(float(mpmath.sqrt(_mp_var(mt, md))), rel=1e-13)
        k = float(kern("k", torch.tensor(tv, dtype=torch.float64), dt))
        k_ref = mpmath.diff(lambda s: mpmath.log(mpmath.sqrt(_mp_var(s, md))), mt) if 0 < tv < 1 else \
            (md * mt - (1 - mt)) / _mp_var(mt, md)
        assert k == pytest.approx(float(k_ref), rel=1e-11, abs=1e-12)
    for t0, t1 in [(0.0, 0.25), (0.25, 0.6), (0.6, 0.99), (0.9, 1.0), (0.0, 1.0)]:
        f_inc = float(kern("F", torch.tensor(t1, dtype=torch.float64), dt) - kern("F", torch.tensor(t0, dtype=torch.float64), dt))
        g_inc = float(kern("G", torch.tensor(t1, dtype=torch.float64), dt) - kern("G", torch.tensor(t0, dtype=torch.float64), dt))
        peak = 1 / (1 + md)  # minimum of the variance: split the quadrature there
        pts = [t0, peak, t1] if t0 < peak < t1 else [t0, t1]
        f_ref = mpmath.quad(lambda s: 1 / mpmath.sqrt(_mp_var(s, md)), pts)
        g_ref = mpmath.quad(lambda s: s / mpmath.sqrt(_mp_var(s, md)), pts)
        h_inc = float(kern("H", torch.tensor(t1, dtype=torch.float64), dt) - kern("H", torch.tensor(t0, dtype=torch.float64), dt))
        h_ref = mpmath.quad(lambda s: s**2 / mpmath.sqrt(_mp_var(s, md)), pts)
        assert f_inc == pytest.approx(float(f_ref), rel=1e-9)
        assert g_inc == pytest.approx(float(g_ref), rel=1e-9)
        assert h_inc == pytest.approx(float(h_ref), rel=1e-9)


def _exact_map(card, z):
    mu = torch.tensor(card["mean"], dtype=torch.float64)
    cov = torch.tensor(card["cov"], dtype=torch.float64)
    ev, u = torch.linalg.eigh(cov)
    return mu + z @ (u @ torch.diag(ev.sqrt()) @ u.T)


@pytest.mark.parametrize("sampler,steps,grid", [("lazy-cov", 1, "vp"), ("lazy-cov", 3, "uniform"),
                                                ("lazy-cov2", 1, "vp"), ("lazy-cov2", 4, "lambda"),
                                                ("lazy-cov-pc", 1, "vp"), ("lazy-cov-pc", 2, "uniform"),
                                                ("lazy-cov-pc", 5, "edm")])
def test_exact_on_anisotropic_gaussian(sampler, steps, grid):
    provider, card = load_model("gaussian-full")
    approx = covlazy.approx_for_model("gaussian-full", provider, card, "full")
    idx = list(range(16))
    x, nfe = covlazy.generate_cov(provider, sampler, steps, idx, 3, (8,), approx, grid=grid, sigma=1.0)
    assert nfe == steps
    z = per_sample_normal(3, idx, (8,))
    assert (x - _exact_map(card, z)).abs().max() < 1e-12


def test_controls_are_not_exact():
    """The test above can fail: a diagonal approximation of the non-diagonal Sigma, and the scalar
    lazy VP ODE (C15), both miss the exact one-step map by a visible amount."""
    provider, card = load_model("gaussian-full")
    idx = list(range(16))
    exact = _exact_map(card, per_sample_normal(3, idx, (8,)))
    diag = covlazy.approx_for_model("gaussian-full", provider, card, "diag")
    x, _ = covlazy.generate_cov(provider, "lazy-cov", 1, idx, 3, (8,), diag)
    assert (x - exact).abs().max() > 1e-2
    mu = torch.tensor(card["mean"], dtype=torch.float64)
    x, _ = generate("lazy-ode", provider, 1, idx, 3, (8,), setup=SamplingSetup(sigma=1.0, mu=mu))
    assert (x - exact).abs().max() > 1e-2


def test_lowrank_exact_when_rest_is_isotropic():
    """Low-rank + isotropic rest is exact when Sigma has that form."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    lam = torch.tensor([3.0, 1.5, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64)
    cov = q @ torch.diag(lam) @ q.T
    mu = torch.linspace(-1, 1, 6, dtype=torch.float64)
    from lazysi.numeric.fields.gaussian import GaussianProvider

    provider = GaussianProvider(LINEAR, mu, cov)
    approx = covlazy.GaussianApprox.from_moments(mu, cov, (6,), "lowrank", rank=2)
    assert approx.rest == pytest.approx(0.2, rel=1e-12)
    assert torch.allclose(approx.covariance(), cov, atol=1e-12)
    idx = list(range(8))
    x, _ = covlazy.generate_cov(provider, "lazy-cov2", 2, idx, 1, (6,), approx)
    z = per_sample_normal(1, idx, (6,))
    ev, u = torch.linalg.eigh(cov)
    assert (x - (mu + z @ (u @ torch.diag(ev.sqrt()) @ u.T))).abs().max() < 1e-12


def _mixture():
    return three_d_mixture(LINEAR)


def test_orders_on_mixture():
    """Measured convergence orders against a fine RK4 reference from the same noise: ~1 for
    lazy-cov (exponential Euler), ~2 for lazy-cov2 (exponential AB2)."""
    provider, approx = _mixture()
    x0 = per_sample_normal(0, range(32), (3,))
    from lazysi.numeric.sampling import grids

    ref = integrate("rk4", provider_ode(provider), grids.uniform(400), x0)
    for order, lo, hi in ((1, 0.8, 1.3), (2, 1.7, 2.6)):
        errs = []
        for n in (16, 32, 64):
            x = covlazy.cov_lazy_solve(provider, approx, grids.uniform(n), x0, order=order)
            errs.append(float((x - ref).abs().max()))
        slopes = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
        assert all(lo < s < hi for s in slopes), (order, errs, slopes)


def test_predictor_corrector_order_three_on_mixture():
    """lazy-cov-pc (exponential AB2 predictor + quadratic exponential corrector, one evaluation
    per step) converges at order ~3, against ~2 for the predictor alone; a corrector with a wrong
    coefficient or stale residual would fall back to order <= 2."""
    provider, approx = _mixture()
    x0 = per_sample_normal(0, range(32), (3,))
    from lazysi.numeric.sampling import grids

    ref = integrate("rk4", provider_ode(provider), grids.uniform(400), x0)
    errs = {}
    for method in ("ab2", "pc"):
        errs[method] = []
        for n in (8, 16, 32, 64):
            counter = CountingProvider(provider)
            x = covlazy.cov_lazy_solve(counter, approx, grids.uniform(n), x0, method=method)
            assert counter.calls == n  # one model evaluation per step, none at t = 1
            errs[method].append(float((x - ref).abs().max()))
    slope = math.log2(errs["pc"][0] / errs["pc"][-1]) / 3
    assert 2.6 < slope < 3.5, (errs, slope)
    assert all(p < a / 1.5 for p, a in zip(errs["pc"][1:], errs["ab2"][1:])) and errs["pc"][-1] < errs["ab2"][-1] / 4, errs


def test_pc_sampler_lowers_the_final_order_below_15_steps():
    """generate_cov('lazy-cov-pc') = the pc solver with a first-order final step below 15 steps
    (diffusers' lower_order_final), the plain pc solver from 15 steps on; the two differ."""
    provider, approx = _mixture()
    idx = list(range(8))
    x0 = per_sample_normal(2, idx, (3,))
    for steps, lof in ((4, True), (15, False)):
        x, nfe = covlazy.generate_cov(provider, "lazy-cov-pc", steps, idx, 2, (3,), approx, grid="uniform")
        grid = covlazy.make_cov_grid("uniform", provider.schedule, steps)
        same = covlazy.cov_lazy_solve(provider, approx, grid, x0, method="pc", lower_order_final=lof)
        other = covlazy.cov_lazy_solve(provider, approx, grid, x0, method="pc", lower_order_final=not lof)
        assert nfe == steps and torch.equal(x, same) and (x - other).abs().max() > 1e-6


def test_denoised_final_step_is_the_data_prediction():
    """denoise_final: the last step returns eta_X at the last evaluation, recovered from the
    velocity (no extra evaluation). Without a corrector the solver stands exactly where it last
    evaluated, so the result must equal the provider's eta_X there (recorded by a wrapper)."""
    provider, approx = _mixture()

    class Recording(CountingProvider):
        def fields(self, t, x):
            out = super().fields(t, x)
            self.last = out[0]
            return out

    x0 = per_sample_normal(5, range(8), (3,))
    grid = covlazy.make_cov_grid("uniform", provider.schedule, 4)
    rec = Recording(provider)
    x_d = covlazy.cov_lazy_solve(rec, approx, grid, x0, method="ab2", denoise_final=True)
    assert rec.calls == 4 and (x_d - rec.last).abs().max() < 1e-12
    x_pcd, nfe = covlazy.generate_cov(provider, "lazy-cov-pcd", 4, range(8), 5, (3,), approx, grid="uniform")
    x_pc, _ = covlazy.generate_cov(provider, "lazy-cov-pc", 4, range(8), 5, (3,), approx, grid="uniform")
    assert nfe == 4 and (x_pcd - x_pc).abs().max() > 1e-3  # the last step really differs


def test_denoised_final_step_with_exact_velocity_returns_eta_x():
    """With a single step the only evaluation is at (t0, x0): the result must be the provider's
    eta_X there to rounding (velocity -> eta_X recovery is exact algebra)."""
    provider, approx = _mixture()
    idx = list(range(8))
    x_d, nfe = covlazy.generate_cov(provider, "lazy-cov-pcd", 1, idx, 7, (3,), approx, grid="uniform")
    x0 = per_sample_normal(7, idx, (3,))
    t0 = torch.tensor(0.0, dtype=torch.float64)
    eta_x, _ = provider.fields(t0, x0)
    assert nfe == 1 and (x_d - eta_x).abs().max() < 1e-12


def test_errors():
    provider, card = load_model("gaussian-full")
    approx = covlazy.approx_for_model("gaussian-full", provider, card)
    with pytest.raises(ValueError, match="unknown sampler"):
        covlazy.generate_cov(provider, "lazy-cov9", 2, [0], 0, (8,), approx)
    with pytest.raises(ValueError, match="unknown grid"):
        covlazy.generate_cov(provider, "lazy-cov", 2, [0], 0, (8,), approx, grid="nope")
    with pytest.raises(ValueError, match="steps"):
        covlazy.generate_cov(provider, "lazy-cov", 0, [0], 0, (8,), approx)
    with pytest.raises(ValueError, match="unknown Gaussian approximation"):
        covlazy.GaussianApprox.from_moments(torch.zeros(2), torch.eye(2), (2,), "banded")


def test_sample_cov_is_independent_of_the_batch_size():
    """``sample_cov`` batches ``generate_cov`` over 0..n-1: same samples, bit for bit, for any batch,
    and equal to one ``generate_cov`` call on the whole range (per-sample noise)."""
    provider, card = load_model("mnist-gmm")
    approx = covlazy.approx_for_model("mnist-gmm", provider, card, "full")
    shape = tuple(card["data_shape"])
    seen = []
    a, nfe = covlazy.sample_cov(provider, "lazy-cov-pcd", 3, 7, 5, shape, approx, batch=3, sigma=1.9,
                                progress=seen.append)
    b, _ = covlazy.sample_cov(provider, "lazy-cov-pcd", 3, 7, 5, shape, approx, batch=7, sigma=1.9)
    whole, _ = covlazy.generate_cov(provider, "lazy-cov-pcd", 3, range(7), 5, shape, approx, sigma=1.9)
    assert nfe == 3 and seen == [3, 3, 1] and a.dtype == torch.float32 and a.shape == (7, *shape)
    assert torch.equal(a, b) and torch.equal(a, whole.to(torch.float32))
    with pytest.raises(ValueError, match="batch"):
        covlazy.sample_cov(provider, "lazy-cov-pcd", 3, 7, 5, shape, approx, batch=0)


def test_explicit_grid_equals_the_named_grid_and_is_checked():
    provider, card = load_model("gaussian-full")
    approx = covlazy.approx_for_model("gaussian-full", provider, card)
    named, _ = covlazy.generate_cov(provider, "lazy-cov-pc", 3, [0, 1], 0, (8,), approx, grid="vp", sigma=1.5)
    times = covlazy.make_cov_grid("vp", provider.schedule, 3, 1.5).tolist()
    explicit, _ = covlazy.generate_cov(provider, "lazy-cov-pc", 3, [0, 1], 0, (8,), approx, grid=times)
    assert torch.equal(named, explicit)
    with pytest.raises(ValueError, match="needs 4 times from 0 to 1"):
        covlazy.generate_cov(provider, "lazy-cov-pc", 3, [0], 0, (8,), approx, grid=[0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="needs 4 times from 0 to 1"):
        covlazy.generate_cov(provider, "lazy-cov-pc", 3, [0], 0, (8,), approx, grid=[0.1, 0.2, 0.5, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        covlazy.generate_cov(provider, "lazy-cov-pc", 3, [0], 0, (8,), approx, grid=[0.0, 0.5, 0.4, 1.0])
