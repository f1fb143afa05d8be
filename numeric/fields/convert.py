"""Numeric schedule conversion A -> B (claims C4-C5): generated time map and a converted provider.

Source schedule A in time ``t``, target B in time ``s`` (both: 0 base, 1 data). The maps
``tau(s)``, ``tau'(s)``, ``c(s)``, ``c'(s)/c(s)`` and ``c^2 tau'`` are derived by
:class:`lazysi.symbolic.conversion.Conversion` and *generated* as endpoint-safe torch code
(committed modules ``numeric/generated/convert_<A>__<B>.py`` for a few default-parameter pairs,
generated at run time otherwise). Without a closed form ``tau`` is a float64 bisection on A's
generated ``lambda`` kernel (monotone, so bracketing is guaranteed), and
``tau' = lambda_B'(s)/lambda_A'(tau)``, ``c = (alpha_B + beta_B)(s)/(alpha_A + beta_A)(tau)``,
``c'/c = (alpha_B + beta_B)'/(alpha_B + beta_B) - tau' (alpha_A + beta_A)'/(alpha_A + beta_A)(tau)``
come from generated kernels of those sums; their values at s = 0, 1 are then whatever the
ratio gives (possibly NaN for ``tau'``), see :attr:`NumericConversion.closed_form`.

:func:`convert` wraps a :class:`~lazysi.numeric.fields.providers.FieldProvider` under A into one under
B: ``eta_B(s, x) = eta_A(tau(s), x / c_s)``; score, velocity and drift then follow from B's
kernels in :class:`FieldProvider`.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import sympy as sp
import torch

from lazysi.symbolic.codegen import compile_module, render_module
from lazysi.symbolic.conversion import Conversion, s, t
from lazysi.symbolic.families import family

from lazysi.numeric.fields.schedule import NumericSchedule, as_time, family_module_name
from lazysi.numeric.fields.loader import load_generated
from lazysi.numeric.fields.providers import FieldProvider, broadcast_time
from lazysi.numeric.fields.roots import invert_increasing

__all__ = [
    "COMMITTED_PAIRS",
    "CONVERSION_FUNCTIONS",
    "ConvertedProvider",
    "NumericConversion",
    "convert",
    "conversion_module_name",
    "module_generators",
    "render_conversion_module",
]

CONVERSION_FUNCTIONS = ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale")
#: default-parameter pairs whose generated modules are committed
COMMITTED_PAIRS = (("linear", "vp"), ("linear", "point-mass"), ("vp", "point-mass"), ("sd3", "vp"))


def conversion_module_name(a: str, b: str) -> str:
    return f"convert_{family_module_name(a)}__{family_module_name(b)}"


def render_conversion_module(conv: Conversion) -> str:
    """Module source of the closed-form maps of ``conv`` (functions of ``s``, parameters bound)."""
    if not conv.closed_form:
        raise ValueError(f"{conv.A.name} -> {conv.B.name} has no closed-form tau; use the root-find kernels")
    header = [
        f"conversion {conv.A.name} -> {conv.B.name}: lambda_B(s) = lambda_A(tau(s)), I_B(s) = c(s) I_A(tau(s))",
        f"A: alpha = {conv.a.alpha}, beta = {conv.a.beta}",
        f"B: alpha = {conv.b.alpha}, beta = {conv.b.beta}",
    ]
    exprs = {
        "tau": conv.tau,
        "tau_dot": conv.tau_dot,
        "c": conv.c,
        "c_dot_over_c": conv.c_dot_over_c,
        "eps_scale": conv.eps_scale,
    }
    return render_module(f"conversion {conv.A.name!r} -> {conv.B.name!r}", exprs, s, (), header_lines=header)


def _render_sides(conv: Conversion) -> tuple[str, str]:
    """Kernels for the root-find route: A-side functions of t, B-side functions of s."""
    a, b = conv.a, conv.b
    sum_a, sum_b = a.alpha + a.beta, conv.alpha_B + conv.beta_B
    side_a = {"lam": a.lam, "lam_dot": a.lam_dot, "sum": sum_a, "sum_dot_over_sum": sp.diff(sum_a, t) / sum_a}
    side_b = {"lam": conv.lam_B, "lam_dot": conv.lam_dot_B, "sum": sum_b, "sum_dot_over_sum": sp.diff(sum_b, s) / sum_b}
    return (
        render_module(f"root-find kernels of A = {conv.A.name!r}", side_a, t, ()),
        render_module(f"root-find kernels of B = {conv.B.name!r}", side_b, s, ()),
    )


def module_generators() -> dict[str, Callable[[], str]]:
    """Committed generated modules (collected by :mod:`lazysi.numeric.codegen_all`)."""
    return {
        f"{conversion_module_name(a, b)}.py": (lambda a=a, b=b: render_conversion_module(Conversion(family(a), family(b))))
        for a, b in COMMITTED_PAIRS
    }


class _NoClosedForm(Exception):
    """The conversion has no closed-form tau: the root-find kernels serve it."""


@lru_cache(maxsize=32)
def _conversion(A, B, force_root_find: bool) -> Conversion:
    return Conversion(A, B, force_root_find=force_root_find)


class NumericConversion:
    """Torch evaluation of a conversion A -> B; every method maps a float tensor ``s`` (any shape)
    to a tensor of the same shape and dtype. ``conversion`` reuses an already derived
    :class:`Conversion` of the same schedules (otherwise it is derived here, cached per pair)."""

    def __init__(self, A, B, *, force_root_find: bool = False, conversion: Conversion | None = None):
        self.A, self.B = A, B
        self.source_schedule = NumericSchedule(A) if not isinstance(A, NumericSchedule) else A
        A = self.source_schedule.schedule
        self.A = A
        self._ns = None
        self.conversion: Conversion | None = conversion
        if conversion is not None and (conversion.A != A or conversion.B != B):
            raise ValueError("the given conversion is for other schedules")
        if not force_root_find and (conversion is None or conversion.closed_form):
            # committed module, or the closed form generated at run time (one rule: numeric.loader);
            # a given root-find conversion keeps its route
            key = ("conversion", A.bound.alpha, A.bound.beta, B.bound.alpha, B.bound.beta)
            try:
                self._ns, _ = load_generated(conversion_module_name(A.name, B.name), [A, B], self._render_closed_form, key)
            except _NoClosedForm:
                self._ns = None
        if self._ns is None:
            self.conversion = self.conversion or _conversion(A, B, force_root_find)
            src_a, src_b = _render_sides(self.conversion)
            self._side_a = compile_module(src_a, "lazysi_convert_side_a")
            self._side_b = compile_module(src_b, "lazysi_convert_side_b")
        self.closed_form = self._ns is not None
        self._endpoint_cache: dict[str, tuple[float, float]] | None = None

    def _render_closed_form(self) -> str:
        self.conversion = self.conversion or _conversion(self.A, self.B, False)
        if not self.conversion.closed_form:
            raise _NoClosedForm
        return render_conversion_module(self.conversion)

    _s = staticmethod(as_time)

    # ------------------------------------------------------------------ maps
    def tau(self, sv) -> torch.Tensor:
        """``tau(s)``: A's time at which ``lambda_A(tau) = lambda_B(s)``."""
        sv = self._s(sv)
        if self.closed_form:
            return self._ns["tau"](sv)
        out = invert_increasing(self._side_a["lam"], self._side_b["lam"](sv.to(torch.float64)))
        out = torch.where(sv.to(torch.float64) == 0.0, 0.0, torch.where(sv.to(torch.float64) == 1.0, 1.0, out))
        return out.to(sv.dtype)

    def _ends(self, name: str, sv: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Root-find route: ``value`` with the exact endpoint limits at ``s = 0`` and ``s = 1``
        (:attr:`Conversion.endpoint_values`; NaN stays where no limit was derived)."""
        at0, at1 = sv == 0, sv == 1
        if not bool(at0.any() or at1.any()):
            return value
        if self._endpoint_cache is None:
            self._endpoint_cache = {
                n: tuple(float("nan") if v is None else float(v) for v in pair)
                for n, pair in self.conversion.endpoint_values.items()
            }
        v0, v1 = self._endpoint_cache[name]
        return torch.where(at0, torch.full_like(value, v0), torch.where(at1, torch.full_like(value, v1), value))

    def tau_dot(self, sv) -> torch.Tensor:
        """``tau'(s)`` (closed form, else ``lambda_B'(s)/lambda_A'(tau)``)."""
        sv = self._s(sv)
        if self.closed_form:
            return self._ns["tau_dot"](sv)
        return self._ends("tau_dot", sv, self._side_b["lam_dot"](sv) / self._side_a["lam_dot"](self.tau(sv)))

    def c(self, sv) -> torch.Tensor:
        """``c_s = alpha_B(s)/alpha_A(tau) = beta_B(s)/beta_A(tau)``."""
        sv = self._s(sv)
        if self.closed_form:
            return self._ns["c"](sv)
        return self._ends("c", sv, self._side_b["sum"](sv) / self._side_a["sum"](self.tau(sv)))

    def c_dot_over_c(self, sv) -> torch.Tensor:
        """``c'(s)/c(s)``."""
        sv = self._s(sv)
        if self.closed_form:
            return self._ns["c_dot_over_c"](sv)
        value = self._side_b["sum_dot_over_sum"](sv) - self.tau_dot(sv) * self._side_a["sum_dot_over_sum"](self.tau(sv))
        return self._ends("c_dot_over_c", sv, value)

    def eps_scale(self, sv) -> torch.Tensor:
        """``c^2 tau'``: ``eps_B(s) = eps_scale(s) eps_A(tau(s))``."""
        sv = self._s(sv)
        if self.closed_form:
            return self._ns["eps_scale"](sv)
        return self._ends("eps_scale", sv, self.c(sv) ** 2 * self.tau_dot(sv))

    def eps_to_target(self, eps_A: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``s -> c^2 tau' eps_A(tau(s))`` for a source coefficient ``eps_A(t)``."""
        return lambda sv: self.eps_scale(sv) * eps_A(self.tau(sv))

    def sigma(self, tv) -> torch.Tensor:
        """``sigma(t) = tau^{-1}(t)``: float64 bisection on the increasing ``tau`` (0 -> 0, 1 -> 1)."""
        tv = self._s(tv)
        target = tv.to(torch.float64)
        out = torch.where(target == 0.0, 0.0, torch.where(target == 1.0, 1.0, invert_increasing(self.tau, target)))
        return out.to(tv.dtype)

    def eps_to_source(self, eps_B: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``t -> eps_B(sigma(t)) / (c^2 tau')(sigma(t))``: the A-coefficient whose converted path
        solves B's SDE with ``eps_B(s)`` (C5, the other direction)."""

        def eps_A(tv):
            sv = self.sigma(tv)
            return eps_B(sv) / self.eps_scale(sv)

        return eps_A

    def __repr__(self) -> str:
        route = "closed form" if self.closed_form else "root-find"
        return f"NumericConversion({self.A.name} -> {self.B.name}, {route})"


class ConvertedProvider(FieldProvider):
    """A provider under B from a provider under A: ``eta_B(s, x) = eta_A(tau(s), x / c_s)``.

    Where ``c_s = 0`` (a standard A converted to a point-mass B at s = 0, where ``tau = 0``)
    the source is evaluated at ``y = 0``: at tau = 0 of a standard schedule ``eta_X(0, y) = E[X]``
    for every y, which is the exact ``eta_X`` of the point-mass base; ``eta_Z`` is returned as 0
    there (it multiplies ``alpha_B(0) = 0``).
    """

    def __init__(self, source: FieldProvider, B, conversion: NumericConversion | None = None):
        self.source = source
        self.schedule = B if isinstance(B, NumericSchedule) else NumericSchedule(B)
        self.conversion = conversion or NumericConversion(source.schedule, self.schedule.schedule)

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sv = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        tau = self.conversion.tau(sv)
        c = broadcast_time(self.conversion.c(sv), x)
        zero = c == 0
        y = torch.where(zero, torch.zeros_like(x), x / torch.where(zero, torch.ones_like(c), c))
        eta_x, eta_z = self.source.fields(tau, y)
        return eta_x, torch.where(zero, torch.zeros_like(eta_z), eta_z)


def convert(provider: FieldProvider, B) -> ConvertedProvider:
    """The provider under schedule ``B`` (a Schedule or NumericSchedule) equivalent to ``provider``."""
    return ConvertedProvider(provider, B)
