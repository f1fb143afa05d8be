"""Built-in schedule families, each defined once as sympy expressions.

===============  ==========================================================  ==============
family           alpha(t), beta(t)                                            parameters
===============  ==========================================================  ==============
linear           1 - t,  t                                                    -
vp               cos(pi t/2),  sin(pi t/2) / sigma   (data_scale = sigma)     sigma = 1
polynomial       (1 - t)^p,  t^q                                              p = 2, q = 2
ddpm             sqrt(1 - m(1-t)^2),  m(1-t),                                 beta_min = 1/10,
                 m(u) = exp(-u^2 (beta_max - beta_min)/4 - u beta_min/2)      beta_max = 20
sd3              sig(t),  1 - sig(t),                                          shift = 3
                 sig(t) = shift (1-t) / (1 + (shift - 1)(1 - t))
point-mass       sigma sqrt(t (1 - t)),  t                                    sigma = 1
===============  ==========================================================  ==============

``ddpm`` has a finite terminal SNR (beta(0) = m(1) > 0): it is reported as failing the
``beta(0) = 0`` and lambda-range conditions, which is the truth about that schedule.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from .expr import ExpressionError
from .schedule import Param, Schedule, t

__all__ = ["FAMILIES", "Family", "family", "family_names"]


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, sp.Symbol]], tuple[sp.Expr, sp.Expr, sp.Expr]]

    def schedule(self, **values: object) -> Schedule:
        syms = {p.name: p.symbol for p in self.params}
        alpha, beta, data_scale = self.build(syms)
        s = Schedule(self.name, alpha, beta, self.params, (), data_scale, self.description)
        return s.with_values(**values) if values else s


def _linear(p):
    return 1 - t, t, sp.Integer(1)


def _vp(p):
    sigma = p["sigma"]
    return sp.cos(sp.pi * t / 2), sp.sin(sp.pi * t / 2) / sigma, sigma


def _polynomial(p):
    return (1 - t) ** p["p"], t ** p["q"], sp.Integer(1)


def _ddpm(p):
    u = 1 - t
    m = sp.exp(-(u**2) * (p["beta_max"] - p["beta_min"]) / 4 - u * p["beta_min"] / 2)
    return sp.sqrt(1 - m**2), m, sp.Integer(1)


def _sd3(p):
    shift = p["shift"]
    sig = shift * (1 - t) / (1 + (shift - 1) * (1 - t))
    return sig, 1 - sig, sp.Integer(1)


def _point_mass(p):
    return p["sigma"] * sp.sqrt(t * (1 - t)), t, sp.Integer(1)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("linear", "rectified flow / flow matching: alpha = 1 - t, beta = t", (), _linear),
        Family(
            "vp",
            "variance preserving cos/sin with data scale sigma (lazy ODE schedule for N(0, sigma^2 I))",
            (Param("sigma", sp.Integer(1), description="data scale"),),
            _vp,
        ),
        Family(
            "polynomial",
            "alpha = (1 - t)^p, beta = t^q",
            (Param("p", sp.Integer(2)), Param("q", sp.Integer(2))),
            _polynomial,
        ),
        Family(
            "ddpm",
            "DDPM VP-SDE (linear beta(u) from beta_min to beta_max), t = 1 - u",
            (Param("beta_min", sp.Rational(1, 10)), Param("beta_max", sp.Integer(20))),
            _ddpm,
        ),
        Family(
            "sd3",
            "SD3/FLUX shifted linear: sigma' = shift sigma / (1 + (shift - 1) sigma), sigma = 1 - t",
            (Param("shift", sp.Integer(3)),),
            _sd3,
        ),
        Family(
            "point-mass",
            "point mass: alpha = sigma sqrt(t (1 - t)), beta = t (optimal-SDE lazy schedule for N(0, sigma^2 I))",
            (Param("sigma", sp.Integer(1), description="data scale"),),
            _point_mass,
        ),
    )
}


def family_names() -> list[str]:
    return list(FAMILIES)


def family(name: str, **values: object) -> Schedule:
    """A built-in family, e.g. ``family("point-mass", sigma=0.5)``; unknown names raise."""
    if name not in FAMILIES:
        raise ExpressionError(f"unknown schedule family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name].schedule(**values)
