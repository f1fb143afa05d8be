"""Sampling frames: in which schedule a sampler integrates, where it starts, how its end state
becomes a sample, and which time grids it knows.

Time runs forward, t = 0 base -> t = 1 data. A model is a
:class:`~lazysi.numeric.fields.providers.FieldProvider` on its training schedule A. A frame turns
it into the provider the solver integrates:

* ``train``: the training schedule itself; start at ``Z``.
* ``lazy-vp``: the lazy VP schedule ``vp(sigma)`` (``alpha = cos(pi s/2)``,
  ``beta = sin(pi s/2)/sigma``) through the conversion C4, ``eta_B(s, x) = eta_A(tau(s), x/c_s)``,
  on CENTRED data ``X - mu`` (:class:`CentredProvider`, C14); start at ``Z``, sample
  ``sigma x_1 + mu``.
* ``lazy-pm``: the point-mass schedule ``point-mass(sigma)`` (``beta = s``,
  ``alpha = sigma sqrt(s (1 - s))``), centred; start at the point 0, sample ``x_1 + mu``.
* ``gaussian``: the training schedule with a Gaussian approximation of the data (the
  covariance-aware exponential integrators); start at ``Z``; its own grid ``vp`` is ``tau(s_k)`` of
  a uniform grid in the time ``s`` of ``vp(sigma)``; ``gauss`` equidistributes the local error of the
  Gaussian part's velocity (:mod:`lazysi.numeric.sampling.gauss_grid`).
* ``gaussian-pm``: the point-mass schedule (not centred: the Gaussian approximation carries the
  mean) with a Gaussian approximation, for the covariance-aware SDE samplers; start at 0.

Grids (:mod:`lazysi.numeric.sampling.grids`): ``uniform``, ``lambda``, ``edm``, ``shifted`` in the
frame's own time, ``vp`` and ``gauss`` for the ``gaussian`` frame, or ``steps + 1`` explicit times.
The frames that integrate in the training schedule's own time (``train``, ``gaussian``) also know
``dp``: the grid chosen by dynamic programming on pilot trajectories of the model with the frame's
first-order step (Euler; exponential Euler), computed by
:mod:`lazysi.numeric.sampling.pilot` (it needs the model, so :func:`~lazysi.numeric.sampling.generate.generate`
builds it, not :meth:`Frame.grid`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lazysi.symbolic.families import family
from lazysi.symbolic.schedule import Schedule

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.fields.convert import ConvertedProvider, NumericConversion
from lazysi.numeric.fields.providers import FieldProvider, broadcast_time
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling.gauss_grid import gauss_grid
from lazysi.numeric.sampling.seeding import per_sample_normal

__all__ = ["SamplingSetup", "Frame", "FRAMES", "PILOT_GRIDS", "CentredProvider", "lazy_provider", "conversion_to", "target_frame"]


#: grids built from pilot runs of the model (:mod:`lazysi.numeric.sampling.pilot`): ``dp`` and
#: ``auto`` (every sampler of a frame with a ``pilot_solver``), ``ctrl`` (the samplers with a free
#: error estimate)
PILOT_GRIDS = ("dp", "ctrl", "auto")


@dataclass(frozen=True)
class SamplingSetup:
    """The model-dependent settings a frame needs: the lazy data scale ``sigma``, the centring mean
    ``mu`` (event shape or scalar), the Gaussian approximation (``gaussian`` frame), the shift of
    the ``shifted`` grid and ``nu`` (SDE samplers: ``eps = nu eps*``)."""

    sigma: float = 1.0
    mu: torch.Tensor | float = 0.0
    approx: GaussianApprox | None = None
    shift: float = 3.0
    nu: float = 1.0

    def __post_init__(self):
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be positive and finite, got {self.sigma}")
        if not (self.nu >= 0 and math.isfinite(self.nu)):
            raise ValueError(f"nu must be >= 0 and finite, got {self.nu}")

    @property
    def mu_tensor(self) -> torch.Tensor:
        return torch.as_tensor(self.mu, dtype=torch.float64)


class CentredProvider(FieldProvider):
    """Fields of the centred data ``X - mu`` under the same schedule (C14):
    ``eta_{X-mu}(t, x') = eta_X(t, x' + beta_t mu) - mu``, ``eta_Z(t, x') = eta_Z(t, x' + beta_t mu)``
    (``x' = x - beta_t mu``). ``mu`` has the event shape (or is a scalar)."""

    def __init__(self, source: FieldProvider, mu: torch.Tensor):
        self.source = source
        self.schedule = source.schedule
        self.mu = torch.as_tensor(mu, dtype=torch.float64)

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mu.to(dtype=x.dtype, device=x.device)
        beta = self.schedule.beta(broadcast_time(t, x))
        eta_x, eta_z = self.source.fields(t, x + beta * mu)
        return eta_x - mu, eta_z


_CONVERSIONS: dict[tuple[str, str, float], tuple[NumericSchedule, NumericConversion]] = {}


def conversion_to(schedule: NumericSchedule, target: str | Schedule, sigma: float) -> tuple[NumericSchedule, NumericConversion]:
    """The target schedule — a lazy family ``target(sigma)`` (``vp``, ``point-mass``) or any valid
    :class:`~lazysi.symbolic.schedule.Schedule` (``sigma`` unused) — and the conversion from
    ``schedule`` to it; built once per process (symbolic work: seconds)."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be positive and finite, got {sigma}")
    key = (repr(schedule.schedule), repr(target) if isinstance(target, Schedule) else target,
           0.0 if isinstance(target, Schedule) else float(sigma))
    if key not in _CONVERSIONS:
        tgt = NumericSchedule(target if isinstance(target, Schedule) else family(target, sigma=sigma))
        _CONVERSIONS[key] = (tgt, NumericConversion(schedule, tgt.schedule))
    return _CONVERSIONS[key]


def lazy_provider(provider: FieldProvider, target: str | Schedule, sigma: float, mu: torch.Tensor | float) -> ConvertedProvider:
    """The model as a provider on the lazy schedule ``target(sigma)`` (``vp`` or ``point-mass``), or on
    a given target :class:`~lazysi.symbolic.schedule.Schedule`, for the centred data ``X - mu``."""
    tgt, conversion = conversion_to(provider.schedule, target, sigma)
    return ConvertedProvider(CentredProvider(provider, torch.as_tensor(mu, dtype=torch.float64)), tgt, conversion)


@dataclass(frozen=True)
class Frame:
    """``target``: the lazy family the model is converted to (None: its training schedule);
    ``start``: ``noise`` (``Z``) or ``point`` (0); ``scale``: the sample is ``sigma x_1 + mu``
    (else ``x_1 + mu`` when ``target`` is set); ``gaussian``: the solvers need the Gaussian
    approximation; ``sigma_rule``: the default data scale, ``settings`` (the model's settings file:
    the spectrum rule chosen for the lazy VP ODE, else the card's RMS) or ``rms`` (the RMS of the
    centred data, the paper's recipe for the point-mass SDE: ``point-mass(sigma)`` is exact for
    ``N(mu, sigma^2 I)``, C12-C13; the covariance-aware frames keep ``settings``: there sigma only
    sets the time parametrisation, as the ``vp`` grid's sigma does for the ODE frame); ``extra_grids``: grids beyond :data:`~lazysi.numeric.sampling.grids.GRIDS`;
    ``pilot_solver``: the frame's first-order step solver, which the pilot grids (``dp``) are chosen
    for (None: no pilot grids; only frames in the training schedule's time); ``control_grid``: the
    grid whose time the step-size control steps in (``ctrl``, ``--adaptive``: large steps follow it)."""

    name: str
    target: str | Schedule | None = None
    start: str = "noise"
    scale: bool = False
    centre: bool = True
    gaussian: bool = False
    sigma_rule: str = "settings"
    extra_grids: tuple[str, ...] = field(default=())
    description: str = ""
    pilot_solver: str | None = None
    control_grid: str = "uniform"

    @property
    def pilot_grids(self) -> tuple[str, ...]:
        """The grids built from pilot runs of the model for every sampler of the frame (``dp``,
        ``auto``; none without a ``pilot_solver``). ``ctrl`` needs a sampler with a free error
        estimate (:attr:`~lazysi.numeric.sampling.registry.SamplerSpec.controllable`)."""
        return ("dp", "auto") if self.pilot_solver is not None else ()

    @property
    def grids(self) -> tuple[str, ...]:
        return (*self.extra_grids, *grids.GRIDS, *self.pilot_grids)

    def provider(self, model: FieldProvider, setup: SamplingSetup) -> FieldProvider:
        """The provider the solver integrates."""
        if self.target is None:
            return model
        return lazy_provider(model, self.target, setup.sigma, setup.mu_tensor if self.centre else 0.0)

    def initial(self, seed: int, indices: Sequence[int], shape: Sequence[int], dtype: torch.dtype,
                device: str | torch.device, schedule: NumericSchedule) -> torch.Tensor:
        """The start state: row j depends only on ``(seed, indices[j])``; ``schedule``: the one the
        frame integrates in (its :meth:`provider`'s)."""
        if self.start == "point":
            return torch.zeros((len(indices), *shape), dtype=dtype, device=device)
        z = per_sample_normal(seed, indices, shape, dtype=dtype, device=device)
        if self.start == "alpha0":  # a target schedule: I_0 = c_0 Z with c_0 = alpha_B(0) (C4)
            a0 = float(schedule.alpha(torch.zeros((), dtype=torch.float64)))
            return z * a0 if a0 != 1.0 else z
        return z

    def finish(self, x: torch.Tensor, setup: SamplingSetup, schedule: NumericSchedule) -> torch.Tensor:
        """The sample (data space) from the end state in ``schedule`` (the frame's, as in :meth:`initial`)."""
        if self.target is None:
            return x
        mu = setup.mu_tensor.to(dtype=x.dtype, device=x.device) if self.centre else None
        if isinstance(self.target, Schedule):  # X = I_1 / c_1 with c_1 = beta_B(1) (C4)
            b1 = float(schedule.beta(torch.ones((), dtype=torch.float64)))
            x = x / b1 if b1 != 1.0 else x
            return x if mu is None else x + mu
        if mu is None:
            return x
        return (setup.sigma * x + mu) if self.scale else (x + mu)

    def grid(self, kind: str | Sequence[float] | torch.Tensor, schedule: NumericSchedule, steps: int,
             setup: SamplingSetup) -> torch.Tensor:
        """``steps + 1`` float64 times in the frame's time: a grid name or explicit times."""
        if not isinstance(kind, str):
            return grids.explicit_grid(kind, steps)
        if kind not in self.grids:  # (a target frame knows the named grids in its own time)
            raise ValueError(f"unknown grid {kind!r} for the {self.name} frame; known: {', '.join(self.grids)}")
        if kind in PILOT_GRIDS:
            raise ValueError(f"the {kind} grid is built from pilot trajectories of the model: "
                             "lazysi.numeric.sampling.pilot (generate() does this)")
        if kind == "gauss":
            return gauss_grid(schedule, setup.approx, steps)
        if kind == "vp":
            _, conversion = conversion_to(schedule, "vp", setup.sigma)
            g = conversion.tau(grids.uniform(steps)).to(torch.float64)
            g[0], g[-1] = 0.0, 1.0
            return grids.check_grid(g)
        return grids.named_grid(kind, schedule, steps, setup.shift)


FRAMES: dict[str, Frame] = {
    f.name: f
    for f in (
        Frame("train", description="the model's training schedule", pilot_solver="euler"),
        Frame("lazy-vp", target="vp", scale=True, description="lazy VP schedule vp(sigma), centred, output sigma x + mu"),
        Frame("lazy-pm", target="point-mass", start="point", sigma_rule="rms",
              description="point-mass schedule point-mass(sigma), centred, start at 0, output x + mu"),
        Frame("gaussian", gaussian=True, extra_grids=("vp", "gauss"), pilot_solver="exp-euler", control_grid="vp",
              description="training schedule, Gaussian approximation's flow exact per eigendirection"),
        Frame("gaussian-pm", target="point-mass", start="point", centre=False, gaussian=True,
              description="point-mass schedule point-mass(sigma) (uncentred: the Gaussian approximation carries the "
                          "mean), start at 0, the Gaussian part of the SDE exact per eigendirection"),
    )
}


def target_frame(frame: Frame, target: Schedule) -> Frame:
    """``frame`` moved to the schedule ``target`` (a user's ``--target``): the model converted to it
    (C4; centred as ``frame`` is), started at ``alpha_target(0) Z`` (0 for a point-mass target) and
    ended at ``x / beta_target(1) (+ mu)``; the Gaussian frames integrate their Gaussian part in the
    target's time (uncentred, the approximation carries the mean)."""
    return Frame(f"{frame.name}@target", target=target, start="alpha0", centre=not frame.gaussian and frame.centre,
                 gaussian=frame.gaussian, sigma_rule=frame.sigma_rule, description=f"{frame.description}; moved to the target schedule {target.name}")
