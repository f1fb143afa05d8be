"""Symbolic interpolation schedules ``I_t = alpha(t) Z + beta(t) X``.

Convention: t = 0 is the base (Gaussian, or a point mass when alpha(0) = 0), t = 1 is the data.
A :class:`Schedule` is a small frozen object holding the two sympy expressions in the time
symbol ``t`` and its named parameters with their values. Everything else (derivatives, the
half log-SNR, the optimal diffusion coefficient) is *derived* from those two expressions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from collections.abc import Mapping

import sympy as sp

from .expr import ExpressionError, param_symbol, parse_expression, time_symbol

__all__ = ["Param", "Schedule", "ScheduleError", "t"]

t = time_symbol("t")


class ScheduleError(ValueError):
    """A schedule violates one or more validity conditions; the message names each of them."""


@dataclass(frozen=True)
class Param:
    """A named schedule parameter with a default value."""

    name: str
    default: sp.Expr
    positive: bool = True
    description: str = ""

    @property
    def symbol(self) -> sp.Symbol:
        return param_symbol(self.name, positive=self.positive)


def as_number(value: object, name: str = "value") -> sp.Expr:
    """Exact sympy number from a user value (floats via their shortest repr: 0.7 -> 7/10)."""
    if isinstance(value, sp.Basic):
        if not value.is_number:
            raise ExpressionError(f"{name} must be a number, got {value}")
        return value
    if isinstance(value, bool):
        raise ExpressionError(f"{name} must be a number, got a bool")
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ExpressionError(f"{name} must be finite, got {value}")
        return sp.Rational(repr(value))
    if isinstance(value, str):
        return parse_expression(value, {})
    raise ExpressionError(f"{name} must be a number, got {type(value).__name__}")


@dataclass(frozen=True)
class Schedule:
    """An interpolation schedule defined by sympy expressions ``alpha(t)``, ``beta(t)``.

    Attributes:
        name: family name or ``"custom"``.
        alpha, beta: sympy expressions in :data:`t` and the parameter symbols.
        params: the declared parameters.
        values: parameter values (name -> exact sympy number); defaults fill the gaps.
        data_scale: the schedule reaches ``beta(1) = 1 / data_scale`` (1 for a standard
            schedule). A schedule with ``data_scale = sigma`` interpolates to ``X / sigma``;
            samplers multiply their output by ``data_scale``.
    """

    name: str
    alpha: sp.Expr
    beta: sp.Expr
    params: tuple[Param, ...] = ()
    values: tuple[tuple[str, sp.Expr], ...] = ()
    data_scale: sp.Expr = sp.Integer(1)
    description: str = field(default="", compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_strings(
        cls,
        alpha: str,
        beta: str,
        params: Mapping[str, object] | None = None,
        *,
        name: str = "custom",
        data_scale: str | float | None = None,
    ) -> "Schedule":
        """Build a schedule from user strings, parsed safely (see :mod:`lazysi.symbolic.expr`).

        ``params`` maps parameter names to values; each becomes a positive symbol.
        """
        params = dict(params or {})
        plist = tuple(Param(k, as_number(v, k)) for k, v in params.items())
        symbols = {p.name: p.symbol for p in plist}
        a = parse_expression(alpha, symbols)
        b = parse_expression(beta, symbols)
        ds = sp.Integer(1) if data_scale is None else as_number(data_scale, "data_scale")
        return cls(name, a, b, plist, tuple((p.name, p.default) for p in plist), ds)

    def with_values(self, **values: object) -> "Schedule":
        """A copy with some parameter values replaced; unknown names raise."""
        known = {p.name for p in self.params}
        unknown = set(values) - known
        if unknown:
            raise ExpressionError(
                f"unknown parameter(s) {sorted(unknown)} for schedule {self.name!r}; known: {sorted(known)}"
            )
        merged = dict(self.values)
        merged.update({k: as_number(v, k) for k, v in values.items()})
        return replace(self, values=tuple(sorted(merged.items())))

    # ------------------------------------------------------------------ parameters
    @property
    def t(self) -> sp.Symbol:
        return t

    @cached_property
    def value_map(self) -> dict[str, sp.Expr]:
        """Parameter name -> value, defaults filled in."""
        out = {p.name: p.default for p in self.params}
        out.update(dict(self.values))
        return out

    @cached_property
    def subs_map(self) -> dict[sp.Symbol, sp.Expr]:
        return {p.symbol: self.value_map[p.name] for p in self.params}

    def bind(self, expr: sp.Expr) -> sp.Expr:
        """Substitute the parameter values into ``expr``."""
        return sp.sympify(expr).xreplace(self.subs_map) if self.subs_map else sp.sympify(expr)

    @cached_property
    def bound(self) -> "Schedule":
        """The same schedule with parameter values substituted (no free parameters)."""
        return Schedule(
            self.name,
            self.bind(self.alpha),
            self.bind(self.beta),
            (),
            (),
            self.bind(self.data_scale),
            self.description,
        )

    # ------------------------------------------------------------------ derived quantities
    @cached_property
    def alpha_dot(self) -> sp.Expr:
        return sp.diff(self.alpha, t)

    @cached_property
    def beta_dot(self) -> sp.Expr:
        return sp.diff(self.beta, t)

    @cached_property
    def lam(self) -> sp.Expr:
        """Half log-SNR ``lambda = log(beta / alpha)``."""
        return sp.log(self.beta / self.alpha)

    @cached_property
    def lam_dot(self) -> sp.Expr:
        """``d lambda / dt = beta_dot / beta - alpha_dot / alpha``."""
        return self.beta_dot / self.beta - self.alpha_dot / self.alpha

    @cached_property
    def eps_star(self) -> sp.Expr:
        """Optimal diffusion ``eps* = alpha^2 beta_dot / beta - alpha alpha_dot = alpha^2 lambda_dot``."""
        return self.alpha**2 * self.beta_dot / self.beta - self.alpha * self.alpha_dot

    @cached_property
    def eps_star_over_alpha(self) -> sp.Expr:
        """``eps* / alpha = alpha beta_dot / beta - alpha_dot``: the factor multiplying ``-eta_Z``
        in ``eps* s``; finite where the score is not (alpha = 0)."""
        return self.alpha * self.beta_dot / self.beta - self.alpha_dot

    @cached_property
    def x_coeff_optimal(self) -> sp.Expr:
        """``A* = (alpha_dot - eps*/alpha) / alpha = 2 alpha_dot/alpha - beta_dot/beta``: with
        ``eta_Z = (x - beta eta_X)/alpha`` the eps*-SDE drift is ``A* x + (beta_dot - beta A*) eta_X``,
        finite at a point-mass base (where the eta_Z form is inf * 0)."""
        return 2 * self.alpha_dot / self.alpha - self.beta_dot / self.beta

    @cached_property
    def alpha_alpha_dot(self) -> sp.Expr:
        """``alpha alpha_dot = (alpha^2)'/2``: with ``eta_Z = -alpha s`` the eta_Z term of the
        drift is ``-(alpha alpha_dot - eps) s``, finite where ``alpha = 0`` and ``alpha_dot`` is not
        (the data end of a point-mass schedule, where ``alpha_dot eta_Z`` is inf * 0)."""
        return self.alpha * self.alpha_dot

    def kernels(self) -> dict[str, sp.Expr]:
        """The expressions every numeric schedule provides, in code-generation order."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "alpha_dot": self.alpha_dot,
            "beta_dot": self.beta_dot,
            "lam": self.lam,
            "lam_dot": self.lam_dot,
            "eps_star": self.eps_star,
            "eps_star_over_alpha": self.eps_star_over_alpha,
            "alpha_dot_over_alpha": self.alpha_dot / self.alpha,
            "beta_dot_over_beta": self.beta_dot / self.beta,
            "x_coeff_optimal": self.x_coeff_optimal,
            "alpha_alpha_dot": self.alpha_alpha_dot,
        }

    # ------------------------------------------------------------------ endpoint behaviour
    def limit_at(self, expr: sp.Expr, end: int) -> sp.Expr:
        """One-sided limit of ``expr`` (parameters bound) as t -> 0+ or t -> 1-."""
        from .limits import endpoint_limit

        return endpoint_limit(self.bind(expr), end)

    @cached_property
    def point_mass(self) -> bool:
        """True when the base collapses to a point: alpha(0) = 0."""
        a0 = self.limit_at(self.alpha, 0)
        return bool(a0 == 0)

    # ------------------------------------------------------------------ validity
    def validate(self, digits: int = 30, grid: int = 200):
        """Check the validity conditions; returns a :class:`~lazysi.symbolic.validity.ValidityReport`."""
        from .validity import validate

        return validate(self, digits=digits, grid=grid)

    def require_valid(self, digits: int = 30) -> "Schedule":
        """Return ``self`` or raise :class:`ScheduleError` naming every failed condition."""
        report = self.validate(digits=digits)
        if not report.valid:
            failed = "; ".join(f"{c.name} ({c.detail})" for c in report.conditions if not c.holds)
            raise ScheduleError(f"schedule {self.name!r} is invalid: {failed}")
        return self

    def __str__(self) -> str:
        vals = ", ".join(f"{k}={v}" for k, v in self.value_map.items())
        return f"Schedule({self.name}: alpha={self.alpha}, beta={self.beta}{', ' + vals if vals else ''})"
