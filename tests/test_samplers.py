"""Samplers (measured orders on the exact Gaussian flow map), time grids, Brownian paths."""
from __future__ import annotations

import math

import pytest
import torch

from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling.brownian import BrownianPath
from lazysi.numeric.fields.convert import NumericConversion
from lazysi.numeric.fields.gaussian import GaussianProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.sampling.solvers import ODE, SDE, SOLVERS, NonFiniteError, get_solver, integrate, provider_ode
from lazysi.symbolic.families import family

torch.set_num_threads(1)

MU, VAR = 0.7, 0.3


def _exact_flow(sch: NumericSchedule, t0: float, t1: float, x0: torch.Tensor) -> torch.Tensor:
    """Probability-flow map of N(MU, VAR) data: x_t - beta_t MU scales like sqrt(alpha^2 + beta^2 VAR)."""
    tt = torch.tensor([t0, t1], dtype=torch.float64)
    a, b = sch.alpha(tt), sch.beta(tt)
    sd = (a**2 + b**2 * VAR).sqrt()
    return b[1] * MU + sd[1] / sd[0] * (x0 - b[0] * MU)


def _slope(ns, errs):
    hs = [math.log(1.0 / n) for n in ns]
    le = [math.log(e) for e in errs]
    mh, me = sum(hs) / len(hs), sum(le) / len(le)
    return sum((h - mh) * (e - me) for h, e in zip(hs, le)) / sum((h - mh) ** 2 for h in hs)


_REF: dict = {}
X0 = (-1.5, 0.2, 1.1)


def _mp_reference(fam: str, t0: float, t1: float) -> torch.Tensor:
    """Endpoints of the bimodal-mixture ODE at 30 digits (order-16 GBS in mpmath): independent of torch."""
    from lazysi.proofs.oracles import Mixture, mp_ode_solve

    if fam not in _REF:
        mix = Mixture((0.3, 0.7), ((-1.0,), (1.5,)), (0.2, 0.5))
        _REF[fam] = torch.tensor([float(mp_ode_solve(family(fam), mix, t0, t1, [x], 30, 6)[0]) for x in X0], dtype=torch.float64).reshape(-1, 1)
    return _REF[fam]


@pytest.mark.parametrize("name,levels", [("euler", (16, 32, 64, 128)), ("midpoint", (8, 16, 32, 64)), ("heun", (8, 16, 32, 64)), ("rk4", (4, 8, 16, 32))])
@pytest.mark.parametrize("fam", ["linear", "vp"])
def test_ode_solver_order_on_mixture_against_mpmath(name, levels, fam):
    from lazysi.numeric.fields.gaussian import MixtureProvider

    sch = NumericSchedule(family(fam))
    prov = MixtureProvider(sch, torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([[-1.0], [1.5]], dtype=torch.float64), torch.tensor([0.2, 0.5], dtype=torch.float64))
    x0 = torch.tensor(X0, dtype=torch.float64).reshape(-1, 1)
    t0, t1 = 0.1, 0.9
    ref = _mp_reference(fam, t0, t1)
    errs = [float((integrate(name, provider_ode(prov), grids.uniform(n, t0, t1), x0) - ref).abs().max()) for n in levels]
    slope = _slope(levels, errs)
    assert abs(slope - get_solver(name).order) <= 0.15, (name, fam, slope, errs)


def test_exact_gaussian_flow_map():
    """Sanity of the providers + rk4 against the closed-form Gaussian flow map."""
    sch = NumericSchedule(family("vp"))
    prov = GaussianProvider(sch, torch.tensor([MU]), VAR)
    x0 = torch.linspace(-2, 2, 5, dtype=torch.float64).reshape(5, 1)
    out = integrate("rk4", provider_ode(prov), grids.uniform(64, 0.05, 0.95), x0)
    assert torch.allclose(out, _exact_flow(sch, 0.05, 0.95, x0), atol=1e-9)


def test_solver_registry_and_type_checks():
    assert set(SOLVERS) == {"euler", "midpoint", "heun", "heun-edm", "rk4", "ab2", "em", "heun_sde",
                            "exp-euler", "exp-ab2", "exp-pc", "exp-pc-denoise", "exp-ab3", "exp-pc4", "exp-pc4-denoise",
                            "exp-sde1", "exp-sde2", "exp-sde3", "exp-sde2-denoise"}
    assert {s.kind for s in SOLVERS.values()} == {"ode", "sde", "frame", "frame-sde"}
    with pytest.raises(ValueError, match="unknown solver"):
        get_solver("rk45")
    ode = ODE(lambda t, x: x)
    with pytest.raises(TypeError):
        integrate("em", ode, grids.uniform(4), torch.zeros(1, 1))
    with pytest.raises(ValueError):
        integrate("euler", ode, torch.tensor([0.0, 0.5, 0.4], dtype=torch.float64), torch.zeros(1, 1))


def test_non_finite_value_names_step_and_time():
    ode = ODE(lambda t, x: torch.where(t > 0.5, torch.full_like(x, float("nan")), torch.ones_like(x)))
    with pytest.raises(NonFiniteError) as info:
        integrate("euler", ode, grids.uniform(10), torch.zeros(2, 1, dtype=torch.float64), keep_path=True)
    err = info.value
    assert err.step == 6 and abs(err.t0 - 0.6) < 1e-12 and "step 6" in str(err)
    assert len(err.states) == 7 and torch.allclose(err.states[-1], torch.full((2, 1), 0.6, dtype=torch.float64))


def test_em_is_exact_for_brownian_motion_and_uses_the_path():
    """dX = g dW with constant g: EM reproduces g W on the grid exactly (same path, any grid)."""
    fine = grids.uniform(64)
    W = BrownianPath.sample(fine, 3, (2,), seed=5)
    sde = SDE(lambda t, x: torch.zeros_like(x), lambda t: torch.tensor(0.5, dtype=torch.float64))
    coarse = fine[::8]
    out = integrate("em", sde, coarse, torch.zeros(3, 2, dtype=torch.float64), W)
    assert torch.allclose(out, 0.5 * W.values[-1], atol=1e-14)


# ---------------------------------------------------------------------- grids
def test_grids_are_float64_increasing_with_exact_endpoints():
    sch = NumericSchedule(family("linear"))
    for g in (grids.uniform(7), grids.uniform_lambda(sch, 9, 0.01, 0.99), grids.edm(sch, 10), grids.shifted(8, 3.0)):
        assert g.dtype == torch.float64 and g.ndim == 1
        assert (g[1:] > g[:-1]).all()
    assert grids.uniform(7, 0.1, 0.9)[-1] == 0.9
    lam = sch.lam(grids.uniform_lambda(sch, 9, 0.01, 0.99))
    assert torch.allclose(lam[1:] - lam[:-1], (lam[-1] - lam[0]) / 9 * torch.ones(9, dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError):
        grids.uniform_lambda(sch, 4, 0.0, 1.0)
    with pytest.raises(ValueError):
        grids.uniform(0)


def test_edm_grid_reproduces_karras_sigmas():
    sch = NumericSchedule(family("vp"))
    g = grids.edm(sch, 6, 0.002, 80.0, 7.0)
    sig = torch.exp(-sch.lam(g[:-1]))
    i = torch.arange(6, dtype=torch.float64)
    want = (80.0 ** (1 / 7) + i / 5 * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    assert torch.allclose(sig, want, rtol=1e-10) and g[-1] == 1.0


def test_shifted_grid_is_the_sd3_time_change_of_a_uniform_grid():
    """Independent route: the SD3 shift of a uniform grid is tau(s) of the derived linear -> sd3 conversion."""
    conv = NumericConversion(family("linear"), family("sd3", shift=3))
    u = grids.uniform(16)
    assert torch.allclose(grids.shifted(16, 3.0), conv.tau(u), atol=1e-15)


# ---------------------------------------------------------------------- Brownian paths
def test_brownian_per_sample_seeding_is_batch_independent():
    times = grids.uniform(16)
    big = BrownianPath.sample(times, 5, (2,), seed=11)
    one = BrownianPath.sample(times, 1, (2,), seed=11, first_index=3)
    assert torch.equal(big.values[:, 3], one.values[:, 0])


def test_brownian_increment_statistics_and_refinement():
    times = grids.uniform(4)
    W = BrownianPath.sample(times, 4000, (), seed=2)
    inc = W.increments(times)
    assert abs(float(inc.var(dim=1).mean()) - 0.25) < 0.02
    R = W.refine(torch.tensor([0.1, 0.125, 0.6], dtype=torch.float64), torch.Generator().manual_seed(0))
    assert R.times.numel() == 8
    for tv in times.tolist():  # old values kept
        assert torch.equal(R.values[R.index(tv)], W.values[W.index(tv)])
    # bridge: W(0.125) - (W(0) + W(0.25))/2 has variance 0.25/4
    mid = R.values[R.index(0.125)] - 0.5 * (W.values[0] + W.values[1])
    assert abs(float(mid.var()) - 0.0625) < 0.006
    # increments of the refined path are independent N(0, dt)
    d = R.values[R.index(0.6)] - R.values[R.index(0.5)]
    assert abs(float(d.var()) - 0.1) < 0.01
    with pytest.raises(ValueError, match="not on the Brownian grid"):
        W.increment(0.0, 0.3)


def test_time_changed_path_is_brownian_and_identity_change_is_identity():
    s_grid = grids.uniform(32)
    tau = s_grid**2 * (3 - 2 * s_grid)  # a smooth increasing time change with tau(0)=0, tau(1)=1
    W = BrownianPath.sample(tau, 3000, (), seed=4)
    Wb = W.time_changed(s_grid, tau)
    inc = Wb.increments(s_grid)
    ds = s_grid[1:] - s_grid[:-1]
    assert torch.allclose(inc.var(dim=1), ds, rtol=0.12)
    same = W.time_changed(tau, tau)
    assert torch.allclose(same.values, W.values, atol=1e-15)
    # refinement on demand for times not on the path
    coarse = BrownianPath.sample(grids.uniform(4), 2, (), seed=0)
    with pytest.raises(ValueError, match="generator"):
        coarse.time_changed(s_grid, tau)
    assert coarse.time_changed(s_grid, tau, torch.Generator().manual_seed(0)).times.numel() == 33
