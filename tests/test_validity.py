"""Validity reports: built-in families, invalid user schedules, symbolic vs numeric checks."""
from __future__ import annotations

from functools import lru_cache

import pytest
import sympy as sp

from lazysi.symbolic.expr import time_symbol
from lazysi.symbolic.families import family, family_names
from lazysi.symbolic.schedule import Schedule, ScheduleError
from lazysi.symbolic.validity import check_positive_numeric, prove_positive, validate

T = time_symbol("t")


@lru_cache(maxsize=None)
def report(name: str):
    return family(name).validate()


def by_name(rep) -> dict:
    return {c.name: c for c in rep.conditions}


@pytest.mark.parametrize("name", [n for n in family_names() if n != "ddpm"])
def test_builtin_families_are_valid(name):
    rep = report(name)
    assert rep.valid, [c for c in rep.conditions if not c.holds]
    assert rep.point_mass == (name == "point-mass")
    assert all(c.how in ("symbolic", "numeric") for c in rep.conditions)
    conds = by_name(rep)
    for required in ("alpha(1) = 0", "beta(0) = 0", "alpha > 0 on (0,1)", "beta > 0 on (0,1)",
                     "beta_dot > 0 on (0,1)", "lambda strictly increasing on (0,1)", "lambda range is (-oo, oo)"):
        assert required in conds, (name, required)
    if name == "point-mass":
        assert "point mass: alpha^2/beta finite at 0" in conds and "point mass: beta_dot finite at 0" in conds
        assert "alpha_dot < 0 on (0,1)" not in conds  # alpha rises from 0 at a point-mass base
    else:
        assert "alpha_dot < 0 on (0,1)" in conds


def test_ddpm_is_reported_invalid_for_the_right_reasons():
    rep = report("ddpm")
    conds = by_name(rep)
    assert not rep.valid and not rep.point_mass
    b0 = conds["beta(0) = 0"]
    assert not b0.holds and b0.how == "symbolic"
    assert sp.sympify(b0.detail.removeprefix("limit is ")) == sp.exp(sp.Rational(-201, 40))
    lam_range = conds["lambda range is (-oo, oo)"]
    assert not lam_range.holds and "lambda(1-) = oo" in lam_range.detail and "lambda(0+) = -oo" not in lam_range.detail
    # its interior conditions hold (it is a fine schedule apart from its finite terminal SNR)
    for name in ("alpha > 0 on (0,1)", "beta > 0 on (0,1)", "beta_dot > 0 on (0,1)", "lambda strictly increasing on (0,1)"):
        assert conds[name].holds, name
    with pytest.raises(ScheduleError, match=r"beta\(0\) = 0.*lambda range"):
        family("ddpm").require_valid()


def test_linear_positivity_is_proved_symbolically():
    conds = by_name(report("linear"))
    for name in ("alpha > 0 on (0,1)", "beta > 0 on (0,1)", "beta_dot > 0 on (0,1)", "alpha_dot < 0 on (0,1)",
                 "lambda strictly increasing on (0,1)"):
        assert conds[name].holds and conds[name].how == "symbolic", conds[name]


def test_numeric_checks_use_at_least_30_digits():
    conds = by_name(report("ddpm"))
    numeric = [c for c in conds.values() if c.how == "numeric"]
    assert numeric, "ddpm has conditions sympy cannot prove; they must be checked numerically"
    assert all("(30 digits" in c.detail for c in numeric)
    rep40 = family("ddpm").validate(digits=40, grid=50)
    assert all("(40 digits" in c.detail for c in rep40.conditions if c.how == "numeric")


def test_reversed_schedule_is_refused_naming_each_failure():
    s = Schedule.from_strings("t", "1 - t")
    rep = s.validate()
    failed = {c.name for c in rep.failed()}
    assert {"alpha(1) = 0", "beta(0) = 0", "data end: beta(1) = 1", "beta_dot > 0 on (0,1)",
            "lambda strictly increasing on (0,1)", "lambda range is (-oo, oo)"} <= failed
    with pytest.raises(ScheduleError) as info:
        s.require_valid()
    for name in failed:
        assert name in str(info.value)


def test_sign_change_is_refused_naming_each_failure():
    s = Schedule.from_strings("cos(pi*t)", "t")
    rep = s.validate()
    failed = {c.name for c in rep.failed()}
    assert {"alpha(1) = 0", "alpha > 0 on (0,1)", "lambda strictly increasing on (0,1)", "lambda range is (-oo, oo)"} == failed
    assert "min -1" in by_name(rep)["alpha > 0 on (0,1)"].detail
    with pytest.raises(ScheduleError) as info:
        s.require_valid()
    msg = str(info.value)
    assert all(name in msg for name in failed)
    assert "beta > 0" not in msg  # conditions that hold are not blamed


def test_positivity_helpers_decide_and_can_fail():
    assert prove_positive(1 - T, T) is True
    assert prove_positive(T - sp.Rational(1, 2), T) is False
    holds, detail = check_positive_numeric(T - sp.Rational(1, 10**9), T, digits=30, n=50)
    assert not holds and "t=" in detail  # only the grid points within 1e-9 of 0 see the violation
    holds, detail = check_positive_numeric((1 - T) - sp.Rational(2, 10**12), T)
    assert not holds and "t=1 - 1.0e-12" in detail  # a violation only at t = 1 - 1e-12 is found and located
    assert check_positive_numeric(sp.sin(sp.pi * T), T)[0]


def test_point_mass_recognised_for_custom_expressions():
    s = Schedule.from_strings("a*sqrt(t*(1-t))", "t", {"a": 0.7})
    rep = validate(s)
    assert rep.point_mass and rep.valid
    d = rep.as_dict()
    assert d["point_mass"] is True and d["valid"] is True
    assert all(set(c) == {"name", "holds", "how", "detail"} for c in d["conditions"])


# ---- sympy's work is bounded by size, not by wall time ------------------------------------------

def _decisions(exprs):
    return [prove_positive(e, T) for e in exprs]


def _probe_expressions():
    out = []
    for name in ("vp", "point-mass"):
        b = family(name).bound
        out += [b.alpha, b.beta, b.beta_dot, -b.alpha_dot, b.alpha * b.beta_dot - b.beta * b.alpha_dot]
    ddpm = family("ddpm").bound  # lambda' of ddpm: too large for solveset, undecided (None)
    return out + [ddpm.alpha * ddpm.beta_dot - ddpm.beta * ddpm.alpha_dot, T - sp.Rational(1, 2), 1 - T**2]


def test_decisions_do_not_depend_on_the_clock_or_signals(monkeypatch):
    """With a clock that jumps 10^6 s at every reading (a machine as loaded as can be), and with
    signals and timers forbidden, every decision and every validity report is the same as on the
    real clock: nothing in the validity checks reads the time or installs a handler."""
    import itertools
    import signal
    import time

    exprs = _probe_expressions()
    expected = _decisions(exprs)
    assert None in expected and True in expected and False in expected  # the probe exercises all three
    schedules = (family("vp"), Schedule.from_strings("cos(pi*t)", "t"))
    reports = [sch.validate(grid=40).as_dict() for sch in schedules]
    handler = signal.getsignal(signal.SIGALRM)

    ticks = itertools.count()
    for clock in ("monotonic", "perf_counter", "time"):
        monkeypatch.setattr(time, clock, lambda: 1e6 * next(ticks))

    def forbidden(*args, **kwargs):
        raise AssertionError("a signal handler or timer was installed")

    monkeypatch.setattr(signal, "signal", forbidden)
    monkeypatch.setattr(signal, "setitimer", forbidden)
    monkeypatch.setattr(signal, "alarm", forbidden)
    assert _decisions(exprs) == expected
    assert [sch.validate(grid=40).as_dict() for sch in schedules] == reports
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGALRM) == handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_size_bound_is_an_exact_threshold():
    """The rule is a pure function of the expression's size: below count_ops(expr) sympy is not
    asked (None), from it on the decision is sympy's -- the same for a bound just large enough and
    for a huge one."""
    from lazysi.symbolic.validity import MAX_PROVE_OPS, within_size_bound

    vp = family("vp").bound
    e = vp.alpha * vp.beta_dot - vp.beta * vp.alpha_dot  # decided by solveset
    k = int(sp.count_ops(e))
    assert prove_positive(e, T, max_ops=k - 1) is None  # too large to be handed to sympy at all
    assert prove_positive(e, T, max_ops=10**6, max_solveset_ops=k - 1) is None  # too large for solveset
    assert prove_positive(e, T, max_ops=10**6, max_solveset_ops=k) is True
    assert prove_positive(e, T, max_ops=10**6, max_solveset_ops=10**6) is True
    assert within_size_bound(e, k) and not within_size_bound(e, k - 1)
    # beyond the bound the condition is still decided -- numerically, and reported so
    big = sum((T + sp.Rational(j, 7)) ** 2 for j in range(MAX_PROVE_OPS // 3 + 1))
    assert sp.count_ops(big) > MAX_PROVE_OPS and prove_positive(big, T) is None
    s = Schedule.from_strings(f"(1 - t) * ({big})", "t")
    cond = by_name(validate(s, grid=40))["alpha > 0 on (0,1)"]
    assert cond.holds and cond.how == "numeric"
