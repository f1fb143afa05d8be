"""Numeric schedules backed by generated torch kernels.

Built-in families load the committed, generated modules in :mod:`lazysi.numeric.generated`;
any other schedule (user expressions, derived lazy families) is generated on the fly from its
sympy definition with the same generator. Either way the kernels are batched over ``t``,
dtype/device agnostic, and finite at t = 0 and t = 1 wherever the limit is finite.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from lazysi.symbolic.codegen import module_digest, render_module
from lazysi.symbolic.schedule import Schedule

from lazysi.numeric.fields.loader import load_generated

__all__ = [
    "GENERATED_DIR",
    "KERNEL_NAMES",
    "NumericSchedule",
    "as_time",
    "ScheduleValues",
    "family_module_name",
    "render_schedule_module",
    "schedule_module_digest",
    "module_generators",
]

GENERATED_DIR = Path(__file__).resolve().parents[1] / "generated"
KERNEL_NAMES = (
    "alpha",
    "beta",
    "alpha_dot",
    "beta_dot",
    "lam",
    "lam_dot",
    "eps_star",
    "eps_star_over_alpha",
    "alpha_dot_over_alpha",
    "beta_dot_over_beta",
    "x_coeff_optimal",
    "alpha_alpha_dot",
)


class ScheduleValues(NamedTuple):
    """``alpha, beta`` and their time derivatives at the same times."""

    alpha: torch.Tensor
    beta: torch.Tensor
    alpha_dot: torch.Tensor
    beta_dot: torch.Tensor


def as_time(t) -> torch.Tensor:
    """A time argument as a floating tensor (numbers become float64); integer tensors raise."""
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t, dtype=torch.float64)
    if not t.is_floating_point():
        raise TypeError(f"time must be a floating tensor, got {t.dtype}")
    return t


def family_module_name(name: str) -> str:
    return name.replace("-", "_")


def _schedule_module_parts(schedule: Schedule, bound: bool):
    """``(title, functions, time symbol, params)`` of a schedule's kernel module."""
    title = f"schedule family {schedule.name!r}"
    if bound:
        b = schedule.bound
        return title, b.kernels(), b.t, []
    params = [(p.symbol, p.name, float(schedule.value_map[p.name])) for p in schedule.params]
    return title, schedule.kernels(), schedule.t, params


def schedule_module_digest(schedule: Schedule, bound: bool) -> str:
    """The ``SOURCE_SHA256`` stamp :func:`render_schedule_module` writes (``bound``: the module
    was generated with the parameter values bound, ``PARAMS = {}``)."""
    title, functions, _, params = _schedule_module_parts(schedule, bound)
    return module_digest(functions, title, params)


def render_schedule_module(schedule: Schedule) -> str:
    """Module source for a schedule's kernels.

    Parameters become keyword arguments when every endpoint limit can be decided for symbolic
    parameter values; otherwise (e.g. ``t**q`` whose limit at 0 depends on ``q``) the values are
    bound and the module has no parameters (``PARAMS = {}``).
    """
    header = [
        f"schedule {schedule.name}: alpha = {schedule.alpha}, beta = {schedule.beta}",
        f"data_scale = {schedule.data_scale}",
    ]
    title, functions, var, params = _schedule_module_parts(schedule, bound=False)
    try:
        src = render_module(title, functions, var, params, header_lines=header)
    except NotImplementedError:
        values = ", ".join(f"{k}={v}" for k, v in schedule.value_map.items())
        header.append(f"parameters bound ({values}): endpoint limits depend on their values")
        title, functions, var, params = _schedule_module_parts(schedule, bound=True)
        src = render_module(title, functions, var, params, header_lines=header)
    return src + f"\nPARAMS = {{{', '.join(f'{n!r}: {d!r}' for _, n, d in params)}}}\n"


def module_generators() -> dict[str, Callable[[], str]]:
    """Committed generated modules: ``<family>.py`` for every built-in family (see
    :mod:`lazysi.numeric.codegen_all`)."""
    from lazysi.symbolic.families import FAMILIES, family

    return {f"{family_module_name(n)}.py": (lambda n=n: render_schedule_module(family(n))) for n in FAMILIES}


class NumericSchedule:
    """Torch evaluation of a :class:`~lazysi.symbolic.schedule.Schedule` (t = 0 base, t = 1 data).

    Every method takes a tensor ``t`` of any shape and returns a tensor of that shape in ``t``'s
    dtype and device. ``values(t)`` returns ``alpha, beta, alpha_dot, beta_dot`` together.
    """

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.point_mass = schedule.point_mass
        self.data_scale = float(schedule.bind(schedule.data_scale))
        bound = schedule.bound
        self._ns, self._kw = load_generated(
            family_module_name(schedule.name),
            [schedule],
            lambda: render_schedule_module(bound),
            ("schedule", schedule.name, bound.alpha, bound.beta, bound.data_scale),
        )

    _t = staticmethod(as_time)

    def kernel(self, name: str, t) -> torch.Tensor:
        if name not in KERNEL_NAMES:
            raise KeyError(f"unknown kernel {name!r}; known: {KERNEL_NAMES}")
        return self._ns[name](self._t(t), **self._kw)

    def alpha(self, t) -> torch.Tensor:
        return self.kernel("alpha", t)

    def beta(self, t) -> torch.Tensor:
        return self.kernel("beta", t)

    def alpha_dot(self, t) -> torch.Tensor:
        return self.kernel("alpha_dot", t)

    def beta_dot(self, t) -> torch.Tensor:
        return self.kernel("beta_dot", t)

    def lam(self, t) -> torch.Tensor:
        return self.kernel("lam", t)

    def lam_dot(self, t) -> torch.Tensor:
        return self.kernel("lam_dot", t)

    def eps_star(self, t) -> torch.Tensor:
        return self.kernel("eps_star", t)

    def eps_star_over_alpha(self, t) -> torch.Tensor:
        return self.kernel("eps_star_over_alpha", t)

    def alpha_dot_over_alpha(self, t) -> torch.Tensor:
        return self.kernel("alpha_dot_over_alpha", t)

    def beta_dot_over_beta(self, t) -> torch.Tensor:
        return self.kernel("beta_dot_over_beta", t)

    def x_coeff_optimal(self, t) -> torch.Tensor:
        return self.kernel("x_coeff_optimal", t)

    def alpha_alpha_dot(self, t) -> torch.Tensor:
        return self.kernel("alpha_alpha_dot", t)

    def values(self, t) -> ScheduleValues:
        t = self._t(t)
        return ScheduleValues(self.alpha(t), self.beta(t), self.alpha_dot(t), self.beta_dot(t))

    def __repr__(self) -> str:
        return f"NumericSchedule({self.schedule})"
