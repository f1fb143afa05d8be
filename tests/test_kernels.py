"""Generated schedule kernels against sympy evaluated by mpmath at 50 digits."""
from __future__ import annotations

import importlib

import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazysi.numeric.codegen_all import regenerate_all
from lazysi.numeric.fields.schedule import KERNEL_NAMES, NumericSchedule
from lazysi.symbolic.codegen import compile_module, render_module
from lazysi.symbolic.families import family

from oracle import close, mp_value

# Subnormal t (below 2.2e-308) is excluded here: there ``c*t`` itself rounds to a few bits, so
# no float formula keeps 1e-12 relative accuracy (e.g. vp lam at 5e-324 is off by 3e-4).
# test_subnormal_times_give_no_nan checks what does hold there.
times = st.one_of(
    st.floats(0.0, 1.0, allow_subnormal=False),
    st.sampled_from([0.0, 1.0, 0.5, 2.2250738585072014e-308, 1.0 - 2.0**-53]),
    st.floats(0.0, 1e-12, allow_subnormal=False),
    st.floats(1.0 - 1e-12, 1.0),
)

# family -> strategy for its parameter values (defaults where the module binds its parameters)
PARAMS = {
    "linear": st.just({}),
    "vp": st.fixed_dictionaries({"sigma": st.floats(0.2, 5.0)}),
    "point-mass": st.fixed_dictionaries({"sigma": st.floats(0.2, 5.0)}),
    "sd3": st.fixed_dictionaries({"shift": st.floats(0.5, 6.0)}),
    "polynomial": st.just({}),
    "ddpm": st.just({}),
}


def _check(schedule, t: float, dtype=torch.float64, rel=1e-12, abs_=1e-12):
    ns = NumericSchedule(schedule)
    bound = schedule.bound
    exprs = bound.kernels()
    tt = torch.tensor([t, t], dtype=dtype)  # batched
    for name in KERNEL_NAMES:
        got = ns.kernel(name, tt)
        assert got.dtype == dtype and got.shape == tt.shape
        ref = mp_value(exprs[name], bound.t, float(tt[0]))
        assert close(float(got[0]), ref, rel, abs_), f"{schedule.name}.{name}({t!r}) = {float(got[0])!r}, mpmath {ref}"


@pytest.mark.parametrize("name", list(PARAMS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_float64_kernels_match_mpmath_50_digits(name, data):
    values = data.draw(PARAMS[name])
    t = data.draw(times)
    _check(family(name, **values), t)


@pytest.mark.parametrize("name", list(PARAMS))
@settings(max_examples=10, deadline=None)
@given(t=st.floats(0.0, 1.0, width=32, allow_subnormal=False))
def test_float32_kernels_match_mpmath(name, t):
    _check(family(name), t, dtype=torch.float32, rel=1e-5, abs_=1e-5)


def test_no_nan_on_closed_interval_where_limit_finite():
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    for name in PARAMS:
        ns = NumericSchedule(family(name))
        for k in KERNEL_NAMES:
            assert not torch.isnan(ns.kernel(k, t)).any(), f"{name}.{k} has NaN on [0,1]"
    pm = NumericSchedule(family("point-mass", sigma=0.5))
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(pm.eps_star(ends), torch.full((2,), 0.125, dtype=torch.float64))
    assert torch.isfinite(pm.x_coeff_optimal(torch.tensor([0.0], dtype=torch.float64))).all()


@pytest.mark.parametrize("name", list(PARAMS))
def test_subnormal_times_give_no_nan(name):
    """At subnormal t every kernel is NaN-free and has the sign of the 50-digit value."""
    s = family(name)
    ns = NumericSchedule(s)
    exprs = s.bound.kernels()
    for t in (5e-324, 1e-310):
        tt = torch.tensor([t], dtype=torch.float64)
        for k in KERNEL_NAMES:
            got = float(ns.kernel(k, tt)[0])
            ref = mp_value(exprs[k], s.bound.t, t)
            assert got == got, f"{name}.{k}({t!r}) is NaN"
            assert (got > 0) == (ref > 0) and (got < 0) == (ref < 0) or abs(got - float(ref)) <= 1e-12, (
                f"{name}.{k}({t!r}) = {got!r}, mpmath {ref}"
            )


@pytest.mark.parametrize(
    ("name", "kernel", "t"),
    [("ddpm", "eps_star_over_alpha", 0.9999999999991062), ("ddpm", "alpha_dot_over_alpha", 1.0 - 2.0**-53),
     ("ddpm", "x_coeff_optimal", 1.0 - 1e-15), ("sd3", "lam", 1e-300), ("vp", "x_coeff_optimal", 1e-300)],
)
def test_regressions_near_the_ends(name, kernel, t):
    """Points where earlier generated forms cancelled catastrophically (found by hypothesis)."""
    s = family(name)
    got = float(NumericSchedule(s).kernel(kernel, torch.tensor([t], dtype=torch.float64))[0])
    ref = mp_value(s.bound.kernels()[kernel], s.bound.t, t)
    assert close(got, ref, 1e-12, 1e-12), f"{name}.{kernel}({t!r}) = {got!r}, mpmath {ref}"


def test_committed_modules_match_generator():
    assert regenerate_all(check=True) == [], "run `lazysi codegen` and commit the result"


def test_custom_schedule_generated_on_the_fly():
    from lazysi.symbolic.schedule import Schedule

    s = Schedule.from_strings("a*sqrt(t*(1-t))", "t", {"a": 0.7})
    for t in (0.0, 1e-13, 0.3, 1 - 1e-13, 1.0):
        _check(s, t)


def test_harness_catches_a_wrong_expression():
    """A deliberately wrong kernel (pi/2 -> 1.5707) must be caught by the same comparison."""
    s = family("vp")
    good = s.bound.kernels()
    wrong = dict(good)
    wrong["alpha"] = sp.cos(sp.Float("1.5707", 5) * s.t)
    ns = compile_module(render_module("mutant", wrong, s.t))
    tt = torch.tensor([0.9], dtype=torch.float64)
    ref = mp_value(good["alpha"], s.t, 0.9)
    assert not close(float(ns["alpha"](tt)[0]), ref, 1e-12, 1e-12)


def test_compile_and_batching():
    ns = NumericSchedule(family("point-mass", sigma=0.7))
    t = torch.rand(4, 3, dtype=torch.float64)
    assert ns.eps_star_over_alpha(t).shape == (4, 3)
    mod = importlib.import_module("lazysi.numeric.generated.point_mass")
    compiled = torch.compile(mod.eps_star_over_alpha, backend="eager", fullgraph=True)
    assert torch.allclose(compiled(t, sigma=0.7), mod.eps_star_over_alpha(t, sigma=0.7))
