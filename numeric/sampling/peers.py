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
  NFE/2 steps (two evaluations per step: odd NFE are not possible).

Conventions converted HERE and only here. diffusers: ``sigma = 1 - t``, latents
``x = (1 - sigma) X + sigma Z``, model output ``v = Z - X``; with lazysi's linear training schedule
(``alpha = 1 - t``, ``beta = t``, t = 0 noise) the model output is ``-b(t, x)`` at ``t = 1 - sigma``
(``b``: lazysi's velocity). flow_matching: t = 0 noise, velocity ``X - Z`` = lazysi's ``b``, no
conversion. Every peer starts from the same per-sample noise ``Z`` as :func:`lazysi.numeric.sampling.lazy.generate`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lazysi.numeric.sampling.lazy import CountingProvider
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.sampling.seeding import per_sample_normal

__all__ = ["PEERS", "PeerSpec", "peer_sample", "generate_peer", "peer_available"]


@dataclass(frozen=True)
class PeerSpec:
    name: str
    package: str
    description: str
    evals_per_step: int


PEERS: dict[str, PeerSpec] = {
    p.name: p
    for p in (
        PeerSpec("fm-euler", "diffusers", "diffusers FlowMatchEulerDiscreteScheduler (shift 1)", 1),
        PeerSpec("dpm++2m", "diffusers", "diffusers DPMSolverMultistepScheduler, flow_prediction, flow sigmas, dpmsolver++ order 2 (2M)", 1),
        PeerSpec("unipc", "diffusers", "diffusers UniPCMultistepScheduler, flow_prediction, flow sigmas (bh2, order 2)", 1),
        PeerSpec("fm-midpoint", "flow_matching", "flow_matching ODESolver, method='midpoint', uniform grid", 2),
    )
}


def peer_available(name: str) -> bool:
    """Whether the package behind peer ``name`` imports."""
    import importlib.util

    return importlib.util.find_spec(PEERS[name].package) is not None


def _check_linear(provider: FieldProvider) -> None:
    sch = provider.schedule
    tv = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    if not (torch.allclose(sch.alpha(tv), 1 - tv, atol=1e-14) and torch.allclose(sch.beta(tv), tv, atol=1e-14)):
        raise ValueError("the peers are flow-matching samplers: the model must be on the linear schedule "
                         f"(alpha = 1 - t, beta = t), got {sch.schedule.name!r}")


def _diffusers_scheduler(name: str):
    import diffusers

    if name == "fm-euler":
        return diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    if name == "dpm++2m":
        return diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                                     use_flow_sigmas=True, flow_shift=1.0, solver_order=2,
                                                     algorithm_type="dpmsolver++")
    if name == "unipc":
        return diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                                 use_flow_sigmas=True, flow_shift=1.0, solver_order=2)
    raise ValueError(f"{name!r} is not a diffusers peer")


def peer_sample(provider: FieldProvider, name: str, nfe: int, x0: torch.Tensor) -> torch.Tensor:
    """Run peer ``name`` with ``nfe`` model evaluations from the noise ``x0`` (t = 0); returns the
    sample at t = 1 (data space). ``provider`` must be on the linear schedule."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 1:
        raise ValueError(f"nfe must be a positive int, got {nfe!r}")
    _check_linear(provider)
    if name == "fm-midpoint":
        if nfe % 2:
            raise ValueError(f"fm-midpoint uses 2 evaluations per step: nfe must be even, got {nfe}")
        from flow_matching.solver import ODESolver

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # flow_matching: (x, t)
            return provider.drift(t.to(torch.float64), x)

        grid = torch.linspace(0.0, 1.0, nfe // 2 + 1, dtype=torch.float64)
        return ODESolver(velocity_model=velocity).sample(x_init=x0, step_size=None, method="midpoint", time_grid=grid)
    sched = _diffusers_scheduler(name)
    sched.set_timesteps(num_inference_steps=nfe, device=x0.device)
    x = x0 * float(getattr(sched, "init_noise_sigma", 1.0))
    sigmas = sched.sigmas.to(torch.float64)
    for i, ts in enumerate(sched.timesteps):
        t_ours = (1.0 - sigmas[i]).to(x0.device)  # diffusers sigma -> lazysi time
        model_output = -provider.drift(t_ours, x)  # lazysi velocity b = X - Z -> diffusers v = Z - X
        x = sched.step(model_output, ts, x, return_dict=False)[0]
    return x


def generate_peer(provider: FieldProvider, name: str, nfe: int, indices: Sequence[int], seed: int,
                  shape: Sequence[int], *, dtype: torch.dtype = torch.float64,
                  device: str | torch.device = "cpu") -> tuple[torch.Tensor, int]:
    """Samples of peer ``name`` for ``indices`` (same per-sample noise as lazysi's samplers) and the
    counted number of model evaluations per sample."""
    counter = CountingProvider(provider)
    x0 = per_sample_normal(seed, [int(i) for i in indices], tuple(shape), dtype=dtype, device=device)
    x = peer_sample(counter, name, nfe, x0)
    return x, counter.calls
