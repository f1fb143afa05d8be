"""Field providers: anything that returns ``eta_X, eta_Z`` at (t, x) under a schedule.

Convention: t = 0 base, t = 1 data, ``x = alpha eta_Z + beta eta_X``. From the two fields:

* score ``s = -eta_Z / alpha``;
* velocity ``b = alpha_dot eta_Z + beta_dot eta_X``;
* SDE drift ``b + eps s = b - (eps / alpha) eta_Z``. For ``eps = nu eps*`` the factor
  ``eps*/alpha = alpha beta_dot / beta - alpha_dot`` is a generated, endpoint-safe kernel, so the
  drift stays finite where the score is not (alpha = 0).

Shapes: ``x`` is ``(batch, *dims)``; ``t`` is a scalar tensor or ``(batch,)``. Everything is
evaluated in ``x``'s dtype and device; time is converted to that dtype at the edge.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from lazysi.numeric.fields.schedule import NumericSchedule

__all__ = ["FieldProvider", "broadcast_time", "Diffusion"]


def broadcast_time(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor of x's dtype/device, shaped ``(batch, 1, ..., 1)`` to broadcast against x."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.reshape((1,) * x.ndim)
    if t.ndim == 1 and t.shape[0] in (1, x.shape[0]):
        return t.reshape((t.shape[0],) + (1,) * (x.ndim - 1))
    raise ValueError(f"time must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")


class Diffusion:
    """A diffusion coefficient choice: ``Diffusion.optimal(nu)`` (``eps = nu eps*``) or
    ``Diffusion.zero()`` (the probability-flow ODE) or ``Diffusion.function(f)`` for any
    ``f(t) -> eps``."""

    def __init__(self, kind: str, nu: float = 0.0, fn=None):
        if kind not in ("zero", "optimal", "function"):
            raise ValueError(f"unknown diffusion kind {kind!r}")
        self.kind, self.nu, self.fn = kind, float(nu), fn

    @classmethod
    def zero(cls) -> "Diffusion":
        return cls("zero")

    @classmethod
    def optimal(cls, nu: float = 1.0) -> "Diffusion":
        if nu < 0:
            raise ValueError(f"nu must be >= 0, got {nu}")
        return cls("optimal", nu=nu)

    @classmethod
    def function(cls, fn) -> "Diffusion":
        return cls("function", fn=fn)

    def eps(self, schedule: NumericSchedule, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "zero":
            return torch.zeros_like(t)
        if self.kind == "optimal":
            return self.nu * schedule.eps_star(t)
        return torch.as_tensor(self.fn(t), dtype=t.dtype, device=t.device)

    def eps_over_alpha(self, schedule: NumericSchedule, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "zero":
            return torch.zeros_like(t)
        if self.kind == "optimal":
            return self.nu * schedule.eps_star_over_alpha(t)
        return self.eps(schedule, t) / schedule.alpha(t)

    def __repr__(self) -> str:
        return {"zero": "Diffusion.zero()", "optimal": f"Diffusion.optimal({self.nu})"}.get(self.kind, "Diffusion.function(...)")


class FieldProvider(ABC):
    """Returns the conditional expectations ``eta_X = E[X | I_t = x]``, ``eta_Z = E[Z | I_t = x]``."""

    schedule: NumericSchedule

    @abstractmethod
    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eta_X, eta_Z)`` at times ``t`` (scalar or (batch,)) and states ``x`` (batch, ...)."""

    def _tv(self, t, x: torch.Tensor) -> torch.Tensor:
        return broadcast_time(t, x)

    def score(self, t, x: torch.Tensor) -> torch.Tensor:
        """``grad log p_t(x) = -eta_Z / alpha`` (0/0 where alpha = 0; exact providers override)."""
        tb = self._tv(t, x)
        _, eta_z = self.fields(t, x)
        return -eta_z / self.schedule.alpha(tb)

    def velocity(self, t, x: torch.Tensor) -> torch.Tensor:
        tb = self._tv(t, x)
        eta_x, eta_z = self.fields(t, x)
        return self.schedule.alpha_dot(tb) * eta_z + self.schedule.beta_dot(tb) * eta_x

    def _late_coefficient_infinite_on_host(self, t, x: torch.Tensor, diffusion: Diffusion) -> bool | None:
        """Whether ``alpha_dot - eps/alpha`` is non-finite at some time ``>= 1/2`` of ``t``, decided
        on the CPU in x's dtype when ``t`` is a number or a CPU tensor (the samplers' grids are), so
        that :meth:`drift` on an accelerator does not wait for the device to answer
        ``infinite.any()`` on every call; ``None`` when ``t`` itself lives on the device."""
        if torch.is_tensor(t) and t.device.type != "cpu":
            return None
        th = torch.as_tensor(t, dtype=x.dtype).reshape(-1)
        coeff = self.schedule.alpha_dot(th) - diffusion.eps_over_alpha(self.schedule, th)
        return bool((~torch.isfinite(coeff) & (th >= 0.5)).any())

    def drift(self, t, x: torch.Tensor, diffusion: Diffusion | None = None) -> torch.Tensor:
        """``b + eps s`` (the ODE velocity when ``diffusion`` is None or zero).

        Two algebraically equal forms are evaluated: the eta_Z form
        ``(alpha_dot - eps/alpha) eta_Z + beta_dot eta_X`` (finite at the data end) and, with
        ``eta_Z = (x - beta eta_X)/alpha``, the x form ``A x + (beta_dot - beta A) eta_X`` with
        ``A = (alpha_dot - eps/alpha)/alpha`` (finite at a point-mass base for eps = eps*).
        The x form is used for t < 1/2, the eta_Z form for t >= 1/2.

        Where ``alpha = 0`` and ``alpha_dot - eps/alpha`` is infinite (the data end of a
        point-mass schedule, ``alpha = sigma sqrt(t(1 - t))``) the eta_Z term is inf * 0; there
        it is evaluated as ``-(alpha alpha_dot - eps) s`` (generated ``alpha alpha_dot`` kernel,
        the provider's :meth:`score`). Exact providers override :meth:`score` with a form that is
        finite at ``alpha = 0``; the default ``-eta_Z/alpha`` is 0/0 there, so a network's drift
        stays NaN at that point instead of taking a made-up value.
        """
        tb = self._tv(t, x)
        eta_x, eta_z = self.fields(t, x)
        sch = self.schedule
        diffusion = diffusion or Diffusion.zero()
        coeff_z = sch.alpha_dot(tb) - diffusion.eps_over_alpha(sch, tb)
        term_z = coeff_z * eta_z
        late_time = tb >= 0.5
        infinite = ~torch.isfinite(coeff_z) & late_time
        host = None if x.device.type == "cpu" else self._late_coefficient_infinite_on_host(t, x, diffusion)
        if host if host is not None else bool(infinite.any()):  # alpha is evaluated only here, not on every call
            infinite = infinite & (sch.alpha(tb) == 0)
            alpha_coeff_z = sch.alpha_alpha_dot(tb) - diffusion.eps(sch, tb)
            term_z = torch.where(infinite, -alpha_coeff_z * self.score(t, x), term_z)
        late = term_z + sch.beta_dot(tb) * eta_x
        if diffusion.kind == "optimal":
            nu = diffusion.nu
            a = nu * sch.x_coeff_optimal(tb) + (1.0 - nu) * sch.alpha_dot_over_alpha(tb) if nu != 1.0 else sch.x_coeff_optimal(tb)
        elif diffusion.kind == "zero":
            a = sch.alpha_dot_over_alpha(tb)
        else:
            a = coeff_z / sch.alpha(tb)
        early = a * x + (sch.beta_dot(tb) - sch.beta(tb) * a) * eta_x
        return torch.where(late_time, late, early)
