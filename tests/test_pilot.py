"""numeric/sampling/pilot.py: the ``dp`` grid from pilot trajectories, against independent oracles —
the exact Gaussian flow (teacher), a brute-force search over all grids with a directly computed
Euler cost (DP), and the exactness of exponential Euler for a Gaussian model in its own frame."""
from __future__ import annotations

import itertools

import pytest
import torch

from lazysi.numeric.fields.gaussian import GaussianProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling.frames import FRAMES, SamplingSetup
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.pilot import (PILOT_STREAM, PilotConfig, _Replay, dp_grid_for, fine_times, frame_cost_matrix,
                                           teacher)
from lazysi.numeric.sampling.registry import resolve
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.symbolic.families import family

MU = torch.tensor([0.7, -0.4], dtype=torch.float64)
VAR = torch.tensor([0.3, 0.02], dtype=torch.float64)


def _gauss() -> GaussianProvider:
    return GaussianProvider(NumericSchedule(family("linear")), MU, VAR)


def _exact(t: float, z: torch.Tensor) -> torch.Tensor:
    """The probability-flow map of N(MU, diag VAR) on the linear schedule from Z at t = 0."""
    return t * MU + ((1 - t) ** 2 + t**2 * VAR).sqrt() * z


def test_fine_times_unite_the_uniform_and_the_vp_grid():
    prov = _gauss()
    setup = SamplingSetup(sigma=0.8)
    f = fine_times(setup, prov.schedule, 12)
    assert f.dtype == torch.float64 and float(f[0]) == 0.0 and float(f[-1]) == 1.0
    assert bool((f[1:] > f[:-1]).all())
    vp = FRAMES["gaussian"].grid("vp", prov.schedule, 12, setup)
    for g in (grids.uniform(12), vp):
        assert float((g[:, None] - f[None, :]).abs().min(dim=1).values.max()) <= 1e-9


def test_teacher_is_the_exact_gaussian_flow():
    prov = _gauss()
    times = fine_times(SamplingSetup(sigma=0.8), prov.schedule, 16)
    z = per_sample_normal(0, range(5), (2,), stream=PILOT_STREAM)
    exact = torch.stack([_exact(t, z) for t in times.tolist()])
    err = {}
    for sub in (2, 4):
        states = teacher(prov, times, z, sub)
        assert states.shape == exact.shape
        err[sub] = float((states - exact).abs().max())
    # RK4: halving the sub-steps divides the error by ~16 (at least 8 asserted); 6e-7 measured at 2
    assert err[4] < err[2] / 8 and err[2] < 1e-5, err


@pytest.mark.parametrize("steps", [2, 3, 4])
def test_dp_grid_is_the_brute_force_optimum_of_the_euler_cost(steps):
    """Oracle: every subset of the fine points, each scored by Euler steps from the EXACT flow with
    the exact drift (no teacher, no replay, no cost matrix)."""
    prov = _gauss()
    setup = SamplingSetup(sigma=0.8)
    cfg = PilotConfig(rows=4, seed=3, fine_steps=3, substeps=64)  # teacher error ~1e-10
    grid, info = dp_grid_for(FRAMES["train"], prov, setup, steps, (2,), cfg, min_rows=1)
    fine = fine_times(setup, prov.schedule, cfg.fine_steps).tolist()
    z = per_sample_normal(cfg.seed, range(cfg.rows), (2,), stream=PILOT_STREAM)

    def cost(path):
        total = 0.0
        for a, b in zip(path[:-1], path[1:]):
            xa = _exact(a, z)
            pred = xa + (b - a) * prov.drift(torch.tensor(a, dtype=torch.float64), xa)
            total += float((pred - _exact(b, z)).norm(dim=1).mean())
        return total

    inner = fine[1:-1]
    best = min((cost([0.0, *mid, 1.0]), [0.0, *mid, 1.0]) for mid in itertools.combinations(inner, steps - 1))
    assert grid.tolist() == best[1]
    assert info["dp_cost"] == pytest.approx(best[0], rel=1e-6)


def test_exponential_euler_costs_nothing_on_a_gaussian_model_in_its_own_frame():
    """The Gaussian frame integrates a Gaussian model exactly: every one-step cost is at the level of
    the teacher's own error — the replayed evaluations, the frame and the cost all line up."""
    m = Model.load("gaussian-full")
    setup = m.setup()
    times, cost, info = frame_cost_matrix(FRAMES["gaussian"], m.provider, setup, m.shape,
                                          PilotConfig(rows=4, fine_steps=6, substeps=4))
    finite = cost[torch.isfinite(cost)]
    assert finite.numel() == times.numel() * (times.numel() - 1) // 2
    assert float(finite.max()) < 1e-6
    # ... while the Euler cost of the same pilot is of order the step
    _, euler, _ = frame_cost_matrix(FRAMES["train"], m.provider, setup, m.shape, PilotConfig(rows=4, fine_steps=6, substeps=4))
    assert float(euler[0, -1]) > 1e-2


def test_replay_refuses_an_evaluation_away_from_the_teacher():
    prov = _gauss()
    times = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    states = torch.zeros(3, 2, 2, dtype=torch.float64)
    rep = _Replay(prov.schedule, times, states, [prov.fields(times[k], states[k]) for k in range(2)])
    rep.fields(torch.tensor(0.5, dtype=torch.float64), states[1])
    with pytest.raises(RuntimeError, match="not at a teacher state"):
        rep.fields(torch.tensor(0.25, dtype=torch.float64), states[1])
    with pytest.raises(RuntimeError, match="away from the teacher state"):
        rep.fields(torch.tensor(0.5, dtype=torch.float64), states[1] + 1.0)


def test_dp_is_a_grid_of_training_time_frames_only():
    assert resolve("lazy-cov-pc@dp").grid == "dp" and resolve("euler@dp").grid == "dp"
    with pytest.raises(ValueError, match="unknown grid"):
        resolve("lazy-ode@dp")  # the lazy VP frame integrates in another time
    with pytest.raises(ValueError, match="pilot trajectories"):
        FRAMES["gaussian"].grid("dp", _gauss().schedule, 4, SamplingSetup())


class _Spy(GaussianProvider.__mro__[1]):  # a FieldProvider recording the times it is evaluated at
    def __init__(self, source):
        self.source, self.schedule, self.seen = source, source.schedule, []

    def fields(self, t, x):
        self.seen.append(float(torch.as_tensor(t).reshape(-1)[0]))
        return self.source.fields(t, x)


@pytest.mark.parametrize("name", ["lazy-cov-pc@dp", "ipndm@dp", "unipc3-bh2@dp", "fm-midpoint@dp"])
def test_dp_grid_runs_batch_invariant_for_ours_and_the_peers(name):
    spec = resolve(name)
    if spec.package is not None:
        pytest.importorskip(spec.package)
    m = Model.load("gaussian-full")
    setup = m.setup()
    spy = _Spy(m.provider)
    steps = spec.steps_for(4)
    grid, _ = dp_grid_for(spec.frame, spy, setup, steps, m.shape)  # the pilot runs (and is cached) here
    spy.seen.clear()
    idx = list(range(10))
    x, nfe = generate(spec, spy, steps, idx, 0, m.shape, setup=setup)
    assert nfe == 4 and torch.isfinite(x).all()
    for g in grid[1:-1].tolist():  # the sampler ran on the dp grid (diffusers: sigma = 1 - t in float32)
        assert min(abs(v - g) for v in spy.seen) < 1e-6, (g, spy.seen)
    x3, _ = generate(spec, spy, steps, [3, 7], 0, m.shape, setup=setup)
    assert torch.equal(x3, x[[3, 7]])
    if spec.frame.gaussian:  # exact on a Gaussian model whatever the grid
        ref, _ = generate("rk4", m.provider, 256, idx, 0, m.shape)
        assert float((x - ref).abs().max()) < 1e-7


def test_auto_grid_is_the_candidate_closest_to_the_pilot_teacher():
    """``auto``: the chosen candidate has the smallest pilot error, the returned times are that
    candidate's grid, and each candidate's recorded pilot error is the RMS distance of the sampler's
    own pilot run (recomputed here through the method) to the teacher's end points."""
    from lazysi.numeric.sampling.methods import Noise
    from lazysi.numeric.sampling.pilot import _teacher_for, auto_grid_for, pilot_grid

    m = Model.load("mnist-gmm")
    setup = m.setup()
    spec = resolve("lazy-cov-pc@auto")
    cfg = PilotConfig(rows=8, fine_steps=12)
    times, info = auto_grid_for(spec, m.provider, setup, 3, m.shape, cfg)
    errs = info["pilot_rmse"]
    assert set(errs) == {"vp", "gauss", "dp", "ctrl"} and errs[info["chosen"]] == min(errs.values())
    data = _teacher_for(m.provider, setup, m.shape, cfg, 8)
    for name, err in errs.items():
        g = pilot_grid(name, spec, m.provider, setup, 3, m.shape, 8, cfg)[0] if name in ("dp", "ctrl") \
            else FRAMES["gaussian"].grid(name, m.provider.schedule, 3, setup)
        if name == info["chosen"]:
            assert torch.equal(times, g)
        x = spec.method.solve(m.provider, 3, g, data["states"][0], Noise(0, tuple(range(8)), m.shape), setup)
        assert float((x - data["states"][-1]).pow(2).mean().sqrt()) == pytest.approx(err, rel=1e-9)
