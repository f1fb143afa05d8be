"""The ``gauss`` grid of the ``gaussian`` frame: a time grid derived from the model's Gaussian
approximation alone (no model call, no benchmark), one rule for every number of steps.

Time runs forward, t = 0 base -> t = 1 data. Per eigendirection of variance ``d`` the Gaussian
part's velocity along its own exact flow is ``v_d(t) = phi'(t, d) xi`` (``w = phi(t, d) xi``,
``xi ~ N(0, 1)``; ``phi`` from :mod:`lazysi.symbolic.frame`). The residual the frame solvers
integrate is a difference of two fields whose posterior sharpens at the same rate, so we take the
Gaussian velocity's time scales as the residual's (the proxy): a solver of order ``p`` commits a
local error of about ``h^{p+1} |v_d^{(p)}(t)| / (p+1)!`` per direction on a step of size ``h`` at
``t``, and the frame carries an error made at ``t`` to the data end scaled by
``phi(1, d)/phi(t, d)`` (variation of constants). The error reaching ``t = 1`` has
``C(t)^2 = sum_d (phi(1, d)/phi(t, d))^2 (d^p phi'/dt^p)^2`` (expected over ``xi``; a low-rank
frame's complement counted ``D - rank`` times). Equidistributing ``C(t) h^{p+1}`` over ``n`` steps
(the grid that minimises the summed local errors for a fixed ``n``, to leading order) puts the
points at equal quantiles of the density ``rho_p(t) = C(t)^{1/(p+1)}``: ``t_k = R^{-1}(k/n)``,
``R(t) = int_0^t rho / int_0^1 rho``. ``p`` is the order of the solver the grid serves
(:data:`GAUSS_GRID_ORDER`: 3, the global order of ``lazy-cov-pc`` / ``exp-ab3``). It is an
asymptotic (many-step) rule: the proxy does not see the early splitting of trajectories between
mixture components, which dominates the error at a few steps.

The derivatives are finite differences of the generated ``phi`` and ``k`` kernels on a fine
uniform grid (:data:`FINE_POINTS` points, float64); the density is floored at a tiny fraction of
its mean so that the grid stays strictly increasing where ``v^{(p)}`` vanishes.
"""
from __future__ import annotations

import torch

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.sampling.grids import check_grid
from lazysi.numeric.sampling.frame import frame_kernels

__all__ = ["GAUSS_GRID_ORDER", "FINE_POINTS", "gauss_density", "gauss_grid"]

#: the solver order the default ``gauss`` grid equidistributes the local error of
GAUSS_GRID_ORDER = 3
#: points of the fine grid the density is computed on
FINE_POINTS = 4001
_FLOOR = 1e-6


def gauss_density(schedule: NumericSchedule, approx: GaussianApprox, order: int = GAUSS_GRID_ORDER,
                  points: int = FINE_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, rho_p(t))`` on ``points`` uniform times in [0, 1] (float64): the equidistribution
    density of a ``p = order`` solver's local error on the Gaussian part (module docstring)."""
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"order must be a positive int, got {order!r}")
    kern = frame_kernels(schedule)
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    dim = int(approx.mean.numel())
    var = approx.variances.to(torch.float64).cpu()
    rank = var.numel()
    sq = torch.zeros_like(t)
    for d, mult in ((var, 1.0), (torch.tensor([approx.rest], dtype=torch.float64), float(dim - rank))):
        if mult == 0.0:
            continue
        tt, dd = t[:, None], d[None, :]
        phi = kern("phi", tt, dd)
        v = kern("k", tt, dd) * phi  # phi' = k phi, (points, directions)
        for _ in range(order):
            v = torch.gradient(v, spacing=(t,), dim=0)[0]
        carry = kern("phi", torch.ones_like(tt), dd) / phi  # an error made at t reaches t = 1 scaled by phi_1/phi_t
        sq = sq + mult * ((carry * v) ** 2).sum(dim=1)
    if not torch.isfinite(sq).all():
        raise ValueError("the Gaussian approximation's velocity derivatives are not finite on [0, 1]")
    rho = sq.sqrt() ** (1.0 / (order + 1))
    rho = rho.clamp_min(_FLOOR * float(rho.mean()))
    return t, rho


def gauss_grid(schedule: NumericSchedule, approx: GaussianApprox | None, steps: int,
               order: int = GAUSS_GRID_ORDER) -> torch.Tensor:
    """``steps + 1`` float64 times from 0 to 1 at equal quantiles of :func:`gauss_density`
    (trapezoidal cumulative, linear inversion); deterministic, endpoints exact."""
    if approx is None:
        raise ValueError("the gauss grid is derived from a Gaussian approximation: the setup has none")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"number of steps must be a positive int, got {steps!r}")
    t, rho = gauss_density(schedule, approx, order)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(0.5 * (rho[1:] + rho[:-1]) * (t[1:] - t[:-1]), 0)])
    cum = cum / cum[-1]
    levels = torch.arange(steps + 1, dtype=torch.float64) / steps
    idx = torch.searchsorted(cum, levels, right=True).clamp(1, t.numel() - 1)
    c0, c1 = cum[idx - 1], cum[idx]
    grid = t[idx - 1] + (levels - c0) / (c1 - c0) * (t[idx] - t[idx - 1])
    grid[0], grid[-1] = 0.0, 1.0
    return check_grid(grid)
