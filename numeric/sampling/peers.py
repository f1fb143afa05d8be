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

__all__ = ["Peer", "PEERS", "peer_available", "check_linear", "diffusers_scheduler"]

def check_linear(provider: FieldProvider) -> None:
    """Flow-matching peers need the model on the linear schedule (``alpha = 1 - t``, ``beta = t``)."""
    sch = provider.schedule
    tv = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    if not (torch.allclose(sch.alpha(tv), 1 - tv, atol=1e-14) and torch.allclose(sch.beta(tv), tv, atol=1e-14)):
        raise ValueError("the peers are flow-matching samplers: the model must be on the linear schedule "
                         f"(alpha = 1 - t, beta = t), got {sch.schedule.name!r}")


@dataclass(frozen=True)
class Peer:
    """Another package's sampler as a lazysi method (see :class:`~lazysi.numeric.sampling.methods.Method`).
    ``package``: the import name it needs (:data:`lazysi.numeric.extras.OPTIONAL` names the extra
    that installs it); ``run(provider, steps, x0, noise) -> x``."""

    name: str
    kind: str
    order: float | None
    package: str
    settings: str
    run: Callable[[FieldProvider, int, torch.Tensor, Noise], torch.Tensor]
    evals_per_step: int = 1
    own_grid: bool = True

    @property
    def extra(self) -> str:
        return OPTIONAL[self.package][1]

    def evals(self, steps: int) -> int:
        return self.evals_per_step * steps

    def available(self) -> bool:
        try:
            self.require()
        except ImportError:
            return False
        return True

    def require(self) -> None:
        """Raise :class:`~lazysi.numeric.extras.MissingExtraError` naming the extra when the package is missing."""
        require((self.package,), f"sampler {self.name}")

    def solve(self, provider: FieldProvider, steps: int, grid: torch.Tensor | None, x0: torch.Tensor, noise: Noise,
              setup: SamplingSetup) -> torch.Tensor:
        if grid is not None:
            raise ValueError(f"{self.name} runs on its scheduler's own grid")
        self.require()
        check_linear(provider)
        return self.run(provider, steps, x0, noise)


def _diffusers_loop(make_scheduler: Callable[[], object]):
    """A diffusers scheduler's sampling loop on a lazysi provider (linear schedule)."""

    def run(provider: FieldProvider, steps: int, x0: torch.Tensor, noise: Noise) -> torch.Tensor:
        sched = make_scheduler()
        sched.set_timesteps(num_inference_steps=steps, device=x0.device)
        x = x0 * float(getattr(sched, "init_noise_sigma", 1.0))
        sigmas = sched.sigmas.to(torch.float64)
        for i, ts in enumerate(sched.timesteps):
            t_ours = (1.0 - sigmas[i]).to(x0.device)  # diffusers sigma -> lazysi time
            model_output = -provider.drift(t_ours, x)  # lazysi velocity b = X - Z -> diffusers v = Z - X
            x = sched.step(model_output, ts, x, return_dict=False)[0]
        return x

    return run


def _fm_euler():
    import diffusers

    return diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def _dpmpp_2m():
    import diffusers

    return diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                                 use_flow_sigmas=True, flow_shift=1.0, solver_order=2,
                                                 algorithm_type="dpmsolver++")


def _unipc():
    import diffusers

    return diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                             use_flow_sigmas=True, flow_shift=1.0, solver_order=2)


def _fm_midpoint(provider: FieldProvider, steps: int, x0: torch.Tensor, noise: Noise) -> torch.Tensor:
    from flow_matching.solver import ODESolver

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # flow_matching: (x, t)
        return provider.drift(t.to(torch.float64), x)

    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    return ODESolver(velocity_model=velocity).sample(x_init=x0, step_size=None, method="midpoint", time_grid=grid)


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("fm-euler", "ode", 1.0, "diffusers", "diffusers FlowMatchEulerDiscreteScheduler (shift 1)", _diffusers_loop(_fm_euler)),
        Peer("dpm++2m", "ode", 2.0, "diffusers",
             "diffusers DPMSolverMultistepScheduler, flow_prediction, flow sigmas, dpmsolver++ order 2 (2M)",
             _diffusers_loop(_dpmpp_2m)),
        Peer("unipc", "ode", 2.0, "diffusers", "diffusers UniPCMultistepScheduler, flow_prediction, flow sigmas (bh2, order 2)",
             _diffusers_loop(_unipc)),
        Peer("fm-midpoint", "ode", 2.0, "flow_matching", "flow_matching ODESolver, method='midpoint', uniform grid",
             _fm_midpoint, evals_per_step=2),
    )
}


_DIFFUSERS = {"fm-euler": _fm_euler, "dpm++2m": _dpmpp_2m, "unipc": _unipc}


def diffusers_scheduler(name: str):
    """The configured diffusers scheduler behind peer ``name`` (a fresh object)."""
    if name not in _DIFFUSERS:
        raise ValueError(f"{name!r} is not a diffusers peer; known: {', '.join(_DIFFUSERS)}")
    return _DIFFUSERS[name]()


def peer_available(name: str) -> bool:
    """Whether the package behind peer ``name`` imports."""
    return PEERS[name].available()
