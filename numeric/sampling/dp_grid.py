"""Time grids by dynamic programming on teacher trajectories (GITS, Chen et al. 2024; the "optimal
step size" idea): choose the ``n_steps + 1`` grid points, a subset of a fine teacher grid with both
ends included, that minimise the summed one-step errors of a given solver step along a few
reference (teacher) trajectories.

Time runs forward, t = 0 noise .. t = 1 data (any sub-interval works: the first and last fine times
are always kept). The cost of a step from fine point i to fine point j > i is
``C[i, j] = mean_b || step_fn(t_i, t_j, teacher[i]) - teacher[j] ||_2`` (the norm per trajectory
b, GITS's ``l2`` metric); a grid's cost is the sum of its steps' costs. :func:`dp_select` finds the
minimum exactly in ``O(n_steps K^2)`` (``K`` fine points) from the matrix; :func:`cost_matrix` needs
``K (K - 1) / 2`` calls of ``step_fn`` (for a solver with one evaluation per step, ``step_fn`` may
cache the evaluation at ``(t_i, teacher[i])``, which every j shares). The teacher trajectories
should come from pilot noise disjoint from any benchmark's.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["cost_matrix", "dp_select", "dp_grid"]

StepFn = Callable[[float, float, torch.Tensor], torch.Tensor]


def _check_teacher(teacher: torch.Tensor, fine_times: torch.Tensor) -> int:
    if not isinstance(fine_times, torch.Tensor) or fine_times.dtype != torch.float64 or fine_times.ndim != 1:
        raise ValueError("fine_times must be a float64 1-D tensor")
    k = fine_times.numel()
    if k < 2 or not torch.isfinite(fine_times).all() or (fine_times[1:] <= fine_times[:-1]).any():
        raise ValueError("fine_times must have at least 2 finite, strictly increasing times")
    if teacher.ndim < 2 or teacher.shape[0] != k:
        raise ValueError(f"teacher must have shape (K={k}, B, *shape), got {tuple(teacher.shape)}")
    if not torch.isfinite(teacher).all():
        raise ValueError("teacher contains non-finite values")
    return k


def cost_matrix(step_fn: StepFn, teacher: torch.Tensor, fine_times: torch.Tensor) -> torch.Tensor:
    """``C[i, j]`` (float64, ``(K, K)``, ``inf`` where ``j <= i``): mean over the B trajectories of the
    L2 norm of ``step_fn(t_i, t_j, teacher[i]) - teacher[j]``.

    ``step_fn(t0, t1, x)`` takes one solver step from time ``t0`` to ``t1 > t0`` starting at the states
    ``x`` (B, *shape) and returns the states at ``t1``."""
    k = _check_teacher(teacher, fine_times)
    cost = torch.full((k, k), float("inf"), dtype=torch.float64)
    times = fine_times.tolist()
    for i in range(k - 1):
        for j in range(i + 1, k):
            pred = step_fn(times[i], times[j], teacher[i])
            if pred.shape != teacher[j].shape:
                raise ValueError(f"step_fn returned shape {tuple(pred.shape)}, expected {tuple(teacher[j].shape)}")
            err = (pred - teacher[j]).reshape(teacher.shape[1], -1).to(torch.float64).norm(dim=1).mean()
            if not torch.isfinite(err):
                raise ValueError(f"step_fn gave a non-finite state on the step t = {times[i]} -> {times[j]}")
            cost[i, j] = err
    return cost


def dp_select(cost: torch.Tensor, n_steps: int) -> tuple[list[int], float]:
    """The indices ``0 = i_0 < i_1 < ... < i_n = K - 1`` minimising ``sum_m cost[i_m, i_{m+1}]`` over
    exactly ``n_steps`` steps, and that minimum. Exact dynamic programming:
    ``V[m, j] = min_i V[m - 1, i] + cost[i, j]``, ``V[0, :] = (0, inf, ...)``; ties go to the
    smallest index."""
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square matrix, got {tuple(cost.shape)}")
    k = cost.shape[0]
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or not 1 <= n_steps <= k - 1:
        raise ValueError(f"n_steps must be an int in 1..{k - 1} (K = {k} fine points), got {n_steps!r}")
    c = cost.to(torch.float64)
    value = torch.full((n_steps + 1, k), float("inf"), dtype=torch.float64)
    arg = torch.zeros((n_steps + 1, k), dtype=torch.long)
    value[0, 0] = 0.0
    for m in range(1, n_steps + 1):
        total = value[m - 1][:, None] + c  # (i, j)
        value[m], arg[m] = total.min(dim=0)
    best = float(value[n_steps, k - 1])
    if best == float("inf"):
        raise ValueError("no finite-cost grid with that many steps")
    path = [k - 1]
    for m in range(n_steps, 0, -1):
        path.append(int(arg[m, path[-1]]))
    return path[::-1], best


def dp_grid(step_fn: StepFn, teacher: torch.Tensor, fine_times: torch.Tensor, n_steps: int) -> torch.Tensor:
    """The ``n_steps + 1`` times (float64, a subset of ``fine_times`` with both ends) minimising the
    summed one-step errors of ``step_fn`` along the teacher trajectories ``teacher`` (``(K, B, *shape)``,
    states at ``fine_times``); see :func:`cost_matrix` and :func:`dp_select`."""
    path, _ = dp_select(cost_matrix(step_fn, teacher, fine_times), n_steps)
    return fine_times[path].clone()
