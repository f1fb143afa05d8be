"""How a sampler integrates: a :class:`StepMethod` runs a step solver of
:mod:`lazysi.numeric.sampling.solvers` over a grid in the one loop; a peer (another package's
sampler, :mod:`lazysi.numeric.sampling.peers`) runs its own loop. Both take the same inputs:
the frame's provider, the number of steps, the grid (None: the method's own), the start state and
the per-sample :class:`Noise`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from lazysi.numeric.fields.providers import Diffusion, FieldProvider
from lazysi.numeric.sampling.brownian import BrownianPath
from lazysi.numeric.sampling.frame import GaussianTerm
from lazysi.numeric.sampling.frame_sde import GaussianSDETerm
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.seeding import per_sample_normal, sample_seed
from lazysi.numeric.sampling.solvers import ControlRecord, Solver, control_times, get_solver, integrate, provider_ode, provider_sde

__all__ = ["Noise", "Method", "StepMethod"]


@dataclass(frozen=True)
class Noise:
    """Per-sample randomness of one call: sample ``indices[j]``'s noise depends only on
    ``(seed, indices[j])`` and the stream, never on the batch."""

    seed: int
    indices: tuple[int, ...]
    shape: tuple[int, ...]

    def brownian(self, grid: torch.Tensor, device: str | torch.device = "cpu") -> BrownianPath:
        """A Brownian path on ``grid`` (stream ``brownian``)."""
        path = BrownianPath.sample(grid, len(self.indices), self.shape, seed=self.seed, indices=self.indices)
        return path if torch.device(device).type == "cpu" else BrownianPath(path.times, path.values.to(device))

    def normals(self, steps: int, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
        """``(steps, B, *shape)`` i.i.d. standard normals (stream ``brownian``)."""
        xi = per_sample_normal(self.seed, self.indices, (steps, *self.shape), stream="brownian", dtype=dtype, device=device)
        return xi.movedim(1, 0)

    def generators(self, stream: str) -> list[torch.Generator]:
        """One seeded ``torch.Generator`` per sample (for packages that draw row by row)."""
        return [torch.Generator().manual_seed(sample_seed(self.seed, i, stream)) for i in self.indices]


class Method(Protocol):
    """What a sampler spec runs. ``kind``: ``ode`` or ``sde``; ``order``: declared order (None:
    unknown or adaptive); ``evals(n)``: model evaluations of an ``n``-step run; ``own_grid``: the
    method picks its grid itself (a grid argument is refused)."""

    name: str
    kind: str
    order: float | None
    own_grid: bool

    def evals(self, steps: int) -> int: ...

    def solve(self, provider: FieldProvider, steps: int, grid: torch.Tensor | None, x0: torch.Tensor, noise: Noise,
              setup: SamplingSetup) -> torch.Tensor: ...


@dataclass(frozen=True)
class StepMethod:
    """A step solver driven by :func:`~lazysi.numeric.sampling.solvers.integrate` on the field its
    kind needs: the provider's probability-flow ODE, its SDE with ``eps = nu eps*`` driven by a
    per-sample Brownian path, or the covariance-aware "Gaussian part + residual" term."""

    solver: Solver
    own_grid: bool = False

    @classmethod
    def of(cls, name: str) -> "StepMethod":
        return cls(get_solver(name))

    @property
    def name(self) -> str:
        return self.solver.name

    @property
    def kind(self) -> str:
        return "sde" if self.solver.kind in ("sde", "frame-sde") else "ode"

    @property
    def order(self) -> float:
        return self.solver.order

    def evals(self, steps: int) -> int:
        return self.solver.evals(steps)

    def solve(self, provider: FieldProvider, steps: int, grid: torch.Tensor | None, x0: torch.Tensor, noise: Noise,
              setup: SamplingSetup) -> torch.Tensor:
        if grid is None or grid.numel() != steps + 1:
            raise ValueError(f"{self.name} needs a grid of {steps + 1} times")
        if self.solver.kind == "ode":
            return integrate(self.solver, provider_ode(provider), grid, x0)
        if self.solver.kind == "sde":
            sde = provider_sde(provider, Diffusion.optimal(setup.nu))
            return integrate(self.solver, sde, grid, x0, state=noise.brownian(grid, x0.device))
        if self.solver.kind == "frame-sde":
            self._approx(setup)
            term = GaussianSDETerm(provider, setup.approx, noise.normals(steps, x0.dtype, x0.device), setup.nu,
                                   tuple(x0.shape[1:]), x0.dtype, x0.device)
        else:
            term = self._gaussian_term(provider, x0, setup)
        return integrate(self.solver, term, grid, x0.reshape(x0.shape[0], -1)).reshape(x0.shape)

    def _approx(self, setup: SamplingSetup):
        if setup.approx is None:
            raise ValueError(f"{self.name} integrates in the Gaussian frame: the setup needs a Gaussian approximation")
        return setup.approx

    def _gaussian_term(self, provider: FieldProvider, x0: torch.Tensor, setup: SamplingSetup) -> GaussianTerm:
        return GaussianTerm(provider, self._approx(setup), tuple(x0.shape[1:]), x0.dtype, x0.device)

    def control(self, provider: FieldProvider, x0: torch.Tensor, setup: SamplingSetup, tol: float,
                time_map=None, max_steps: int = 1000) -> ControlRecord:
        """Step-size control of this solver from ``x0`` at t = 0 to t = 1 with its free error estimate
        (:func:`~lazysi.numeric.sampling.solvers.control_times`): the accepted times are a grid.
        Needs a solver with an ``estimate`` (the covariance-aware predictor-correctors)."""
        if self.solver.estimate is None or self.solver.kind != "frame":
            raise ValueError(f"{self.name} has no free error estimate: step-size control needs a predictor-corrector "
                             "of the Gaussian frame (exp-pc, exp-pc4)")
        return control_times(self.solver, self._gaussian_term(provider, x0, setup), 0.0, 1.0, x0.reshape(x0.shape[0], -1),
                             tol, time_map=time_map, max_steps=max_steps)
