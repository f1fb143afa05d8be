"""Model adapters: a network + its training schedule + its prediction type -> a FieldProvider.

Inside lazysi: t = 0 base (noise), t = 1 data, ``x = alpha eta_Z + beta eta_X``. Every foreign
convention (time direction, time scaling, sign of the velocity, VE scaling of the input) is
converted here and nowhere else. Three prediction types, all read through the consistency
relation (C1) and the velocity ``b = alpha_dot eta_Z + beta_dot eta_X``:

* ``velocity`` (``v = b``): solving the 2 x 2 system with ``D = alpha beta_dot - beta alpha_dot``
  (``= alpha beta lambda_dot > 0``) gives ``eta_X = (alpha v - alpha_dot x) / D`` and
  ``eta_Z = (beta_dot x - beta v) / D``. Linear schedule (``D = 1``): ``eta_X = x + (1 - t) v``,
  ``eta_Z = x - t v`` (rectified flow, flow_matching, SiT).
* ``x0`` (denoiser, ``eta_X``): ``eta_Z = (x - beta eta_X) / alpha`` — undefined where
  ``alpha = 0`` (the data end of a standard schedule): evaluating there raises.
* ``eps`` (``eta_Z``): ``eta_X = (x - alpha eta_Z) / beta`` — undefined where ``beta = 0``.

The constructors below fix the network's calling convention:

=========================  ===========================================  ==================
constructor                network call                                 schedule
=========================  ===========================================  ==================
``velocity_model``         ``net(t, x) -> v``, lazysi time               any (default linear)
``diffusers_flow_model``   ``net(x, timestep) -> Z - X``,               linear
                           ``sigma = 1 - t``, ``timestep = 1000 sigma``
``denoiser_model``         ``net(t, x) -> x0``, lazysi time              any
``edm_denoiser_model``     ``D(x / beta, sigma_ve) -> x0``,             any (needs beta > 0)
                           ``sigma_ve = alpha / beta = exp(-lambda)``
``ddpm_eps_model``         ``net(u * time_scale, x) -> eps``, ``u = 1-t``  ddpm (VP-SDE)
=========================  ===========================================  ==================

:func:`prediction_from_fields` is the inverse map (fields -> what the network would output); the
tests wrap exact Gaussian-mixture providers as networks with it and check the round trip.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from lazysi.symbolic.families import family
from lazysi.symbolic.schedule import Schedule

from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import FieldProvider, broadcast_time

__all__ = [
    "PREDICTIONS",
    "NetworkProvider",
    "fields_from_prediction",
    "prediction_from_fields",
    "velocity_model",
    "diffusers_flow_model",
    "denoiser_model",
    "edm_denoiser_model",
    "ddpm_eps_model",
]

PREDICTIONS = ("velocity", "x0", "eps")

Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _numeric(schedule: Schedule | NumericSchedule) -> NumericSchedule:
    return schedule if isinstance(schedule, NumericSchedule) else NumericSchedule(schedule)


def _check_kind(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown prediction type {kind!r}; known: {', '.join(PREDICTIONS)}")


def fields_from_prediction(
    kind: str, schedule: NumericSchedule, t: torch.Tensor, x: torch.Tensor, pred: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eta_X, eta_Z)`` from a prediction of type ``kind`` at broadcast times ``t``.

    Raises ``ValueError`` where the prediction does not determine the fields (x0 at alpha = 0,
    eps at beta = 0)."""
    _check_kind(kind)
    a, b, ad, bd = schedule.values(t)
    if kind == "velocity":
        det = a * bd - b * ad
        return (a * pred - ad * x) / det, (bd * x - b * pred) / det
    if kind == "x0":
        if bool((a == 0).any()):
            raise ValueError(f"an x0-prediction does not determine eta_Z where alpha = 0 (t = {t.flatten().tolist()})")
        return pred, (x - b * pred) / a
    if bool((b == 0).any()):
        raise ValueError(f"an eps-prediction does not determine eta_X where beta = 0 (t = {t.flatten().tolist()})")
    return (x - a * pred) / b, pred


def prediction_from_fields(
    kind: str, schedule: NumericSchedule, t: torch.Tensor, eta_x: torch.Tensor, eta_z: torch.Tensor
) -> torch.Tensor:
    """What an exact network of type ``kind`` outputs, given the fields (inverse of
    :func:`fields_from_prediction`)."""
    _check_kind(kind)
    if kind == "x0":
        return eta_x
    if kind == "eps":
        return eta_z
    _, _, ad, bd = schedule.values(t)
    return ad * eta_z + bd * eta_x


class NetworkProvider(FieldProvider):
    """A network in lazysi time, ``predict(t, x)`` with ``t`` of shape ``(batch,)``, whose output is a
    prediction of type ``kind`` under ``schedule``. The constructors of this module wrap foreign
    calling conventions into ``predict``."""

    def __init__(self, predict: Network, schedule: Schedule | NumericSchedule, kind: str, *, description: str = ""):
        _check_kind(kind)
        self.predict = predict
        self.schedule = _numeric(schedule)
        self.kind = kind
        self.description = description or kind

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tb = broadcast_time(t, x)
        tvec = tb.reshape(-1).expand(x.shape[0]) if tb.numel() == 1 else tb.reshape(-1)
        pred = self.predict(tvec, x)
        if pred.shape != x.shape:
            raise ValueError(f"network output shape {tuple(pred.shape)} != input shape {tuple(x.shape)}")
        return fields_from_prediction(self.kind, self.schedule, tb, x, pred.to(x.dtype))

    def __repr__(self) -> str:
        return f"NetworkProvider({self.description}, {self.schedule.schedule.name})"


def velocity_model(net: Network, schedule: Schedule | NumericSchedule | None = None) -> NetworkProvider:
    """``net(t, x) -> v`` with lazysi time (t = 0 noise) and ``v = alpha_dot eta_Z + beta_dot eta_X``;
    default schedule linear (``x_t = (1 - t) Z + t X``, ``v = X - Z`` in expectation)."""
    return NetworkProvider(net, schedule if schedule is not None else family("linear"), "velocity",
                           description="velocity (t = 0 noise)")


def diffusers_flow_model(net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], timestep_scale: float = 1000.0) -> NetworkProvider:
    """A diffusers flow-matching network ``net(x, timestep) -> v_d`` with ``x = sigma Z + (1 - sigma) X``,
    ``sigma = 1 - t``, ``timestep = timestep_scale * sigma`` and ``v_d = Z - X`` (noise minus data),
    i.e. ``v_d = -v`` in lazysi time. A scheduler ``shift`` changes only the time grid, not this map."""

    def predict(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -net(x, timestep_scale * (1.0 - t))

    return NetworkProvider(predict, family("linear"), "velocity", description="diffusers flow (sigma = 1 - t)")


def denoiser_model(net: Network, schedule: Schedule | NumericSchedule) -> NetworkProvider:
    """``net(t, x) -> E[X | I_t = x]`` (x0-prediction) with lazysi time under ``schedule``."""
    return NetworkProvider(net, schedule, "x0", description="x0 (t = 0 noise)")


def edm_denoiser_model(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: Schedule | NumericSchedule) -> NetworkProvider:
    """An EDM/k-diffusion denoiser ``D(x_ve, sigma_ve) -> x0`` on VE inputs ``x_ve = X + sigma_ve Z``.

    Our ``I_t = alpha Z + beta X`` gives ``x_ve = I_t / beta`` and ``sigma_ve = alpha / beta``
    (``= exp(-lambda)``); needs ``beta > 0`` (``sigma_ve`` finite), and ``alpha > 0`` for eta_Z."""
    sch = _numeric(schedule)

    def predict(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tb = broadcast_time(t, x)
        beta = sch.beta(tb)
        if bool((beta == 0).any()):
            raise ValueError(f"an EDM denoiser needs beta > 0 (finite sigma); got t = {t.flatten().tolist()}")
        sigma_ve = (sch.alpha(tb) / beta).reshape(-1).expand(x.shape[0])
        return denoiser(x / beta, sigma_ve)

    return NetworkProvider(predict, sch, "x0", description="EDM denoiser D(x/beta, alpha/beta)")


def ddpm_eps_model(
    net: Network, beta_min: float = 0.1, beta_max: float = 20.0, time_scale: float = 1.0
) -> NetworkProvider:
    """An eps-prediction network of the DDPM VP-SDE (Song et al.): ``net(time_scale * u, x) -> eps``
    with SDE time ``u = 1 - t`` (u = 1 noise), ``x_u = m(u) X + sqrt(1 - m(u)^2) Z``,
    ``m(u) = exp(-u^2 (beta_max - beta_min)/4 - u beta_min/2)``: the ``ddpm`` family.
    ``time_scale = 999`` for networks trained on discrete DDPM timesteps."""

    def predict(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return net(time_scale * (1.0 - t), x)

    return NetworkProvider(predict, family("ddpm", beta_min=beta_min, beta_max=beta_max), "eps",
                           description="DDPM VP-SDE eps (u = 1 - t)")
