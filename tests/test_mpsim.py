"""mpmath path simulation: ODE conversion to <= 1e-15 at 30 digits, SDE path conversion converging."""
from __future__ import annotations

import math
import random

import mpmath
import pytest

from lazysi.proofs.oracles import Mixture, MpSchedule, mp_conversion_ode_gap, mp_conversion_sde_gap, mp_ode_solve
from lazysi.proofs.claims_conversion import get_conversion
from lazysi.symbolic.families import family

MIX = Mixture((0.3, 0.7), ((-1.0,), (1.5,)), (0.2, 0.5))


def test_gbs_integrator_converges_to_the_exact_gaussian_flow():
    """N(MU, VAR) data: x_t - beta MU scales like sqrt(alpha^2 + beta^2 VAR); 30 digits, error < 1e-20."""
    mu, var = mpmath.mpf("0.7"), mpmath.mpf("0.3")
    gauss = Mixture((1,), ((mu,),), (var,))
    ms = MpSchedule(family("vp"))
    with mpmath.workdps(30):
        t0, t1, x0 = mpmath.mpf("0.1"), mpmath.mpf("0.9"), mpmath.mpf("-1.3")
        sd = lambda tv: mpmath.sqrt(ms.alpha(tv) ** 2 + ms.beta(tv) ** 2 * var)  # noqa: E731
        exact = ms.beta(t1) * mu + sd(t1) / sd(t0) * (x0 - ms.beta(t0) * mu)
        got = mp_ode_solve(ms, gauss, t0, t1, [x0], 30, 8)[0]
        assert abs(got - exact) < mpmath.mpf(10) ** -20


@pytest.mark.parametrize("a,b,s0,s1", [("linear", "vp", 0.1, 0.9), ("vp", "point-mass", 0.2, 0.8)])
def test_ode_conversion_endpoints_agree_to_1e_15(a, b, s0, s1):
    gap = mp_conversion_ode_gap(get_conversion(a, b), MIX, s0, s1, [0.3], 30, 8)
    assert gap <= 1e-15, gap


def test_ode_conversion_gap_detects_a_wrong_scale():
    """Mutation: starting B at x0 instead of c(s0) x0 leaves an O(1) gap."""
    conv = get_conversion("linear", "vp")  # c(0.3) = cos + sin != 1
    gap_ok = mp_conversion_ode_gap(conv, MIX, 0.3, 0.6, [0.3], 30, 4)
    ms_b = MpSchedule(conv.B)
    with mpmath.workdps(30):
        t1 = conv.mp_tau(0.6, 30)
        xa = mp_ode_solve(MpSchedule(conv.A), MIX, conv.mp_tau(0.3, 30), t1, [0.3], 30, 4)[0]
        xb_wrong = mp_ode_solve(ms_b, MIX, 0.3, 0.6, [0.3], 30, 4)[0]  # not scaled by c(0.3)
        c1 = (ms_b.alpha(0.6) + ms_b.beta(0.6)) / (1)  # linear: alpha + beta = 1
        wrong_gap = abs(xb_wrong - c1 * xa)
    assert gap_ok < 1e-12 and wrong_gap > 1e-3


def test_sde_path_conversion_converges_at_order_one():
    """A's and B's Euler-Maruyama paths driven by W and the time-changed W at 30 digits: the path
    discrepancy max_k |X_B(s_k) - c X_A(tau(s_k))| shrinks like h (additive noise)."""
    conv = get_conversion("linear", "vp")
    rng = random.Random(7)
    levels = (8, 16, 32)
    paths = 4
    normals_fine = [[[rng.gauss(0, 1)] for _ in range(levels[-1])] for _ in range(paths)]
    errs = []
    for n in levels:
        k = levels[-1] // n
        total = 0.0
        for p in range(paths):
            # coarse normals from the fine ones (sum / sqrt(k)): the same W on every level
            normals = [[sum(normals_fine[p][j * k + i][0] for i in range(k)) / math.sqrt(k)] for j in range(n)]
            grid = [0.2 + 0.6 * j / n for j in range(n + 1)]
            total += mp_conversion_sde_gap(conv, MIX, 1, grid, [0.3], normals, 30)
        errs.append(total / paths)
    slope = math.log(errs[0] / errs[-1]) / math.log(levels[-1] / levels[0])
    assert abs(slope - 1.0) <= 0.3, (slope, errs)


def test_precision_below_30_digits_is_refused():
    with pytest.raises(ValueError, match="dps"):
        mp_ode_solve(family("linear"), MIX, 0.1, 0.2, [0.0], 20)
