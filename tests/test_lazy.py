"""Lazy schedules derived by sympy, the point-mass SDE, one-step exactness (C8-C15), ``derive --lazy``.

Oracles: the closed forms of MATH.md C9-C11 (as targets, compared numerically with mpmath at 50
digits), the mpmath field oracle (drift must vanish), exact Gaussian paths driven by the same noise.
"""
from __future__ import annotations

import json

import mpmath
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lazysi.cli import main
from lazysi.numeric.fields.gaussian import GaussianProvider
from lazysi.proofs.oracles import mp_gaussian_fields
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import Diffusion
from lazysi.symbolic.codegen import compile_module
from lazysi.symbolic.expr import ExpressionError
from lazysi.symbolic.families import family
from lazysi.symbolic.lazy import derive_lazy, point_mass_sde
from lazysi.symbolic.schedule import Schedule, t

F64 = torch.float64
decimals = st.decimals(min_value="0.2", max_value="3", places=3).map(str)
nus = st.decimals(min_value="0.1", max_value="5", places=2).map(str)


def _mp(schedule, name: str, tv):
    b = schedule.bound
    return sp.lambdify(t, getattr(b, name), "mpmath")(tv)


def _drift_mp(schedule, tv, xv, eps, sigma: str, mu: str = "0"):
    a, be = _mp(schedule, "alpha", tv), _mp(schedule, "beta", tv)
    ex, ez, _ = mp_gaussian_fields(a, be, [xv], [mpmath.mpf(mu)], [mpmath.mpf(sigma) ** 2])
    return (_mp(schedule, "alpha_dot", tv) - eps / a) * ez[0] + _mp(schedule, "beta_dot", tv) * ex[0]


@settings(max_examples=5, deadline=None)
@given(sigma=decimals, nu=nus, tv=st.floats(0.01, 0.99))
def test_nu_family_matches_c11_and_is_lazy(sigma, nu, tv):
    der = derive_lazy("optimal", sigma, nu=nu)
    assert der.point_mass and der.schedule.point_mass
    with mpmath.workdps(50):
        tt = mpmath.mpf(tv)
        s, n = mpmath.mpf(sigma), mpmath.mpf(nu)
        target = s**2 * (tt ** (2 * n / (1 + n)) - tt**2)  # C11 with beta = t
        assert abs(_mp(der.schedule, "alpha", tt) ** 2 - target) < mpmath.mpf(10) ** -45
        eps = n * _mp(der.schedule, "eps_star", tt)
        assert abs(_drift_mp(der.schedule, tt, mpmath.mpf("0.8"), eps, sigma)) < mpmath.mpf(10) ** -40


@settings(max_examples=5, deadline=None)
@given(sigma=decimals, tv=st.floats(0.01, 0.99))
def test_ode_rule_gives_variance_preserving(sigma, tv):
    der = derive_lazy("zero", sigma)
    sch = der.schedule
    assert not der.point_mass and sp.simplify(sch.bound.data_scale - sp.Rational(sigma)) == 0
    with mpmath.workdps(50):
        tt = mpmath.mpf(tv)
        a, b = _mp(sch, "alpha", tt), _mp(sch, "beta", tt)
        assert abs(a**2 + mpmath.mpf(sigma) ** 2 * b**2 - 1) < mpmath.mpf(10) ** -45
        assert abs(_drift_mp(sch, tt, mpmath.mpf("-1.3"), 0, sigma)) < mpmath.mpf(10) ** -40
        # not lazy for a different data scale: the test can fail
        assert abs(_drift_mp(sch, tt, mpmath.mpf("-1.3"), 0, str(float(sigma) * 1.5))) > 1e-6


def test_optimal_rule_is_the_point_mass_family():
    der = derive_lazy("optimal", "0.7")
    pm = family("point-mass", sigma=0.7).bound
    assert sp.simplify(der.schedule.bound.alpha**2 - pm.alpha**2) == 0 and der.schedule.bound.beta == pm.beta
    assert der.schedule.require_valid() is der.schedule


def test_custom_rule_is_solved_in_t():
    der = derive_lazy("custom", "0.7", eps="sigma**2/2")
    assert der.point_mass
    assert sp.simplify(der.schedule.bound.alpha**2 - sp.Rational(49, 100) * t * (1 - t)) == 0
    der2 = derive_lazy("custom", "1", eps="c*(1 - t)", params={"c": "0.5"})
    a2 = der2.schedule.bound.alpha**2
    # the ODE d/dt(alpha^2 + sigma^2 beta^2)/2 = eps, checked by differentiation, and alpha(1) = 0
    assert sp.simplify(sp.diff(a2 + t**2, t) / 2 - (1 - t) / 2) == 0 and a2.subs(t, 1) == 0
    assert not der2.point_mass and a2.subs(t, 0) == sp.Rational(1, 2)
    # a rule whose solution has alpha^2 < 0 gives a schedule that fails validation
    assert not derive_lazy("custom", "1", eps="2*t").schedule.validate().valid


def test_bad_rules_are_refused():
    with pytest.raises(ExpressionError, match="unknown diffusion rule"):
        derive_lazy("sometimes", 1)
    with pytest.raises(ExpressionError, match="sigma"):
        derive_lazy("zero", -1)
    with pytest.raises(ExpressionError, match="nu"):
        derive_lazy("optimal", 1, nu=-2)
    with pytest.raises(ExpressionError, match="eps"):
        derive_lazy("custom", 1)
    with pytest.raises(ExpressionError, match="not allowed|unknown name"):
        derive_lazy("custom", 1, eps="__import__('os')")


def test_point_mass_sde_form_and_refusal():
    out = point_mass_sde(family("point-mass", sigma=0.7))
    assert sp.simplify(out["drift_gain"] - 1 / (1 - t)) == 0 and out["noise"] == sp.Rational(7, 10)
    # beta = t^2 on alpha^2 = sigma^2 beta (1 - beta): kappa = beta_dot/(1 - beta)
    s2 = Schedule.from_strings("sqrt(t**2*(1-t**2))", "t**2")
    assert sp.simplify(point_mass_sde(s2)["drift_gain"] - 2 * t / (1 - t**2)) == 0
    with pytest.raises(ValueError, match="kappa"):
        point_mass_sde(family("linear"))


# ------------------------------------------------------------------ C13 in float64 torch
@settings(max_examples=6, deadline=None)
@given(sigma=st.floats(0.2, 3.0), mu=st.floats(-2, 2), t0=st.floats(0.0, 0.9), h=st.floats(0.01, 1.0), seed=st.integers(0, 2**31))
def test_one_euler_maruyama_step_is_exact_on_point_mass(sigma, mu, t0, h, seed):
    t1 = min(1.0, t0 + h)
    ns = NumericSchedule(family("point-mass", sigma=sigma))
    prov = GaussianProvider(ns, torch.full((4,), mu, dtype=F64), sigma**2)
    gen = torch.Generator().manual_seed(seed)
    x0 = prov.sample_marginal(t0, 32, gen)
    dw = torch.randn(x0.shape, generator=gen, dtype=F64) * (t1 - t0) ** 0.5
    tt = torch.tensor(t0, dtype=F64)
    x1 = x0 + prov.drift(tt, x0, Diffusion.optimal(1.0)) * (t1 - t0) + torch.sqrt(2 * ns.eps_star(tt)) * dw
    exact = x0 + mu * (t1 - t0) + sigma * dw  # dX = mu dt + sigma dW (C12-C14 with beta = t)
    err = ((x1 - exact).abs() / exact.abs().clamp_min(1.0)).max()
    assert err <= 1e-12, float(err)


@settings(max_examples=6, deadline=None)
@given(sigma=st.floats(0.2, 3.0), steps=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_euler_on_lazy_ode_is_exact(sigma, steps, seed):
    ns = NumericSchedule(family("vp", sigma=sigma))
    prov = GaussianProvider(ns, torch.zeros(3, dtype=F64), sigma**2)
    gen = torch.Generator().manual_seed(seed)
    x = prov.sample_marginal(0.0, 16, gen)
    x0 = x.clone()
    grid = torch.linspace(0, 1, steps + 1, dtype=F64)
    for a, b in zip(grid[:-1], grid[1:]):
        x = x + prov.drift(a, x) * (b - a)
    assert ((x - x0).abs() / x0.abs().clamp_min(1.0)).max() <= 1e-12
    # the law at t = 1 is N(0, 1) for X / sigma: samples sigma * x have the data variance sigma^2
    # (exactly, pathwise: x_1 = x_0 = Z ~ N(0, 1))
    # a mis-set sigma breaks exactness (the test can fail)
    wrong = GaussianProvider(ns, torch.zeros(3, dtype=F64), (1.3 * sigma) ** 2)
    y = x0 + wrong.drift(torch.tensor(0.25, dtype=F64), x0) * 0.5
    assert ((y - x0).abs()).max() > 1e-3


# ------------------------------------------------------------------ CLI
def _derive(capsys, *argv) -> dict:
    rc = main(["derive", *argv, "--json"])
    out = json.loads(capsys.readouterr().out)
    return rc, out


def _alpha_sq(out: dict, tv: float) -> float:
    from lazysi.symbolic.expr import parse_expression

    return float(parse_expression(out["alpha"]).subs(t, tv)) ** 2


def test_cli_lazy_sde_is_point_mass(capsys):
    rc, out = _derive(capsys, "--lazy", "sde", "--sigma", "0.7")
    assert rc == 0 and out["point_mass"] is True and out["valid"] is True
    assert out["beta"] == "t" and out["eps"] == "49/200"
    for tv in (0.1, 0.5, 0.93):
        assert abs(_alpha_sq(out, tv) - 0.49 * tv * (1 - tv)) < 1e-14


def test_cli_lazy_ode_is_vp(capsys):
    rc, out = _derive(capsys, "--lazy", "ode", "--sigma", "1")
    assert rc == 0 and out["point_mass"] is False and out["valid"] is True
    vp = family("vp").bound
    assert sp.simplify(sp.sympify(out["alpha"], locals={"t": t}) - vp.alpha) == 0
    assert sp.simplify(sp.sympify(out["beta"], locals={"t": t}) - vp.beta) == 0
    assert out["eps"] == "0"


def test_cli_lazy_nu3_matches_c11_and_emits_torch(capsys, tmp_path):
    path = tmp_path / "lazy_nu3.py"
    rc = main(["derive", "--lazy", "sde", "--nu", "3", "--sigma", "0.7", "--emit-torch", str(path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["point_mass"] is True
    for tv in (0.1, 0.5, 0.93):
        assert abs(_alpha_sq(out, tv) - 0.49 * (tv**1.5 - tv**2)) < 1e-14
    ns = compile_module(path.read_text())
    tt = torch.tensor([0.0, 0.25, 1.0], dtype=F64)
    ref = torch.tensor([0.0, 0.7 * (0.25**1.5 - 0.25**2) ** 0.5, 0.0], dtype=F64)
    assert torch.allclose(ns["alpha"](tt), ref, rtol=1e-14, atol=1e-15)


def test_cli_lazy_usage_errors(capsys):
    assert main(["derive", "--lazy", "sde"]) == 2
    assert main(["derive", "--lazy", "ode", "--sigma", "1", "--nu", "2"]) == 2
    assert main(["derive", "--lazy", "ode", "--sigma", "-1"]) == 2
    assert main(["derive", "--family", "linear", "--sigma", "1"]) == 2
    err = capsys.readouterr().err
    assert "--sigma" in err and "--nu" in err


def test_cli_lazy_mean_rule(capsys):
    rc, out = _derive(capsys, "--lazy", "sde", "--sigma", "0.7", "--mu", "0.3")
    assert "beta_dot mu" in out["lazy"]["mean_rule"]
    rc, out = _derive(capsys, "--lazy", "ode", "--sigma", "0.7", "--mu", "0.3")
    assert "centre" in out["lazy"]["mean_rule"]
