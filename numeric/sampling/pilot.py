"""Grids from a pilot run of the model (issue 16 items 1, 3 and 4): ``dp``, ``ctrl``, ``auto`` and
the ``--adaptive`` times.

Time runs forward, t = 0 base -> t = 1 data, in the training schedule's time (the frames with a
``pilot_solver``: ``train`` and ``gaussian``).

* **Pilot noise**: :attr:`PilotConfig.rows` samples ``per_sample_normal(seed, i, stream="pilot")``
  — a stream no sample of any run uses, so a pilot never sees a benchmark's or a user's noise.
* **Teacher**: RK4 on the probability-flow ODE of the training schedule over a fine candidate grid
  (:func:`fine_times`: uniform in t united with the ``vp`` grid, :attr:`PilotConfig.fine_steps`
  steps each, so that both ends are resolved), each fine interval cut into
  :attr:`PilotConfig.substeps` uniform RK4 steps; its error is estimated against the same RK4 with
  half the sub-steps and reported (``teacher_rms_change_at_t1``).
* ``dp`` (GITS / "optimal step size"): ``C[i, j]`` = mean over the pilot rows of the L2 error of ONE
  step of the frame's first-order solver (``euler`` on the training ODE — diffusers' DDIM for a
  flow model, GITS's choice —; ``exp-euler`` in the Gaussian frame) from the teacher state at
  ``t_i`` to ``t_j``, against the teacher at ``t_j`` (the step replays the model's evaluation at the
  teacher state: one evaluation per fine point, no more); the grid is the ``n + 1`` fine points
  minimising the summed costs (exact DP). One first-order cost for every solver of the frame, as in
  GITS: no solver's own history enters the choice.
* ``--adaptive --tol``: step-size control of a predictor-corrector with its free error estimate
  (:func:`~lazysi.numeric.sampling.solvers.control_times`) on the pilot rows, in the time of the
  frame's ``control_grid``; the accepted times are the grid. ``ctrl``: the same control at the
  tolerance that gives the asked number of steps (bisection).
* ``auto``: of the sampler's candidate grids (its default, ``vp``, ``gauss``, ``dp``, ``ctrl``) the
  one whose pilot run ends closest to the teacher's end points — the rule ``--nfe-budget`` uses.

Everything depends on the model, the frame's setup and :class:`PilotConfig` only — never on which
samples are drawn — so a run on a pilot grid keeps the batch-invariance of fixed grids. Teachers,
cost matrices and grids are cached per provider object for the life of the process.
"""
from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.sampling.dp_grid import cost_matrix, dp_select
from lazysi.numeric.sampling.frames import FRAMES, PILOT_GRIDS, Frame, SamplingSetup
from lazysi.numeric.sampling.grids import check_grid, uniform
from lazysi.numeric.sampling.methods import Noise, StepMethod
from lazysi.numeric.sampling.registry import base_spec
from lazysi.numeric.sampling.rows import CountingProvider, fixed_rows
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.numeric.sampling.solvers import ControlLimit, integrate, provider_ode

__all__ = ["PILOT_STREAM", "PilotConfig", "fine_times", "teacher", "frame_cost_matrix", "dp_grid_for", "pilot_grid",
           "adaptive_grid_for", "budget_grid_for", "auto_grid_for", "pilot_record"]

PILOT_STREAM = "pilot"
_MIN_GAP = 1e-9  # fine points closer than this are one point


@dataclass(frozen=True)
class PilotConfig:
    """``rows`` pilot samples (noise ``(seed, i, stream "pilot")``, i < rows); a fine grid of
    uniform(``fine_steps``) united with vp(``fine_steps``); ``substeps`` RK4 steps per fine interval."""

    rows: int = 32
    seed: int = 0
    fine_steps: int = 48
    substeps: int = 2

    def __post_init__(self):
        for name in ("rows", "fine_steps", "substeps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"PilotConfig.{name} must be a positive int, got {v!r}")


def fine_times(setup: SamplingSetup, schedule, fine_steps: int) -> torch.Tensor:
    """The candidate times: ``uniform(fine_steps)`` united with the ``vp`` grid of ``fine_steps``
    steps (uniform in the time of the lazy VP schedule of scale ``setup.sigma``: dense at both ends),
    sorted, points closer than 1e-9 merged; float64 from 0 to 1."""
    vp = FRAMES["gaussian"].grid("vp", schedule, fine_steps, setup)
    both = torch.sort(torch.cat([uniform(fine_steps), vp])).values
    keep = [float(both[0])]
    for v in both[1:].tolist():
        if v - keep[-1] > _MIN_GAP:
            keep.append(v)
    keep[-1] = 1.0
    return check_grid(torch.tensor(keep, dtype=torch.float64))


def _refine(times: torch.Tensor, substeps: int) -> torch.Tensor:
    pieces = [times[:1]]
    for a, b in zip(times[:-1].tolist(), times[1:].tolist()):
        pieces.append(a + (b - a) * torch.arange(1, substeps + 1, dtype=torch.float64) / substeps)
    out = torch.cat(pieces)
    out[-1] = float(times[-1])
    return out


def teacher(provider: FieldProvider, times: torch.Tensor, x0: torch.Tensor, substeps: int) -> torch.Tensor:
    """States ``(K, B, *shape)`` at ``times`` of RK4 on the provider's probability-flow ODE with
    ``substeps`` uniform steps per interval, from ``x0`` at ``times[0]``."""
    path = integrate("rk4", provider_ode(provider), _refine(times, substeps), x0, keep_path=True)
    return torch.stack(path[::substeps])


class _Replay(FieldProvider):
    """Replays the model's fields at the teacher states (exact fine times): the DP's one-step
    solvers evaluate only there. Any other evaluation is an error, not a silent model call."""

    def __init__(self, schedule, times: torch.Tensor, states: torch.Tensor, fields: list[tuple[torch.Tensor, torch.Tensor]]):
        self.schedule = schedule
        self.index = {float(v): k for k, v in enumerate(times.tolist())}
        self.states, self.stored = states, fields

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.index.get(float(t)) if torch.as_tensor(t).ndim == 0 else None
        if k is None or k >= len(self.stored):
            raise RuntimeError(f"the pilot's one-step solver evaluated at t = {t}, not at a teacher state")
        ref = self.states[k]
        if not torch.allclose(x.reshape(ref.shape), ref, rtol=0.0, atol=1e-9 * (1.0 + float(ref.abs().max()))):
            raise RuntimeError(f"the pilot's one-step solver evaluated away from the teacher state at t = {float(t)}")
        return self.stored[k]


_CACHE: "weakref.WeakKeyDictionary[FieldProvider, dict]" = weakref.WeakKeyDictionary()


def _cached(provider: FieldProvider) -> dict:
    if provider not in _CACHE:
        _CACHE[provider] = {}
    return _CACHE[provider]


def _teacher_for(provider: FieldProvider, setup: SamplingSetup, shape: tuple[int, ...], config: PilotConfig,
                 min_rows: int) -> dict[str, Any]:
    times = fine_times(setup, provider.schedule, config.fine_steps)
    key = ("teacher", config, shape, tuple(times.tolist()), min_rows)
    cache = _cached(provider)
    if key not in cache:
        t0 = time.perf_counter()
        counter = CountingProvider(fixed_rows(provider, min_rows))
        x0 = per_sample_normal(config.seed, range(config.rows), shape, stream=PILOT_STREAM)
        states = teacher(counter, times, x0, config.substeps)
        coarse = teacher(counter, times, x0, max(config.substeps // 2, 1)) if config.substeps > 1 else None
        change = None if coarse is None else float((states[-1] - coarse[-1]).pow(2).mean().sqrt())
        fields = [counter.fields(times[k], states[k]) for k in range(times.numel() - 1)]
        cache[key] = {"times": times, "states": states, "fields": fields,
                      "info": {"rows": config.rows, "seed": config.seed, "stream": PILOT_STREAM,
                               "fine_points": times.numel(), "substeps": config.substeps,
                               "teacher_rms_change_at_t1": change, "model_calls": counter.calls,
                               "seconds": round(time.perf_counter() - t0, 1)}}
    return cache[key]


def frame_cost_matrix(frame: Frame, provider: FieldProvider, setup: SamplingSetup, shape: tuple[int, ...],
                      config: PilotConfig = PilotConfig(), min_rows: int = 8) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(fine times, C, teacher info)``: the one-step cost matrix of ``frame``'s first-order solver
    on the pilot teacher (module docstring)."""
    if frame.pilot_solver is None:
        raise ValueError(f"the {frame.name} frame has no pilot grids (it does not integrate in the training time)")
    data = _teacher_for(provider, setup, tuple(shape), config, min_rows)
    key = ("cost", frame.pilot_solver, setup.sigma, id(setup.approx))
    if key not in data:
        replay = _Replay(provider.schedule, data["times"], data["states"], data["fields"])
        field = frame.provider(replay, setup)
        method = StepMethod.of(frame.pilot_solver)
        noise = Noise(config.seed, tuple(range(config.rows)), tuple(shape))

        def step(t0: float, t1: float, x: torch.Tensor) -> torch.Tensor:
            return method.solve(field, 1, torch.tensor([t0, t1], dtype=torch.float64), x, noise, setup)

        data[key] = (cost_matrix(step, data["states"], data["times"]), setup.approx)  # (keeps approx alive: its id is the key)
    return data["times"], data[key][0], data["info"]


def dp_grid_for(frame: Frame, provider: FieldProvider, setup: SamplingSetup, steps: int, shape: tuple[int, ...],
                config: PilotConfig = PilotConfig(), min_rows: int = 8) -> tuple[torch.Tensor, dict]:
    """The ``dp`` grid of ``steps`` steps for ``frame`` and the pilot's record."""
    times, cost, info = frame_cost_matrix(frame, provider, setup, shape, config, min_rows)
    if steps > times.numel() - 1:
        raise ValueError(f"the dp grid has at most {times.numel() - 1} steps (fine points of the pilot: "
                         f"{times.numel()}); asked for {steps}")
    path, total = dp_select(cost, steps)
    grid = times[path].clone()
    grid[0], grid[-1] = 0.0, 1.0
    return check_grid(grid), {**info, "solver": frame.pilot_solver, "dp_cost": total}


def pilot_grid(kind: str, spec, provider: FieldProvider, setup: SamplingSetup, steps: int, shape: tuple[int, ...],
               min_rows: int = 8, config: PilotConfig = PilotConfig()) -> tuple[torch.Tensor | None, dict]:
    """The pilot grid ``kind`` of ``steps`` steps for the sampler ``spec`` and the pilot's record:
    ``dp`` (:func:`dp_grid_for`), ``ctrl`` (:func:`budget_grid_for`) or ``auto``
    (:func:`auto_grid_for`; None: the sampler's own grid)."""
    if kind not in spec.grids or kind not in PILOT_GRIDS:
        raise ValueError(f"{kind!r} is not a pilot grid of {spec.name}; its grids: {', '.join(spec.grids) or 'its own only'}")
    if kind == "dp":
        return dp_grid_for(spec.frame, provider, setup, steps, shape, config, min_rows)
    if kind == "ctrl":
        return budget_grid_for(spec, provider, setup, shape, steps, config, min_rows)
    return auto_grid_for(spec, provider, setup, steps, shape, config, min_rows)


def auto_grid_for(spec, provider: FieldProvider, setup: SamplingSetup, steps: int, shape: tuple[int, ...],
                  config: PilotConfig = PilotConfig(), min_rows: int = 8) -> tuple[torch.Tensor | None, dict]:
    """The ``auto`` grid: of the sampler's candidate grids — its default (a peer's own grid
    included), ``vp`` and ``gauss`` where it knows them, ``dp`` and ``ctrl`` — the one on which the
    sampler itself, run from the pilot noise, ends closest to the pilot teacher's end points (RMS
    over rows and coordinates). One rule for every number of steps, chosen on the pilot's own
    trajectories (never a benchmark's). Returns ``(times, record)``; ``times`` is None when the
    winner is the sampler's own grid (a peer's)."""
    data = _teacher_for(provider, setup, tuple(shape), config, min_rows)
    key = ("auto", spec.name, steps, setup.sigma, id(setup.approx))
    if key not in data:
        target = data["states"][-1]
        x0 = data["states"][0]
        field = spec.frame.provider(fixed_rows(provider, min_rows), setup)
        noise = Noise(config.seed, tuple(range(config.rows)), tuple(shape))
        base = base_spec(spec)
        names = [base.grid, *(g for g in ("vp", "gauss", "dp", "ctrl") if g in spec.grids and g != base.grid)]
        errors: dict[str, float] = {}
        best: tuple[float, str, torch.Tensor | None] | None = None
        for name in names:
            if name is None:
                times = None
            elif name in PILOT_GRIDS:
                times = pilot_grid(name, spec, provider, setup, steps, shape, min_rows, config)[0]
            else:
                times = spec.frame.grid(name, field.schedule, steps, setup)
            x = spec.frame.finish(spec.method.solve(field, steps, times, x0, noise, setup), setup, field.schedule)
            err = float((x - target).pow(2).mean().sqrt())
            errors[name or "own"] = err
            if math.isfinite(err) and (best is None or err < best[0]):
                best = (err, name or "own", times)
        if best is None:
            raise RuntimeError(f"{spec.name}: no candidate grid gave a finite pilot run")
        data[key] = (best[2], {"chosen": best[1], "pilot_rmse": errors, "steps": steps}, setup.approx)
    times, info, _ = data[key]
    return (None if times is None else times.clone()), {**data["info"], **info}


def budget_grid_for(spec, provider: FieldProvider, setup: SamplingSetup, shape: tuple[int, ...], steps: int,
                    config: PilotConfig = PilotConfig(), min_rows: int = 8, iterations: int = 24) -> tuple[torch.Tensor, dict]:
    """The ``ctrl`` grid: the step-size control of :func:`adaptive_grid_for` at the
    tolerance whose accepted grid has exactly ``steps`` steps, found by bisection on ``log tol``
    (``iterations`` at most, each one pilot run). Where no tolerance gives exactly ``steps`` (the
    count jumps), the closest grid with fewer steps gets its longest steps halved until it has
    ``steps`` (``"filled"`` in the record)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if steps == 1:  # the control takes at least two steps (control_times): one step is the whole interval
        return torch.tensor([0.0, 1.0], dtype=torch.float64), {"steps": 1, "filled": 0, "search_model_calls": 0}
    lo, hi = -10.0, 1.0  # log10 tol: tiny -> many steps, large -> two steps
    best: tuple[torch.Tensor, dict] | None = None
    calls = 0
    cap = 4 * steps + 16  # attempts: a tolerance needing more is too tight (stopped early, not run to the end)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        try:
            grid, info = adaptive_grid_for(spec, provider, setup, shape, 10.0 ** mid, config, min_rows, max_steps=cap)
        except ControlLimit:
            lo = mid
            continue
        calls += info["model_calls"]
        n = grid.numel() - 1
        if n == steps:
            best = (grid, info)
            break
        if n > steps:
            lo = mid
        else:
            hi = mid
            if best is None or n > best[0].numel() - 1:
                best = (grid, info)
    if best is None:  # every tolerance tried gave more steps than asked: the loosest one's first steps
        raise RuntimeError(f"step-size control gave more than {steps} steps even at tol = 10^{hi:.1f}")
    grid, info = best
    filled = 0
    while grid.numel() - 1 < steps:  # halve the longest step
        k = int(torch.argmax(grid[1:] - grid[:-1]))
        grid = torch.cat([grid[:k + 1], 0.5 * (grid[k:k + 1] + grid[k + 1:k + 2]), grid[k + 1:]])
        filled += 1
    return check_grid(grid), {**info, "steps": steps, "filled": filled, "search_model_calls": calls}


_MAP_POINTS = 4096


def _grid_time(frame: Frame, schedule, setup: SamplingSetup):
    """The time the control steps in: the one the frame's ``control_grid`` is uniform in (``u -> t``,
    from that grid of :data:`_MAP_POINTS` steps, linearly interpolated), or None for the training
    time itself (``uniform``). Large steps then follow that grid; the estimate refines from there."""
    if frame.control_grid == "uniform":
        return None
    fine = frame.grid(frame.control_grid, schedule, _MAP_POINTS, setup)

    def to_t(v: float) -> float:
        k = min(int(v * _MAP_POINTS), _MAP_POINTS - 1)
        w = v * _MAP_POINTS - k
        return float(fine[k] + w * (fine[k + 1] - fine[k]))

    return to_t


def adaptive_grid_for(spec, provider: FieldProvider, setup: SamplingSetup, shape: tuple[int, ...], tol: float,
                      config: PilotConfig = PilotConfig(), min_rows: int = 8, max_steps: int = 1000) -> tuple[torch.Tensor, dict]:
    """``--adaptive --tol TOL``: step-size control of ``spec``'s solver with its free error estimate
    (predictor vs corrector, RMS over the pilot rows) on the pilot noise; the accepted times are the
    grid every sample then runs on (so the control costs the pilot's evaluations once, the samples
    one evaluation per step, and a sample never depends on its batch). The steps are controlled in
    the time of the frame's ``control_grid`` (``vp`` for the Gaussian frame). The tolerance is on the
    pilot's estimated local errors, not a per-sample guarantee."""
    if not spec.controllable:
        raise ValueError(f"{spec.name} has no free error estimate; step-size control needs a predictor-corrector "
                         "sampler of ours (lazy-cov-pc, lazy-cov-pcd, lazy-cov-pc4, lazy-cov-pc4d)")
    method = spec.method
    key = ("adaptive", method.name, float(tol), spec.frame.name, setup.sigma, id(setup.approx), config, tuple(shape), min_rows,
           max_steps)
    cache = _cached(provider)
    if key not in cache:
        t0 = time.perf_counter()
        counter = CountingProvider(fixed_rows(provider, min_rows))
        field = spec.frame.provider(counter, setup)
        x0 = per_sample_normal(config.seed, range(config.rows), shape, stream=PILOT_STREAM)
        rec = method.control(field, x0, setup, tol, time_map=_grid_time(spec.frame, field.schedule, setup),
                             max_steps=max_steps)
        grid = check_grid(torch.tensor(rec.times, dtype=torch.float64))
        cache[key] = (grid, {"rows": config.rows, "seed": config.seed, "stream": PILOT_STREAM, "tol": float(tol),
                             "solver": method.name, "steps": grid.numel() - 1, "rejected": rec.rejected,
                             "attempts": rec.attempts, "forced": rec.forced, "max_estimate": max(rec.estimates, default=0.0),
                             "model_calls": counter.calls, "seconds": round(time.perf_counter() - t0, 1)}, setup.approx)
    grid, info, _ = cache[key]
    return grid.clone(), dict(info)


def pilot_record(provider: FieldProvider) -> list[dict]:
    """What the pilots run on ``provider`` in this process cost (for run records and the bench)."""
    out = []
    for key, v in _cached(provider).items():
        if key[0] == "teacher":
            out.append({"grid": "dp", **v["info"]})
        elif key[0] == "adaptive":
            out.append({"grid": "ctrl/adaptive", **v[1]})
    return out
