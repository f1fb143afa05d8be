"""Schedule conversion (C4-C6): derived maps vs mpmath, generated code vs sympy at 50 digits,
converted providers vs exact mixture fields under the target, strong order of path conversion."""
from __future__ import annotations

import json

import mpmath
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazysi.numeric.fields.convert import NumericConversion, convert
from lazysi.numeric.fields.gaussian import MixtureProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import Diffusion
from lazysi.proofs.claims_conversion import get_conversion, strong_order_fit
from lazysi.symbolic.conversion import Conversion, ConversionError, parse_eps_target, s, t
from lazysi.symbolic.expr import ExpressionError, parse_expression
from lazysi.symbolic.families import family
from lazysi.symbolic.schedule import Schedule

from oracle import close, mp_value

torch.set_num_threads(1)  # tiny tensors: intra-op threads only add contention

PAIRS = [("linear", "vp"), ("linear", "point-mass"), ("vp", "point-mass"), ("sd3", "vp"), ("point-mass", "linear"), ("vp", "linear")]
W, M, V = (torch.tensor(z, dtype=torch.float64) for z in ([0.3, 0.7], [[-1.0], [1.5]], [0.2, 0.5]))


def _ref(expr, sv: float):
    """mpmath reference at 50 digits; where the oracle's relative-convergence test cannot settle
    because the exact value is 0 (e.g. c'/c = pi/(2 tan(pi/2)) at s = 1/2), confirm |value| < 1e-40
    at 120 digits and return 0."""
    try:
        return mp_value(expr, s, sv)
    except TypeError:
        # sympy left the endpoint limit unevaluated for this form: take it numerically,
        # 1e-40 inside the interval at 100 digits (error ~ sqrt(1e-40) even for sqrt-type ends)
        assert sv in (0.0, 1.0), sv
        with mpmath.workdps(100):
            h = mpmath.mpf(10) ** -40
            v = sp.lambdify(s, expr, modules="mpmath")(h if sv == 0.0 else 1 - h)
            v = v.real if isinstance(v, mpmath.mpc) else v
            return mpmath.inf * mpmath.sign(v) if abs(v) > mpmath.mpf(10) ** 15 else v
    except AssertionError:
        with mpmath.workdps(120):
            v = sp.lambdify(s, expr, modules="mpmath")(mpmath.mpf(sv))
        assert abs(v) < mpmath.mpf(10) ** -40, f"oracle did not converge for {expr} at {sv}"
        return mpmath.mpf(0)


def _lam(expr, var, x):
    with mpmath.workdps(50):
        return sp.lambdify(var, expr, modules="mpmath")(mpmath.mpf(x))


@pytest.mark.parametrize("a,b", PAIRS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sv=st.floats(1e-6, 1 - 1e-6))
def test_closed_form_tau_solves_lambda_equation_and_c_is_both_ratios(a, b, sv):
    conv = get_conversion(a, b)
    assert conv.closed_form
    with mpmath.workdps(50):
        tau_cf = _lam(conv.tau, s, sv)
        tau_rf = conv.mp_tau(sv, 50)  # independent bracketed root of lambda_A(tau) = lambda_B(s)
        assert abs(tau_cf - tau_rf) <= mpmath.mpf(10) ** -40 * (1 + abs(tau_rf))
        c = _lam(conv.c, s, sv)
        ra = _lam(conv.alpha_B, s, sv) / _lam(conv.a.alpha, t, tau_rf)
        rb = _lam(conv.beta_B, s, sv) / _lam(conv.a.beta, t, tau_rf)
        assert abs(c - ra) <= mpmath.mpf(10) ** -35 * abs(c)
        assert abs(c - rb) <= mpmath.mpf(10) ** -35 * abs(c)


@pytest.mark.parametrize("a,b", [("linear", "vp"), ("linear", "point-mass"), ("vp", "point-mass"), ("sd3", "vp")])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sv=st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0), st.floats(0.0, 1e-10), st.floats(1 - 1e-10, 1.0)))
def test_committed_conversion_kernels_match_sympy_at_50_digits(a, b, sv):
    conv = get_conversion(a, b)
    num = NumericConversion(family(a), family(b))
    tt = torch.tensor([sv, sv], dtype=torch.float64)
    for name in ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale"):
        got = getattr(num, name)(tt)
        ref = _ref(getattr(conv, name), sv)
        assert close(float(got[0]), ref, 1e-10, 1e-12), f"{a}->{b} {name}({sv!r}) = {float(got[0])!r}, mpmath {ref}"


def test_endpoints_finite_where_limits_are():
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    lv = NumericConversion(family("linear"), family("vp"))
    for name in ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale"):
        assert torch.isfinite(getattr(lv, name)(ends)).all(), name
    assert torch.equal(lv.tau(ends), ends) and torch.allclose(lv.c(ends), torch.ones(2, dtype=torch.float64))
    lp = NumericConversion(family("linear"), family("point-mass"))
    assert torch.equal(lp.tau(ends), ends)
    assert torch.allclose(lp.c(ends), torch.tensor([0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("a,b", [("linear", "vp"), ("vp", "point-mass")])
def test_root_find_route_matches_closed_form(a, b):
    closed = NumericConversion(family(a), family(b))
    rf = NumericConversion(family(a), family(b), force_root_find=True)
    assert closed.closed_form and not rf.closed_form
    sv = torch.linspace(0.01, 0.99, 23, dtype=torch.float64)
    for name in ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale"):
        got, ref = getattr(rf, name)(sv), getattr(closed, name)(sv)
        assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12), name
    assert torch.equal(rf.tau(torch.tensor([0.0, 1.0], dtype=torch.float64)), torch.tensor([0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("a,b", [("linear", "vp"), ("vp", "point-mass"), ("linear", "point-mass")])
def test_root_find_route_has_the_closed_form_endpoint_values(a, b):
    """At s = 0 and 1 the root-find expressions are 0/0 or inf/inf; the leading-order limits
    (confirmed with mpmath) equal the closed form's values there, infinities included."""
    closed = NumericConversion(family(a), family(b))
    rf = NumericConversion(family(a), family(b), force_root_find=True)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for name in ("tau_dot", "c", "c_dot_over_c", "eps_scale"):
        got, ref = getattr(rf, name)(ends), getattr(closed, name)(ends)
        assert not torch.isnan(got).any(), (name, got)
        assert torch.allclose(got, ref, rtol=1e-12, atol=1e-14, equal_nan=False), (name, got, ref)
    # and symbolically: the same limits as the closed form's (sympy numbers, oo included)
    assert rf.conversion.endpoint_values == Conversion(family(a), family(b)).endpoint_values


def test_unconfirmed_endpoint_limit_stays_nan(monkeypatch):
    """A leading-order limit that mpmath does not confirm is not used: NaN, never a guess."""
    from lazysi.symbolic.conversion import Conversion as Conv

    conv = Conv(family("linear"), family("vp"), force_root_find=True)
    monkeypatch.setattr(Conv, "_confirm_endpoint", lambda self, name, end, lim: False)
    rf = NumericConversion(family("linear"), family("vp"), conversion=conv)
    got = rf.tau_dot(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert torch.isnan(got[[0, 2]]).all() and torch.isfinite(got[1])


def test_user_schedule_without_closed_form_uses_root_find():
    A = Schedule.from_strings("(1-t)**2", "t**3")  # t^3/(1-t)^2 = R: a cubic, no short inverse
    conv = Conversion(A, family("vp"))
    assert not conv.closed_form and conv.tau == sp.Function("tau")(s)
    num = NumericConversion(A, family("vp"), conversion=conv)
    sv = torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=torch.float64)
    tau = num.tau(sv)
    for k, x in enumerate(sv.tolist()):
        assert abs(float(tau[k]) - float(conv.mp_tau(x, 40))) <= 1e-14
    # fields of the converted mixture equal the exact fields under vp
    pa = MixtureProvider(NumericSchedule(A), W, M, V)
    from lazysi.numeric.fields.convert import ConvertedProvider

    cp = ConvertedProvider(pa, family("vp"), num)
    x = torch.randn(4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = MixtureProvider(NumericSchedule(family("vp")), W, M, V)
    for got, want in zip(cp.fields(sv, x), ref.fields(sv, x)):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("a,b", PAIRS)
def test_converted_mixture_fields_equal_exact_fields_under_target(a, b):
    """C4 on the exact oracle: eta_A(tau, x/c) is the exact mixture posterior under B."""
    A, B = NumericSchedule(family(a)), NumericSchedule(family(b))
    cp = convert(MixtureProvider(A, W, M, V), family(b))
    ref = MixtureProvider(B, W, M, V)
    g = torch.Generator().manual_seed(0)
    sv = torch.tensor([1e-6, 0.03, 0.2, 0.5, 0.8, 0.97, 1 - 1e-6], dtype=torch.float64)
    x = torch.randn(7, 1, dtype=torch.float64, generator=g) * 2
    for got, want in zip(cp.fields(sv, x), ref.fields(sv, x)):
        assert torch.allclose(got, want, rtol=1e-8, atol=1e-9), (a, b, got.flatten(), want.flatten())
    inner = slice(1, 6)
    for diffusion in (Diffusion.zero(), Diffusion.optimal(1.0), Diffusion.optimal(0.5)):
        got = cp.drift(sv[inner], x[inner], diffusion)
        want = ref.drift(sv[inner], x[inner], diffusion)
        assert torch.allclose(got, want, rtol=1e-8, atol=1e-9), (a, b, diffusion)


def test_point_mass_target_base_is_exact():
    """Standard A -> point-mass B at s = 0: c = 0, x = 0; eta_X is E[X] and the eps*-drift is finite."""
    cp = convert(MixtureProvider(NumericSchedule(family("linear")), W, M, V), family("point-mass"))
    ref = MixtureProvider(NumericSchedule(family("point-mass")), W, M, V)
    x = torch.zeros(1, 1, dtype=torch.float64)
    ex, _ = cp.fields(0.0, x)
    assert torch.allclose(ex, (W / W.sum() * M[:, 0]).sum().reshape(1, 1).double())
    d = cp.drift(0.0, x, Diffusion.optimal(1.0))
    assert torch.isfinite(d).all() and torch.allclose(d, ref.drift(0.0, x, Diffusion.optimal(1.0)))


def test_different_lambda_ranges_are_refused():
    with pytest.raises(ConversionError, match="lambda"):
        Conversion(family("linear"), family("ddpm"))
    with pytest.raises(ConversionError, match="lambda"):
        Conversion(family("ddpm"), family("vp"))
    # lambda not monotone (beta dips near t = 1/2): refused, naming monotonicity
    wobbly = Schedule.from_strings("1 - t", "t + sin(2*pi*t)/2")
    with pytest.raises(ConversionError, match="strictly increasing"):
        Conversion(family("linear"), wobbly)


def test_eps_maps_round_trip_and_targets():
    conv = get_conversion("linear", "vp")
    B = family("vp")
    assert parse_eps_target("zero", B) == 0
    opt = parse_eps_target("optimal", B)
    nu = parse_eps_target("nu=0.5", B)
    assert sp.simplify(nu - opt / 2) == 0
    # C6: converting eps*_A gives eps*_B
    assert sp.simplify(conv.eps_to_target(conv.a.eps_star) - opt) == 0
    # round trip of a user expression: eps_B -> eps_A -> eps_B
    user = parse_eps_target("s*(1-s) + 1/4", B)
    back = conv.eps_to_target(conv.eps_to_source(user))
    f, g = sp.lambdify(s, back, "mpmath"), sp.lambdify(s, user, "mpmath")
    with mpmath.workdps(40):
        for sv in ("0.1", "0.5", "0.9"):
            assert abs(f(mpmath.mpf(sv)) - g(mpmath.mpf(sv))) < mpmath.mpf(10) ** -30
    for bad in ("nu=-1", "t*2", "__import__('os')", ""):
        with pytest.raises(ExpressionError):
            parse_eps_target(bad, B)


def test_cli_linear_to_vp_json(capsys):
    from lazysi.cli import main

    assert main(["convert", "--from", "linear", "--to", "vp", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["closed_form"] is True
    a, b = sp.cos(sp.pi * s / 2), sp.sin(sp.pi * s / 2)
    tau, c = parse_expression(out["tau"], variable="s"), parse_expression(out["c"], variable="s")
    assert sp.simplify(tau - b / (a + b)) == 0
    assert sp.simplify(c - (a + b)) == 0
    assert parse_expression(out["eps_target"], variable="s") == 0


def test_cli_custom_schedule_and_errors(capsys):
    from lazysi.cli import main

    assert main(["convert", "--from", "linear", "--to", "alpha=sqrt(t*(1-t)),beta=t", "--eps", "optimal", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    tau = parse_expression(out["tau"], variable="s")
    assert sp.simplify(tau - sp.sqrt(s) / (sp.sqrt(s) + sp.sqrt(1 - s))) == 0
    # eps* of the point-mass schedule with sigma = 1 is 1/2
    assert sp.simplify(parse_expression(out["eps_target"], variable="s") - sp.Rational(1, 2)) == 0
    assert main(["convert", "--from", "linear", "--to", "ddpm"]) == 2
    assert "lambda" in capsys.readouterr().err
    assert main(["convert", "--from", "linear", "--to", "alpha=1-t"]) == 2


@pytest.mark.parametrize("solver", ["em", "heun_sde"])
def test_path_conversion_strong_order(solver):
    """C5: B's SDE driven by the time-changed W converges to c X_A(tau) at strong order 1."""
    slope, errors = strong_order_fit(levels=(8, 16, 32, 64), fine=1024, paths=200, seed=3, solver=solver)
    assert abs(slope - 1.0) <= 0.15, (slope, errors)
    assert errors[-1] < errors[0] / 4


def test_wrong_time_change_is_caught():
    """Mutation: driving B with the A-noise read on the s-grid (no sqrt(ds/dtau)) must not converge."""
    import lazysi.numeric.sampling.brownian as br

    original = br.BrownianPath.time_changed

    def naive(self, s_grid, tau, generator=None):
        path = original(self, s_grid, tau, generator)
        w = self.values[[self.index(float(u)) for u in tau]]
        return br.BrownianPath(path.times, w - w[:1])

    br.BrownianPath.time_changed = naive
    try:
        slope, errors = strong_order_fit(levels=(8, 16, 32, 64), fine=512, paths=100, seed=1)
    finally:
        br.BrownianPath.time_changed = original
    assert abs(slope - 1.0) > 0.15 or errors[-1] > errors[0] / 4, (slope, errors)


def test_numeric_eps_maps_both_directions():
    """eps*_A -> eps*_B (C6) through the generated kernels, and the inverse map back."""
    conv = NumericConversion(family("linear"), family("vp"))
    A, B = NumericSchedule(family("linear")), NumericSchedule(family("vp"))
    sv = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    assert torch.allclose(conv.eps_to_target(A.eps_star)(sv), B.eps_star(sv), rtol=1e-12)
    tv = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    assert torch.allclose(conv.sigma(conv.tau(sv)), sv, atol=1e-14)
    assert torch.allclose(conv.eps_to_source(B.eps_star)(tv), A.eps_star(tv), rtol=1e-11)
    user = lambda s_: s_ * (1 - s_) + 0.25  # noqa: E731
    back = conv.eps_to_target(conv.eps_to_source(user))(sv)
    assert torch.allclose(back, user(sv), rtol=1e-12)
