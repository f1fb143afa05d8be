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


# ---- the wall-time bound on sympy attempts ------------------------------------------------------

def _spin(seconds: float) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_time_limit_interrupts_and_restores_the_handler():
    import signal

    from lazysi.symbolic import validity as v

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(v._Timeout):
        with v._time_limit(0.05):
            _spin(5.0)
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert v._DEADLINES == []


def test_time_limit_is_not_swallowed_by_except_exception():
    from lazysi.symbolic import validity as v

    swallowed = []
    with pytest.raises(v._Timeout):
        with v._time_limit(0.05):
            try:  # what sympy does in many places
                _spin(5.0)
            except Exception as exc:  # noqa: BLE001
                swallowed.append(exc)
    assert swallowed == []


def test_inner_time_limit_keeps_the_outer_deadline():
    import time

    from lazysi.symbolic import validity as v

    start = time.monotonic()
    with pytest.raises(v._Timeout):
        with v._time_limit(0.3):
            with v._time_limit(0.01):
                pass  # finishes in time: leaving it must re-arm the outer timer, not cancel it
            with v._time_limit(10.0):  # cannot extend the outer deadline
                _spin(5.0)
    assert time.monotonic() - start < 2.0
    assert v._DEADLINES == []


def test_finished_block_leaves_no_alarm_behind():
    import signal

    from lazysi.symbolic import validity as v

    with v._time_limit(0.02):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    _spin(0.1)  # an alarm left armed would raise here


def test_timeout_in_a_finalizer_is_neither_printed_nor_lost():
    import sys

    from lazysi.symbolic import validity as v

    seen = []
    prev = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        class Slow:
            def __del__(self):  # the alarm may land here: it must not be reported as unraisable
                _spin(0.2)

        with pytest.raises(v._Timeout):
            with v._time_limit(0.05):
                Slow()  # finalised at once, deadline passes inside __del__
                _spin(5.0)  # the re-fired alarm interrupts this
        assert seen == []
        assert sys.unraisablehook == seen.append  # the caller's hook is back
    finally:
        sys.unraisablehook = prev
