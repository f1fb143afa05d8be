"""Peer samplers a user would pick instead, run on the SAME model (a lazysi FieldProvider).

Optional dependencies (the ``bench`` extra): diffusers and flow_matching. Each peer runs at its
recommended settings for a flow-matching model with uniform training times (no timestep shift):

* ``fm-euler``: diffusers ``FlowMatchEulerDiscreteScheduler()`` (defaults: shift 1).
* ``dpm++2m``: diffusers ``DPMSolverMultistepScheduler(prediction_type="flow_prediction",
  use_flow_sigmas=True, flow_shift=1.0, solver_order=2, algorithm_type="dpmsolver++")``
  (DPM-Solver++(2M); other options at their defaults: midpoint solver type, lower-order final step,
  final sigma 0).
* ``unipc``: diffusers ``UniPCMultistepScheduler(prediction_type="flow_prediction",
  use_flow_sigmas=True, flow_shift=1.0)`` (defaults: order 2, bh2, data prediction, corrector on).
* ``fm-midpoint``: flow_matching ``ODESolver(...).sample(method="midpoint")`` on a uniform grid of
  ``steps`` steps (two evaluations per step).

Every peer but the adaptive one also runs on explicit times (``NAME@dp``, the grid by dynamic
programming on pilot trajectories: :mod:`lazysi.numeric.sampling.pilot`): diffusers' schedulers get
``sigma_i = 1 - t_i`` (:mod:`~lazysi.numeric.sampling.peer_solvers`), flow_matching its ``time_grid``.

Conventions converted HERE and only here. diffusers: ``sigma = 1 - t``, latents
``x = (1 - sigma) X + sigma Z``, model output ``v = Z - X``; with lazysi's linear training schedule
(``alpha = 1 - t``, ``beta = t``, t = 0 noise) the model output is ``-b(t, x)`` at ``t = 1 - sigma``
(``b``: lazysi's velocity). flow_matching: t = 0 noise, velocity ``X - Z`` = lazysi's ``b``, no
conversion. Every peer starts from the same per-sample noise ``Z`` as lazysi's samplers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lazysi.numeric.extras import OPTIONAL, require
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.methods import Noise
from lazysi.numeric.sampling.peer_solvers import (DECLARED_ORDERS, PEER_IMPLS, PeerImpl, adaptive_nfe, check_linear_schedule,
                                                  diffusers_scheduler)

__all__ = ["Peer", "PEERS", "peer_available", "check_linear", "diffusers_scheduler"]

check_linear = check_linear_schedule


@dataclass(frozen=True)
class Peer:
    """Another sampler than ours as a lazysi method (see :class:`~lazysi.numeric.sampling.methods.Method`):
    another package's (``package``: the import name it needs; :data:`lazysi.numeric.extras.OPTIONAL`
    names the extra that installs it) or one written here from its published rule (``package``
    None). ``run(provider, steps, x0, noise, grid) -> x``; ``own_grid``: its default grid is its
    own (no named grid of lazysi's); ``explicit_grid``: it also runs on ``steps + 1`` explicit times;
    ``adaptive``: its NFE is counted, not a function of ``steps``."""

    name: str
    kind: str
    order: float | None
    package: str | None
    settings: str
    run: Callable[[FieldProvider, int, torch.Tensor, Noise, torch.Tensor | None], torch.Tensor]
    evals_per_step: int = 1
    own_grid: bool = True
    adaptive: bool = False
    explicit_grid: bool = True

    @classmethod
    def from_impl(cls, impl: PeerImpl) -> "Peer":
        """A peer of :mod:`lazysi.numeric.sampling.peer_solvers` (``run(provider, steps, x0, *, seed,
        indices, grid)``; diffusers peers on their own grid, written ones on the frame's grid)."""
        adaptive = impl.nfe is adaptive_nfe  # error-controlled: its NFE is counted, not declared

        def run(provider, steps, x0, noise, grid):
            return impl.run(provider, steps, x0, seed=noise.seed, indices=noise.indices, grid=grid)

        per_step = 1 if adaptive else impl.nfe(1)
        return cls(impl.name, impl.kind, DECLARED_ORDERS.get(impl.name), impl.package, impl.settings, run, per_step,
                   own_grid=impl.package is not None or adaptive, adaptive=adaptive, explicit_grid=not adaptive)

    @property
    def extra(self) -> str | None:
        return OPTIONAL[self.package][1] if self.package else None

    def evals(self, steps: int) -> int:
        if self.adaptive:
            raise ValueError(f"{self.name} is error-controlled: its NFE is counted, not a function of steps")
        return self.evals_per_step * steps

    def available(self) -> bool:
        if self.package is None:
            return True
        try:
            self.require()
        except ImportError:
            return False
        return True

    def require(self) -> None:
        """Raise :class:`~lazysi.numeric.extras.MissingExtraError` naming the extra when the package is missing."""
        if self.package is not None:
            require((self.package,), f"sampler {self.name}")

    def solve(self, provider: FieldProvider, steps: int, grid: torch.Tensor | None, x0: torch.Tensor, noise: Noise,
              setup: SamplingSetup) -> torch.Tensor:
        if grid is not None and self.own_grid and not self.explicit_grid:
            raise ValueError(f"{self.name} runs on its own grid")
        self.require()
        check_linear(provider)
        return self.run(provider, steps, x0, noise, grid)


def _fm_midpoint(provider: FieldProvider, steps: int, x0: torch.Tensor, noise: Noise, grid: torch.Tensor | None) -> torch.Tensor:
    from flow_matching.solver import ODESolver

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # flow_matching: (x, t)
        return provider.drift(t.to(torch.float64), x)

    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64) if grid is None else grid
    return ODESolver(velocity_model=velocity).sample(x_init=x0, step_size=None, method="midpoint", time_grid=grid)


_FIRST = ("fm-euler", "dpm++2m", "unipc")
PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        *(Peer.from_impl(PEER_IMPLS[name]) for name in _FIRST),
        Peer("fm-midpoint", "ode", 2.0, "flow_matching", "flow_matching ODESolver, method='midpoint', uniform grid "
             "(explicit times: time_grid)", _fm_midpoint, evals_per_step=2),
        *(Peer.from_impl(impl) for name, impl in PEER_IMPLS.items() if name not in _FIRST),
    )
}


def peer_available(name: str) -> bool:
    """Whether the package behind peer ``name`` imports."""
    return PEERS[name].available()
