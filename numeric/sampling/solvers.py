"""Samplers: pure step functions with a declared order, one thin loop (STYLE.md principle 4).

Time runs forward from the base (t = 0) to the data (t = 1) over an explicit float64 grid.

* ODE ``dx/dt = v(t, x)``: a step is ``step(field, t0, t1, x, state) -> (x, state)`` with
  ``field = ODE(v)``; explicit Runge-Kutta methods are Butcher tables served by one stepper
  (``euler`` order 1, ``midpoint`` and ``heun`` order 2, ``rk4`` order 4).
* SDE ``dx = f(t, x) dt + g(t) dW`` (additive noise, as for the interpolant SDEs:
  ``f = b + eps s``, ``g = sqrt(2 eps)``): ``field = SDE(f, g)`` and ``state`` is the
  :class:`~lazysi.numeric.sampling.brownian.BrownianPath` that drives the step (read-only, so the step is
  pure). ``em`` (Euler-Maruyama) has strong order 1 for additive noise (1/2 in general);
  ``heun_sde`` (stochastic Heun, drift averaged, same increment) has strong order 1 for additive
  noise and weak order 2.

:func:`integrate` is the loop; it raises :class:`NonFiniteError` naming the step index and times
when a non-finite value appears, keeping the states computed so far.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lazysi.numeric.sampling.brownian import BrownianPath
from lazysi.numeric.sampling.grids import check_grid

__all__ = [
    "ODE",
    "SDE",
    "NonFiniteError",
    "Solver",
    "SOLVERS",
    "get_solver",
    "integrate",
    "provider_ode",
    "provider_sde",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ODE:
    """``dx/dt = velocity(t, x)``; ``t`` is a 0-d float64 tensor."""

    velocity: Field


@dataclass(frozen=True)
class SDE:
    """``dx = drift(t, x) dt + sigma(t) dW`` (additive noise); ``sigma(t)`` is a 0-d tensor."""

    drift: Field
    sigma: Callable[[torch.Tensor], torch.Tensor]


class NonFiniteError(FloatingPointError):
    """A sampler met a non-finite value; ``step``, ``t0``, ``t1`` name where, ``states`` holds the
    states computed before (``states[0]`` is the initial state)."""

    def __init__(self, step: int, t0: float, t1: float, states: list[torch.Tensor]):
        super().__init__(f"non-finite value at step {step} (t = {t0!r} -> {t1!r}); {len(states)} finite states kept")
        self.step, self.t0, self.t1, self.states = step, t0, t1, states


@dataclass(frozen=True)
class Solver:
    """A named step function with its declared order (strong order for SDE solvers)."""

    name: str
    kind: str  # "ode" or "sde"
    order: float
    step: Callable


def _rk_step(a: tuple[tuple[float, ...], ...], b: tuple[float, ...], c: tuple[float, ...]):
    """One explicit Runge-Kutta stepper from a Butcher table (torchdiffeq's habit)."""

    def step(field: ODE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state=None):
        h = t1 - t0
        ks: list[torch.Tensor] = []
        for i, ci in enumerate(c):
            xi = x
            for aij, kj in zip(a[i], ks):
                if aij:
                    xi = xi + (h * aij) * kj
            ks.append(field.velocity(t0 + ci * h, xi))
        out = x
        for bi, ki in zip(b, ks):
            if bi:
                out = out + (h * bi) * ki
        return out, state

    return step


_euler = _rk_step(((),), (1.0,), (0.0,))
_midpoint = _rk_step(((), (0.5,)), (0.0, 1.0), (0.0, 0.5))
_heun = _rk_step(((), (1.0,)), (0.5, 0.5), (0.0, 1.0))
_rk4 = _rk_step(((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6), (0.0, 0.5, 0.5, 1.0))


def _em(field: SDE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state: BrownianPath):
    """Euler-Maruyama: ``x + f(t0, x) h + g(t0) dW``."""
    dw = state.increment(float(t0), float(t1)).to(x.dtype)
    return x + (t1 - t0) * field.drift(t0, x) + field.sigma(t0) * dw, state


def _heun_sde(field: SDE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state: BrownianPath):
    """Stochastic Heun (additive noise): predictor ``x~ = x + f0 h + g0 dW``, corrector averages the
    drift and the noise coefficient at both ends with the same increment."""
    dw = state.increment(float(t0), float(t1)).to(x.dtype)
    h = t1 - t0
    f0, g0 = field.drift(t0, x), field.sigma(t0)
    pred = x + h * f0 + g0 * dw
    f1, g1 = field.drift(t1, pred), field.sigma(t1)
    return x + 0.5 * h * (f0 + f1) + 0.5 * (g0 + g1) * dw, state


SOLVERS: dict[str, Solver] = {
    s.name: s
    for s in (
        Solver("euler", "ode", 1.0, _euler),
        Solver("midpoint", "ode", 2.0, _midpoint),
        Solver("heun", "ode", 2.0, _heun),
        Solver("rk4", "ode", 4.0, _rk4),
        Solver("em", "sde", 1.0, _em),
        Solver("heun_sde", "sde", 1.0, _heun_sde),
    )
}


def get_solver(name: str) -> Solver:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}")
    return SOLVERS[name]


def integrate(solver: str | Solver, field, grid: torch.Tensor, x0: torch.Tensor, state=None, *, keep_path: bool = False):
    """Run ``solver`` over ``grid`` (float64, increasing) from ``x0``; returns the final state, or the
    list of states at every grid time with ``keep_path``. SDE solvers need ``state`` (a
    :class:`BrownianPath` whose grid contains ``grid``)."""
    solver = get_solver(solver) if isinstance(solver, str) else solver
    grid = check_grid(grid)
    if solver.kind == "ode" and not isinstance(field, ODE):
        raise TypeError(f"{solver.name} is an ODE solver; pass an ODE field")
    if solver.kind == "sde":
        if not isinstance(field, SDE):
            raise TypeError(f"{solver.name} is an SDE solver; pass an SDE field")
        if not isinstance(state, BrownianPath):
            raise TypeError(f"{solver.name} needs a BrownianPath as state")
    x = x0
    states = [x0]
    for k in range(grid.numel() - 1):
        t0, t1 = grid[k], grid[k + 1]
        x, state = solver.step(field, t0, t1, x, state)
        if not torch.isfinite(x).all():
            raise NonFiniteError(k, float(t0), float(t1), states)
        if keep_path:
            states.append(x)
        else:
            states = [x]
    return states if keep_path else x


def provider_ode(provider) -> ODE:
    """The probability-flow ODE of a :class:`~lazysi.numeric.fields.providers.FieldProvider`."""
    return ODE(lambda t, x: provider.drift(t, x))


def provider_sde(provider, diffusion) -> SDE:
    """``dX = (b + eps s) dt + sqrt(2 eps) dW`` of a provider and a
    :class:`~lazysi.numeric.fields.providers.Diffusion`."""
    sch = provider.schedule
    return SDE(lambda t, x: provider.drift(t, x, diffusion), lambda t: (2.0 * diffusion.eps(sch, torch.as_tensor(t, dtype=torch.float64))).sqrt())
