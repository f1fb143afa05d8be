"""numeric/dp_grid.py: the DP grid is the brute-force optimum on exact Gaussian teacher trajectories."""
from __future__ import annotations

import itertools

import pytest
import torch

from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling.dp_grid import cost_matrix, dp_grid, dp_select
from lazysi.numeric.fields.gaussian import GaussianProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.symbolic.families import family

MU = torch.tensor([0.7, -0.4], dtype=torch.float64)
VAR = torch.tensor([0.3, 0.02], dtype=torch.float64)


def _setup(k: int = 11):
    prov = GaussianProvider(NumericSchedule(family("linear")), MU, VAR)
    fine = grids.uniform(k - 1)
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # exact probability-flow trajectories from x0 = Z at t = 0: x_t = t mu + sqrt((1-t)^2 + t^2 var) x0
    teacher = torch.stack([t * MU + ((1 - t) ** 2 + t**2 * VAR).sqrt() * x0 for t in fine.tolist()])

    def euler(t0: float, t1: float, x: torch.Tensor) -> torch.Tensor:
        return x + (t1 - t0) * prov.drift(torch.tensor(t0, dtype=torch.float64), x)

    return prov, fine, teacher, euler


def _direct_cost(step, teacher, fine, path) -> float:
    """A grid's summed one-step error computed directly from step and teacher (not from the matrix)."""
    total = 0.0
    for i, j in zip(path[:-1], path[1:]):
        total += float((step(float(fine[i]), float(fine[j]), teacher[i]) - teacher[j]).norm(dim=1).mean())
    return total


@pytest.mark.parametrize("n_steps", [2, 3, 4])
def test_dp_grid_is_the_brute_force_optimum(n_steps):
    _, fine, teacher, euler = _setup()
    k = fine.numel()
    grid = dp_grid(euler, teacher, fine, n_steps)
    best_path, best_cost = None, float("inf")
    for inner in itertools.combinations(range(1, k - 1), n_steps - 1):
        path = [0, *inner, k - 1]
        c = _direct_cost(euler, teacher, fine, path)
        if c < best_cost:
            best_path, best_cost = path, c
    assert grid.dtype == torch.float64 and grid.tolist() == fine[best_path].tolist(), (grid, best_path)
    path, value = dp_select(cost_matrix(euler, teacher, fine), n_steps)
    assert path == best_path and value == pytest.approx(best_cost, rel=1e-12)
    # the optimum is not the uniform grid here (the 0.02-variance direction bends late): the DP matters
    assert grid.tolist() != grids.uniform(n_steps).tolist()


def test_dp_select_edge_cases_and_errors():
    _, fine, teacher, euler = _setup(6)
    cost = cost_matrix(euler, teacher, fine)
    assert dp_select(cost, 1)[0] == [0, 5]
    assert dp_select(cost, 5)[0] == [0, 1, 2, 3, 4, 5]
    assert torch.isinf(cost.tril()).sum() == 21  # diagonal and below are not steps
    with pytest.raises(ValueError, match="n_steps"):
        dp_select(cost, 6)
    with pytest.raises(ValueError, match="teacher"):
        cost_matrix(euler, teacher[:-1], fine)
    with pytest.raises(ValueError, match="fine_times"):
        cost_matrix(euler, teacher, fine.flip(0))
