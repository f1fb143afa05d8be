"""Time grids: pure functions returning one float64 1-D tensor, increasing from base to data.

Convention: t = 0 base, t = 1 data; every grid runs forward in t (``grid[0] < ... < grid[-1]``)
and has ``n + 1`` points for ``n`` steps.
"""
from __future__ import annotations

import math

import torch

from lazysi.numeric.fields.roots import invert_increasing
from lazysi.numeric.fields.schedule import NumericSchedule

__all__ = ["GRIDS", "LAMBDA_CLIP", "uniform", "uniform_lambda", "edm", "shifted", "invert_lam", "check_grid", "named_grid",
           "explicit_grid"]

#: the named grids every frame knows (in the frame's own time)
GRIDS = ("uniform", "lambda", "edm", "shifted")
LAMBDA_CLIP = 0.02


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"number of steps must be a positive int, got {n!r}")


def _check_interval(t0: float, t1: float) -> None:
    if not (0.0 <= t0 < t1 <= 1.0):
        raise ValueError(f"need 0 <= t0 < t1 <= 1, got t0={t0}, t1={t1}")


def check_grid(grid: torch.Tensor) -> torch.Tensor:
    """Validate a user grid: float64, 1-D, at least 2 points, finite, strictly increasing, in [0, 1]."""
    if not isinstance(grid, torch.Tensor) or grid.dtype != torch.float64 or grid.ndim != 1 or grid.numel() < 2:
        raise ValueError("a time grid must be a float64 1-D tensor with at least 2 points")
    if not torch.isfinite(grid).all() or (grid[1:] <= grid[:-1]).any():
        raise ValueError("a time grid must be finite and strictly increasing")
    if grid[0] < 0 or grid[-1] > 1:
        raise ValueError(f"a time grid must lie in [0, 1], got [{float(grid[0])}, {float(grid[-1])}]")
    return grid


def uniform(n: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """``t_k = t0 + k (t1 - t0)/n``, k = 0..n (endpoints exact)."""
    _check_n(n)
    _check_interval(t0, t1)
    grid = t0 + (t1 - t0) * torch.arange(n + 1, dtype=torch.float64) / n
    grid[0], grid[-1] = t0, t1
    return grid


def invert_lam(schedule: NumericSchedule, lam: torch.Tensor) -> torch.Tensor:
    """``t`` with ``lambda(t) = lam`` by float64 bisection on the generated, increasing ``lambda``
    kernel (``-inf -> 0``, ``+inf -> 1``)."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    out = invert_increasing(schedule.lam, lam)
    return torch.where(lam == -math.inf, 0.0, torch.where(lam == math.inf, 1.0, out))


def uniform_lambda(schedule: NumericSchedule, n: int, t0: float, t1: float) -> torch.Tensor:
    """Uniform in the half log-SNR ``lambda`` between ``lambda(t0)`` and ``lambda(t1)`` (both must be
    finite: 0 < t0 < t1 < 1), mapped back to t; endpoints exact."""
    _check_n(n)
    _check_interval(t0, t1)
    ends = schedule.lam(torch.tensor([t0, t1], dtype=torch.float64))
    if not torch.isfinite(ends).all():
        raise ValueError(f"lambda is infinite at t0={t0} or t1={t1}; choose 0 < t0 < t1 < 1")
    lam = ends[0] + (ends[1] - ends[0]) * torch.arange(n + 1, dtype=torch.float64) / n
    grid = invert_lam(schedule, lam)
    grid[0], grid[-1] = t0, t1
    return grid


def edm(schedule: NumericSchedule, n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, *, final_step_to_data: bool = True) -> torch.Tensor:
    """Karras et al. (EDM) noise levels in our time: ``sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) -
    smax^(1/rho)))^rho`` for i = 0..n-1 (VE noise level ``sigma = alpha/beta = exp(-lambda)``), mapped
    to t by ``lambda(t) = -log sigma``; with ``final_step_to_data`` the last point is t = 1 (n steps)."""
    _check_n(n)
    if not (0 < sigma_min < sigma_max) or rho <= 0:
        raise ValueError(f"need 0 < sigma_min < sigma_max and rho > 0, got {sigma_min}, {sigma_max}, {rho}")
    m = n if final_step_to_data else n + 1
    i = torch.arange(m, dtype=torch.float64)
    denom = max(m - 1, 1)
    sig = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    grid = invert_lam(schedule, -torch.log(sig))
    if final_step_to_data:
        grid = torch.cat([grid, torch.ones(1, dtype=torch.float64)])
    return check_grid(grid)


def shifted(n: int, shift: float) -> torch.Tensor:
    """SD3/FLUX timestep shift: with ``sigma = 1 - u`` (u uniform on [0, 1]),
    ``sigma' = shift sigma / (1 + (shift - 1) sigma)`` and ``t = 1 - sigma'``."""
    _check_n(n)
    if not shift > 0:
        raise ValueError(f"shift must be positive, got {shift}")
    sig = 1.0 - uniform(n)
    grid = 1.0 - shift * sig / (1.0 + (shift - 1.0) * sig)
    grid[0], grid[-1] = 0.0, 1.0
    return grid


def named_grid(kind: str, schedule: NumericSchedule, steps: int, shift: float = 3.0) -> torch.Tensor:
    """A float64 grid of ``steps + 1`` times from 0 to 1 in ``schedule``'s time: ``uniform``;
    ``lambda`` uniform in the half log-SNR between the times ``LAMBDA_CLIP`` and ``1 - LAMBDA_CLIP``,
    end points then moved to 0 and 1; ``edm`` (Karras rho = 7 noise levels, sigma_max = 80, last
    step to the data; first point moved to 0); ``shifted`` (SD3 shift ``shift``)."""
    if kind == "uniform":
        return uniform(steps)
    if kind == "lambda":
        g = uniform_lambda(schedule, steps, LAMBDA_CLIP, 1.0 - LAMBDA_CLIP)
        g[0], g[-1] = 0.0, 1.0
        return check_grid(g)
    if kind == "edm":
        g = edm(schedule, steps).clone()
        g[0] = 0.0
        return check_grid(g)
    if kind == "shifted":
        return check_grid(shifted(steps, shift))
    raise ValueError(f"unknown grid {kind!r}; known: {', '.join(GRIDS)}")


def explicit_grid(times, steps: int) -> torch.Tensor:
    """A user's ``steps + 1`` increasing times from exactly 0 to exactly 1, validated."""
    grid = check_grid(torch.as_tensor(times, dtype=torch.float64).clone())
    if grid.numel() != steps + 1 or float(grid[0]) != 0.0 or float(grid[-1]) != 1.0:
        raise ValueError(f"an explicit grid for {steps} steps needs {steps + 1} times from 0 to 1, "
                         f"got {grid.numel()} from {float(grid[0])} to {float(grid[-1])}")
    return grid
