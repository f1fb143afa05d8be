"""Peer samplers of issues 15/16 (numeric/peer_solvers.py): measured orders on exact Gaussian oracles,
per-sample noise, NFE, grids."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import sympy as sp
import torch

from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling import peer_solvers as ps
from lazysi.numeric.fields.gaussian import GaussianProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.sampling.generate import CountingProvider
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.symbolic.families import family

MU = torch.tensor([0.7, -0.4, 0.1], dtype=torch.float64)
VAR = torch.tensor([0.3, 0.05, 1.5], dtype=torch.float64)


def _provider(mu=MU, var=VAR) -> GaussianProvider:
    return GaussianProvider(NumericSchedule(family("linear")), mu, var)


def _exact_path(t: float, x0: torch.Tensor, mu=MU, var=VAR) -> torch.Tensor:
    """Exact probability-flow map of N(mu, diag var) on the linear schedule from t = 0 (x0 = Z):
    ``x_t = t mu + sqrt((1 - t)^2 + t^2 var) x0``."""
    return t * mu + ((1 - t) ** 2 + t**2 * var).sqrt() * x0


def _slope(ns, errs) -> float:
    """Least-squares slope of log(err) against log(1/n)."""
    hs = [math.log(1.0 / n) for n in ns]
    le = [math.log(e) for e in errs]
    mh, me = sum(hs) / len(hs), sum(le) / len(le)
    return sum((h - mh) * (e - me) for h, e in zip(hs, le)) / sum((h - mh) ** 2 for h in hs)


def _x0(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


# ------------------------------------------------------------------------------ Adams-Bashforth weights
def test_ab_weights_are_the_classical_ones_on_a_uniform_grid():
    classical = {1: [1], 2: [Fraction(-1, 2), Fraction(3, 2)], 3: [Fraction(5, 12), Fraction(-16, 12), Fraction(23, 12)],
                 4: [Fraction(-9, 24), Fraction(37, 24), Fraction(-59, 24), Fraction(55, 24)]}
    for k, want in classical.items():
        got = ps.ab_weights([0.1 * j for j in range(k)], 0.1 * k)
        assert got == pytest.approx([float(w) for w in want], abs=1e-12), (k, got)


def test_ab_weights_match_sympy_integrals_of_lagrange_polynomials_on_uneven_nodes():
    nodes = [Fraction(0), Fraction(3, 10), Fraction(1, 2), Fraction(9, 10)]
    t_next = Fraction(13, 10)
    s = sp.Symbol("s")
    h = t_next - nodes[-1]
    for k in range(1, 5):
        sub = nodes[-k:]
        want = []
        for j, tj in enumerate(sub):
            lag = sp.Mul(*[(s - sp.Rational(tm)) / (sp.Rational(tj) - sp.Rational(tm)) for m, tm in enumerate(sub) if m != j])
            want.append(float(sp.integrate(lag, (s, sp.Rational(sub[-1]), sp.Rational(t_next))) / sp.Rational(h)))
        assert ps.ab_weights([float(v) for v in sub], float(t_next)) == pytest.approx(want, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("spacing", ["uniform", "uneven"])
def test_ab_step_local_order_with_exact_history(k, spacing):
    """One AB-k step from exact history on the Gaussian flow: local error O(h^{k+1})."""
    prov = _provider()
    x0 = _x0(4)
    ratios = [1.0, 1.0, 1.0, 1.0] if spacing == "uniform" else [0.7, 1.3, 0.9, 1.0]
    hs, errs = [], []
    for h in (0.04, 0.02, 0.01, 0.005):
        tn = 0.3  # (near t = 0.45 the leading error term of this flow crosses zero)
        times = [tn]
        for r in ratios[: k - 1]:
            times.insert(0, times[0] - r * h)
        f = [prov.drift(torch.tensor(t, dtype=torch.float64), _exact_path(t, x0)) for t in times]
        w = ps.ab_weights(times, tn + h)
        x1 = _exact_path(tn, x0) + h * sum(wj * fj for wj, fj in zip(w, f))
        hs.append(1 / h)
        errs.append(float((x1 - _exact_path(tn + h, x0)).abs().max()))
    slope = _slope(hs, errs)
    assert abs(slope - (k + 1)) <= 0.25, (k, spacing, slope, errs)


# ------------------------------------------------------------------------------ iPNDM
def test_ipndm_global_order_is_two_from_its_euler_warm_start():
    """Declared global order 2 (the Euler first step's O(h^2) local error dominates the AB4 body)."""
    prov = _provider()
    x0 = _x0()
    ns = (64, 128, 256, 512)
    exact = _exact_path(1.0, x0)
    errs = [float((ps.PEER_IMPLS["ipndm"].run(prov, n, x0, seed=0, indices=range(6)) - exact).abs().max()) for n in ns]
    slope = _slope(ns, errs)
    assert abs(slope - ps.DECLARED_ORDERS["ipndm"]) <= 0.3, (slope, errs)


def test_ipndm_lower_max_orders_are_adams_bashforth_and_max_order_four_beats_them():
    """max_order=1 is Euler (order 1); at 32 steps the AB4 body is more accurate than AB1/AB2."""
    prov = _provider()
    x0 = _x0()
    exact = _exact_path(1.0, x0)
    e1 = [float((ps.ipndm_solve(prov, grids.uniform(n), x0, max_order=1) - exact).abs().max()) for n in (64, 128, 256)]
    assert abs(_slope((64, 128, 256), e1) - 1.0) <= 0.15, e1
    err = {m: float((ps.ipndm_solve(prov, grids.uniform(32), x0, max_order=m) - exact).abs().max()) for m in (1, 2, 4)}
    assert err[4] < err[2] < err[1], err


GIVEN_GRID = torch.tensor([0.0, 0.1, 0.3, 0.6, 0.85, 1.0], dtype=torch.float64)


def _time_spy(seen: list[float]):
    """A counting provider that records the time of every model call in ``seen``."""

    class Spy(CountingProvider):
        def fields(self, t, x):
            seen.append(float(t))
            return super().fields(t, x)

    return Spy


def test_ipndm_uses_a_given_grid():
    prov = _provider()
    x0 = _x0()
    seen: list[float] = []
    Spy = _time_spy(seen)
    grid = GIVEN_GRID
    ps.PEER_IMPLS["ipndm"].run(Spy(prov), 5, x0, seed=0, indices=range(6), grid=grid)
    assert seen == grid[:-1].tolist()
    with pytest.raises(ValueError, match="points"):
        ps.PEER_IMPLS["ipndm"].run(prov, 4, x0, seed=0, indices=range(6), grid=grid)
    with pytest.raises(ValueError, match="t = 0 to t = 1"):
        ps.PEER_IMPLS["ipndm"].run(prov, 5, x0, seed=0, indices=range(6), grid=grid * 0.9)


# ------------------------------------------------------------------------------ DPM-Solver++(2M) SDE
def _sde_moments(prov, n: int):
    """Exact mean and variance of dpmpp_2m_sde_solve's output for x0 ~ N(0, I) and N(0, I) noise.
    On Gaussian data the fields are affine, so the output is affine in (x0, noise): read off the
    constant and each coefficient by running on unit inputs (the sampler's own code, no sampling)."""
    b = n + 2
    x0 = torch.zeros(b, 3, dtype=torch.float64)
    x0[1] = 1.0
    noise = torch.zeros(n, b, 3, dtype=torch.float64)
    for k in range(n):
        noise[k, k + 2] = 1.0
    out = ps.dpmpp_2m_sde_solve(prov, grids.uniform(n), x0, noise)
    c = out[0]
    return c, (out[1] - c) ** 2 + ((out[2:] - c) ** 2).sum(0)


def test_dpmpp_2m_sde_weak_order_against_the_exact_gaussian_law():
    """The SDE keeps every marginal, so X_1 ~ N(MU, diag VAR) exactly: the mean is exact and the
    variance error falls at the declared weak order."""
    prov = _provider()
    ns = (64, 128, 256, 512)
    var_errs = []
    for n in ns:
        m, v = _sde_moments(prov, n)
        assert torch.allclose(m, MU, atol=1e-12), (n, m)
        var_errs.append(float((v - VAR).abs().max()))
    slope = _slope(ns, var_errs)
    assert abs(slope - ps.DECLARED_ORDERS["dpm++2m-sde-w"]) <= 0.3, (slope, var_errs)


def test_dpmpp_2m_sde_with_eta_zero_is_dpmpp_2m_and_converges_at_order_two():
    """eta = 0 removes the noise: the DPM-Solver++(2M) ODE, order 2 on the exact flow map (on a
    uniform-in-t grid the lambda steps near t = 0 are very uneven, which costs a slowly fading
    logarithmic factor: measured error ratios per halving 3.3 -> 3.6 from 128 to 4096 steps)."""
    prov = _provider()
    x0 = _x0()
    exact = _exact_path(1.0, x0)
    ns = (512, 1024, 2048, 4096)
    errs = []
    for n in ns:
        noise = torch.full((n, *x0.shape), float("nan"), dtype=torch.float64)  # must be unused
        errs.append(float((ps.dpmpp_2m_sde_solve(prov, grids.uniform(n), x0, noise, eta=0.0) - exact).abs().max()))
    assert abs(_slope(ns, errs) - 2.0) <= 0.3, errs


# ------------------------------------------------------------------------------ dpm-adaptive
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("u0", [-1.0, 2.0])
def test_dpm_solver_pair_local_orders_on_the_exact_flow(order, u0):
    """The embedded pair of dpm-adaptive from an exact state (variance-exploding coordinates
    x~ = x_t / t, u = log(t/(1-t))): local errors O(h^order) (low) and O(h^{order+1}) (high)."""
    prov = _provider()
    x0 = _x0(4)

    def ve(u: float) -> torch.Tensor:
        t = 1.0 / (1.0 + math.exp(-u))
        return _exact_path(t, x0) / t

    def eps(x, u):
        t = torch.sigmoid(u)
        return prov.fields(t, t.reshape(-1, 1) * x)[1]

    lows, highs, ns = [], [], []
    for h in (0.2, 0.1, 0.05, 0.025):
        u = torch.full((4,), u0, dtype=torch.float64)
        lo, hi = ps.dpm_solver_pair(eps, ve(u0), u, u + h, order)
        lows.append(float((lo - ve(u0 + h)).abs().max()))
        highs.append(float((hi - ve(u0 + h)).abs().max()))
        ns.append(1 / h)
    assert abs(_slope(ns, lows) - order) <= 0.2 and abs(_slope(ns, highs) - (order + 1)) <= 0.2, (lows, highs)


def test_dpm_adaptive_error_falls_with_the_tolerance_and_counts_its_evaluations():
    prov = _provider(torch.tensor([0.1], dtype=torch.float64), 1.5)
    x0 = torch.tensor([[-1.0], [0.5], [2.0]], dtype=torch.float64)
    exact = 0.1 + 1.5**0.5 * x0
    errs, nfes = [], []
    for tol in (1e-4, 1e-6, 1e-8):
        counter = CountingProvider(prov)
        x, info = ps.dpm_adaptive_solve(counter, x0, rtol=tol, atol=tol, sigma_min=1e-6, sigma_max=1e6)
        assert counter.calls == info.calls == int(info.nfe.max()) and (info.nfe % 3 == 0).all()
        assert (info.nfe == 3 * (info.n_accept + info.n_reject)).all()
        errs.append(float((x - exact).abs().max()))
        nfes.append(int(info.nfe.max()))
    # a step-size controller gives no clean power law in the tolerance: monotone, and > 1000x over 4 decades
    assert errs[0] > errs[1] > errs[2] and errs[2] < errs[0] / 1000 and errs[2] < 1e-6, errs
    assert nfes[0] < nfes[1] < nfes[2], nfes


def test_dpm_adaptive_order_two_pair_also_converges():
    prov = _provider(torch.tensor([0.1], dtype=torch.float64), 0.3)
    x0 = torch.tensor([[-1.0], [0.5]], dtype=torch.float64)
    exact = 0.1 + 0.3**0.5 * x0
    e = [float((ps.dpm_adaptive_solve(prov, x0, order=2, rtol=tol, atol=tol, sigma_min=1e-6, sigma_max=1e6)[0] - exact).abs().max())
         for tol in (1e-3, 1e-6)]
    assert e[1] < e[0] / 100, e


def test_dpm_adaptive_steps_per_sample_do_not_depend_on_the_batch():
    prov = _provider()
    x0 = _x0()
    full, info = ps.dpm_adaptive_solve(prov, x0, rtol=1e-3, atol=1e-3)
    for j in (0, 4):
        one, info1 = ps.dpm_adaptive_solve(prov, x0[j:j + 1], rtol=1e-3, atol=1e-3)
        assert torch.equal(one[0], full[j]) and int(info1.nfe[0]) == int(info.nfe[j])
    assert len(set(info.nfe.tolist())) > 1  # the samples did take different steps


def test_dpm_adaptive_registry_entry():
    p = ps.PEER_IMPLS["dpm-adaptive"]
    with pytest.raises(ValueError, match="not a function of steps"):
        p.nfe(8)
    with pytest.raises(ValueError, match="grid must be None"):
        p.run(_provider(), 4, _x0(), seed=0, indices=range(6), grid=grids.uniform(4))
    assert "rtol=0.05" in p.settings and "atol=0.0078" in p.settings


# ------------------------------------------------------------------------------ per-sample noise
STOCHASTIC = [name for name, p in ps.PEER_IMPLS.items() if p.kind == "sde"]


def test_the_stochastic_peers_are_the_expected_ones():
    assert set(STOCHASTIC) == {"sde-dpm++2m", "sa-solver", "fm-euler-sde", "dpm++2m-sde-w"}


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_peer_noise_is_per_sample(name):
    if ps.PEER_IMPLS[name].package:
        pytest.importorskip(ps.PEER_IMPLS[name].package)
    prov = _provider()
    peer = ps.PEER_IMPLS[name]
    big_idx, small_idx = list(range(10)), [2, 5, 7]
    big = peer.run(prov, 6, per_sample_normal(3, big_idx, (3,)), seed=3, indices=big_idx)
    small = peer.run(prov, 6, per_sample_normal(3, small_idx, (3,)), seed=3, indices=small_idx)
    assert torch.equal(small, big[small_idx]), (small - big[small_idx]).abs().max()
    other = peer.run(prov, 6, per_sample_normal(3, small_idx, (3,)), seed=4, indices=small_idx)
    assert not torch.equal(other, small)  # the noise does depend on the seed


# ------------------------------------------------------------------------------ diffusers peers
DIFFUSERS = [name for name, p in ps.PEER_IMPLS.items() if p.package == "diffusers"]
FIRST_PEERS = ("fm-euler", "dpm++2m", "unipc")  # their orders from their own start time: tests/test_peers.py


@pytest.mark.parametrize("name", DIFFUSERS)
def test_diffusers_peer_runs_with_its_stated_nfe(name):
    pytest.importorskip("diffusers")
    peer = ps.PEER_IMPLS[name]
    for steps in (1, 3, 8):
        counter = CountingProvider(_provider())
        x = peer.run(counter, steps, _x0(), seed=0, indices=range(6))
        assert x.shape == (6, 3) and x.dtype == torch.float64 and torch.isfinite(x).all()
        assert counter.calls == peer.nfe(steps), (name, steps, counter.calls)


@pytest.mark.parametrize("name", DIFFUSERS)
def test_diffusers_peer_takes_a_custom_grid(name):
    """The model is evaluated at the grid's times (t = 0 as sigma = 1 - 1e-6), in float32."""
    pytest.importorskip("diffusers")
    seen: list[float] = []
    Spy = _time_spy(seen)
    grid = GIVEN_GRID
    x = ps.PEER_IMPLS[name].run(Spy(_provider()), 5, _x0(), seed=0, indices=range(6), grid=grid)
    assert torch.isfinite(x).all()
    want = (1.0 - (1.0 - grid[:-1]).clamp(max=1 - 1e-6).to(torch.float32).to(torch.float64)).tolist()
    assert seen == pytest.approx(want, abs=1e-7), (name, seen)


@pytest.mark.parametrize("name", [n for n in DIFFUSERS if ps.PEER_IMPLS[n].kind == "ode" and n not in FIRST_PEERS])
def test_diffusers_ode_peer_converges_to_the_exact_flow_map(name):
    """Conventions right (sigma = 1 - t, v = -b): the error at 64 steps is < 1/8 of that at 16."""
    pytest.importorskip("diffusers")
    prov = _provider()
    x0 = _x0()
    exact = _exact_path(1.0, x0)
    e = [float((ps.PEER_IMPLS[name].run(prov, n, x0, seed=0, indices=range(6)) - exact).abs().max()) for n in (16, 64)]
    assert e[1] < e[0] / 8, (name, e)


def test_final_data_prediction_is_what_unipc_bh2_computes_into_sigma_zero():
    """The stated fix for bh1/DEIS/SA (last step = x - sigma v) equals diffusers' own last step
    where diffusers can take it (UniPC bh2), to float32 rounding."""
    pytest.importorskip("diffusers")
    prov = _provider()
    x0 = _x0()
    own = ps._run_diffusers(ps._Recipe(lambda: ps._unipc("bh2"), True, False, False), prov, 5, x0, 0, range(6), None)
    ours = ps._run_diffusers(ps._Recipe(lambda: ps._unipc("bh2"), True, True, False), prov, 5, x0, 0, range(6), None)
    assert torch.allclose(own, ours, atol=1e-6), (own - ours).abs().max()


def test_unipc_bh1_needs_the_final_step_fix():
    """Without it diffusers 0.42.1 returns NaN (bh1: inf * 0 at sigma = 0): the reason for the fix."""
    pytest.importorskip("diffusers")
    bare = ps._run_diffusers(ps._Recipe(lambda: ps._unipc("bh1"), True, False, False), _provider(), 4, _x0(), 0, range(6), None)
    assert torch.isnan(bare).all()


def test_peers_reject_other_schedules_and_bad_rows():
    vp = GaussianProvider(NumericSchedule(family("vp")), MU, VAR)
    with pytest.raises(ValueError, match="linear schedule"):
        ps.PEER_IMPLS["ipndm"].run(vp, 4, _x0(), seed=0, indices=range(6))
    with pytest.raises(ValueError, match="indices"):
        ps.PEER_IMPLS["dpm++2m-sde-w"].run(_provider(), 4, _x0(), seed=0, indices=range(5))
    with pytest.raises(ValueError, match="steps"):
        ps.PEER_IMPLS["ipndm"].run(_provider(), 0, _x0(), seed=0, indices=range(6))


def test_written_dpmpp_2m_sde_equals_diffusers_sde_dpmsolver_pp_on_the_same_grid_and_noise():
    """Independent implementation check: diffusers' DPMSolverMultistepScheduler(sde-dpmsolver++,
    order 2, midpoint, flow sigmas) with the same sigmas (sigma = 1 - t) and the same per-step noise
    (``variance_noise``) takes the same steps, to float32 rounding. Grid from t = 0.05 (diffusers
    cannot start at sigma = 1); its last step into sigma = 0 is the same denoising step."""
    diffusers = pytest.importorskip("diffusers")
    prov = _provider()
    x0 = _x0()
    grid = torch.tensor([0.05, 0.2, 0.4, 0.55, 0.7, 0.85, 0.95, 1.0], dtype=torch.float64)
    n = grid.numel() - 1
    noise = torch.randn((n, *x0.shape), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ours = ps.dpmpp_2m_sde_solve(prov, grid, x0, noise)
    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                                  use_flow_sigmas=True, flow_shift=1.0, solver_order=2,
                                                  algorithm_type="sde-dpmsolver++")
    sched.set_timesteps(num_inference_steps=n)
    sig = (1.0 - grid[:-1]).to(torch.float32)
    sched.sigmas = torch.cat([sig, sig.new_zeros(1)])
    sched.timesteps = (sig * 1000).to(sched.timesteps.dtype)
    sched.set_begin_index(0)
    x = x0.to(torch.float32)
    for i, ts in enumerate(sched.timesteps):
        v = -prov.drift(1.0 - sched.sigmas[i].double(), x).float()
        x = sched.step(v, ts, x, variance_noise=noise[i].float(), return_dict=False)[0]
    assert torch.allclose(x.double(), ours, atol=2e-5), (x.double() - ours).abs().max()
