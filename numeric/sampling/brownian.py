"""Brownian paths sampled on a grid, refined by Brownian bridges, and time-changed (claim C5).

A :class:`BrownianPath` stores ``W`` at increasing float64 times ``times`` (shape ``(n,)``) as
``values`` of shape ``(n, batch, *dims)`` with ``W(times[0]) = 0``. Increments between grid times
are exact differences, so coarse solvers driven by sums of fine increments see the SAME path.

Time change (C5): if X solves A's SDE driven by W, then ``c_s X_{tau(s)}`` solves B's SDE driven by
``dW_B(s) = dW_A(tau(s)) / sqrt(tau'(s))``. On a fine s-grid this is realised by
``Delta W_B = Delta W_A(tau) * sqrt(Delta s / Delta tau)``: exactly Brownian (independent
``N(0, Delta s)`` increments) and converging to the time-changed path as the grid is refined.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lazysi.numeric.sampling.seeding import per_sample_normal

__all__ = ["BrownianPath"]


@dataclass(frozen=True)
class BrownianPath:
    """``W`` at ``times`` (float64, strictly increasing), ``values[k] = W(times[k])``."""

    times: torch.Tensor
    values: torch.Tensor

    def __post_init__(self):
        if self.times.dtype != torch.float64 or self.times.ndim != 1 or self.times.numel() < 2:
            raise ValueError("times must be a float64 1-D tensor with at least 2 points")
        if (self.times[1:] <= self.times[:-1]).any():
            raise ValueError("times must be strictly increasing")
        if self.values.shape[0] != self.times.shape[0]:
            raise ValueError(f"values must have {self.times.shape[0]} rows, got {self.values.shape[0]}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def sample(cls, times: torch.Tensor, batch: int, dims: Sequence[int] = (), *, seed: int = 0, first_index: int = 0,
               indices: Sequence[int] | None = None) -> "BrownianPath":
        """A path on ``times`` for ``batch`` samples; sample i's path depends only on
        ``(seed, first_index + i)`` (or ``(seed, indices[i])``: per-sample seeding), not on the batch."""
        times = torch.as_tensor(times, dtype=torch.float64)
        n = times.numel()
        if indices is None:
            indices = range(first_index, first_index + batch)
        elif len(indices) != batch:
            raise ValueError(f"{len(indices)} indices for a batch of {batch}")
        xi = per_sample_normal(seed, indices, (n - 1, *dims), stream="brownian")
        dt = (times[1:] - times[:-1]).reshape((n - 1,) + (1,) * (1 + len(dims)))
        inc = xi.movedim(0, 1) * dt.sqrt()  # (n-1, batch, *dims)
        zero = torch.zeros((1, batch, *dims), dtype=torch.float64)
        return cls(times, torch.cat([zero, inc.cumsum(0)]))

    # ------------------------------------------------------------------ access
    def index(self, tv: float) -> int:
        """The grid index of time ``tv`` (must be a grid time, to 1e-12)."""
        k = int(torch.searchsorted(self.times, torch.tensor(float(tv), dtype=torch.float64)).clamp(max=self.times.numel() - 1))
        for j in (k, k - 1):
            if 0 <= j < self.times.numel() and abs(float(self.times[j]) - float(tv)) <= 1e-12:
                return j
        raise ValueError(f"time {tv!r} is not on the Brownian grid; refine the path to include it")

    def increment(self, t0: float, t1: float) -> torch.Tensor:
        """``W(t1) - W(t0)`` for grid times ``t0 < t1``."""
        return self.values[self.index(t1)] - self.values[self.index(t0)]

    def increments(self, grid: torch.Tensor) -> torch.Tensor:
        """``W(grid[k+1]) - W(grid[k])`` for every step of a grid contained in ``times``."""
        idx = [self.index(float(g)) for g in grid]
        v = self.values[idx]
        return v[1:] - v[:-1]

    # ------------------------------------------------------------------ refinement
    def refine(self, new_times: torch.Tensor, generator: torch.Generator) -> "BrownianPath":
        """The same path on ``times`` united with ``new_times`` (inside ``[times[0], times[-1]]``): each
        new point is drawn from the Brownian bridge between its current neighbours (in increasing
        order, so several points in one interval are conditioned on each other correctly)."""
        new = torch.as_tensor(new_times, dtype=torch.float64).flatten().sort().values
        if new.numel() and (new[0] < self.times[0] or new[-1] > self.times[-1]):
            raise ValueError("refinement times must lie inside the path's time range")
        old_t, old_v = self.times.tolist(), list(self.values.unbind(0))
        fresh = [u for u in new.tolist() if not _on(self.times, u)]
        out_t: list[float] = []
        out_v: list[torch.Tensor] = []
        i = 0  # next old point
        for u in fresh + [float("inf")]:
            while i < len(old_t) and old_t[i] < u:
                out_t.append(old_t[i])
                out_v.append(old_v[i])
                i += 1
            if u == float("inf"):
                break
            if abs(out_t[-1] - u) <= 1e-15:
                continue  # a repeated new time
            t_l, w_l, t_r, w_r = out_t[-1], out_v[-1], old_t[i], old_v[i]
            frac = (u - t_l) / (t_r - t_l)
            std = ((u - t_l) * (t_r - u) / (t_r - t_l)) ** 0.5
            noise = torch.randn(w_l.shape, generator=generator, dtype=torch.float64)
            out_t.append(u)
            out_v.append(w_l + frac * (w_r - w_l) + std * noise)
        return BrownianPath(torch.tensor(out_t, dtype=torch.float64), torch.stack(out_v))

    def time_changed(self, s_grid: torch.Tensor, tau: torch.Tensor, generator: torch.Generator | None = None) -> "BrownianPath":
        """The path ``W_B`` on ``s_grid`` with ``Delta W_B = Delta W(tau) sqrt(Delta s / Delta tau)``.

        ``tau = tau(s_grid)`` (strictly increasing); the path is first refined (bridge) to contain every
        ``tau`` value, which needs ``generator`` when some are new. Returns the B-path and, through
        :meth:`values_at`, the A-path can be read at ``tau``.
        """
        s_grid = torch.as_tensor(s_grid, dtype=torch.float64)
        tau = torch.as_tensor(tau, dtype=torch.float64)
        if s_grid.shape != tau.shape or s_grid.ndim != 1:
            raise ValueError("s_grid and tau must be 1-D of the same length")
        if (tau[1:] <= tau[:-1]).any():
            raise ValueError("tau must be strictly increasing on s_grid")
        path = self._with_times(tau, generator)
        w = path.values[[path.index(float(u)) for u in tau]]
        dw = w[1:] - w[:-1]
        ratio = ((s_grid[1:] - s_grid[:-1]) / (tau[1:] - tau[:-1])).sqrt()
        dwb = dw * ratio.reshape((-1,) + (1,) * (dw.ndim - 1))
        zero = torch.zeros_like(w[:1])
        return BrownianPath(s_grid, torch.cat([zero, dwb.cumsum(0)]))

    def _with_times(self, times: torch.Tensor, generator: torch.Generator | None) -> "BrownianPath":
        missing = [float(u) for u in times if not _on(self.times, float(u))]
        if not missing:
            return self
        if generator is None:
            raise ValueError(f"{len(missing)} times are not on the path; pass a generator to refine it")
        return self.refine(torch.tensor(missing, dtype=torch.float64), generator)

    def values_at(self, times: torch.Tensor, generator: torch.Generator | None = None) -> tuple["BrownianPath", torch.Tensor]:
        """``(refined path, W(times))``."""
        path = self._with_times(torch.as_tensor(times, dtype=torch.float64), generator)
        return path, path.values[[path.index(float(u)) for u in times]]


def _on(times: torch.Tensor, u: float) -> bool:
    k = int(torch.searchsorted(times, torch.tensor(u, dtype=torch.float64)))
    return any(0 <= j < times.numel() and abs(float(times[j]) - u) <= 1e-12 for j in (k - 1, k))
