"""mpmath oracles: the exact Gaussian / mixture fields and high-precision paths (claims C1-C7).

Used by the claims and the tests as independent references for the torch code; nothing in the
library's sampling path imports this module. Everything runs at ``dps`` >= 30 decimal digits.

* Fields: :func:`mp_gaussian_fields`, :func:`mp_mixture_fields`, :func:`mp_mixture_log_density`
  lambdify the sympy derivation of :mod:`lazysi.symbolic.fields` (C7) to mpmath.
* Schedules: :class:`MpSchedule` (alpha, beta, their derivatives and eps* as mpmath functions).
* Paths on Gaussian-mixture data (C4, C5), t forward (base -> data):
  :func:`mp_ode_solve` (the probability-flow ODE, order-16 Gragg-Bulirsch-Stoer),
  :func:`mp_conversion_ode_gap` (A's and B's ODE solutions started consistently:
  ``|x_B(s1) - c(s1) x_A(tau(s1))|``), :func:`mp_sde_em` and :func:`mp_conversion_sde_gap`
  (Euler-Maruyama for A with ``nu eps*_A`` on ``tau(s_k)`` and for B with ``nu eps*_B`` driven by the
  time-changed increments ``Delta W_B = Delta W sqrt(Delta s / Delta tau)``; the path discrepancy
  shrinks like the strong error, order 1 for additive noise).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import sympy as sp

from lazysi.symbolic.conversion import Conversion, s as S_SYM, t as T_SYM
from lazysi.symbolic.fields import ALPHA, BETA, D, M, X, gaussian_fields
from lazysi.symbolic.schedule import Schedule

__all__ = [
    "Mixture",
    "MpSchedule",
    "mp_gaussian_fields",
    "mp_mixture_fields",
    "mp_mixture_log_density",
    "mp_ode_solve",
    "mp_conversion_ode_gap",
    "mp_sde_em",
    "mp_conversion_sde_gap",
]

# ---------------------------------------------------------------------------- fields (C7)
_MP: dict[str, Callable] = {}


def _mp_funcs() -> dict[str, Callable]:
    if not _MP:
        g = gaussian_fields()
        args = (ALPHA, BETA, X, M, D)
        for name in ("eta_x", "eta_z", "log_density"):
            _MP[name] = sp.lambdify(args, getattr(g, name), modules="mpmath")
    return _MP


def mp_gaussian_fields(alpha, beta, x: Sequence, mean: Sequence, variances) -> tuple[list, list, mpmath.mpf]:
    """mpmath oracle for one diagonal Gaussian ``N(mean, diag(variances))``: ``(eta_X, eta_Z, log p)``.

    Built by lambdifying the sympy derivation of :mod:`lazysi.symbolic.fields` to mpmath (evaluate
    inside ``mpmath.workdps``). ``variances`` is one number (isotropic) or one per coordinate.
    Requires ``alpha^2 + beta^2 d > 0`` in every coordinate.
    """
    f = _mp_funcs()
    dim = len(x)
    var = list(variances) if isinstance(variances, (list, tuple)) else [variances] * dim
    if len(mean) != dim or len(var) != dim:
        raise ValueError(f"x, mean and variances must have the same length ({dim}); got {len(mean)}, {len(var)}")
    alpha, beta = mpmath.mpf(alpha), mpmath.mpf(beta)
    ex, ez, lp = [], [], mpmath.mpf(0)
    for xj, mj, dj in zip(x, mean, var):
        xj, mj, dj = mpmath.mpf(xj), mpmath.mpf(mj), mpmath.mpf(dj)
        if dj < 0:
            raise ValueError("variances must be >= 0")
        if alpha**2 + beta**2 * dj == 0:
            raise ValueError("alpha^2 + beta^2 d = 0: the marginal of I_t is degenerate here")
        ex.append(f["eta_x"](alpha, beta, xj, mj, dj))
        ez.append(f["eta_z"](alpha, beta, xj, mj, dj) if alpha != 0 else mpmath.mpf(0))
        lp += f["log_density"](alpha, beta, xj, mj, dj)
    return ex, ez, lp


def mp_mixture_log_density(alpha, beta, x: Sequence, weights: Sequence, means: Sequence[Sequence], variances: Sequence):
    """``log p_t(x)`` of the mixture (mpf); arguments as :func:`mp_mixture_fields`."""
    logs = [mpmath.log(mpmath.mpf(w)) + mp_gaussian_fields(alpha, beta, x, m, v)[2] for w, m, v in zip(weights, means, variances) if w > 0]
    top = max(logs)
    total = mpmath.fsum(weights)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in logs)) - mpmath.log(total)


def mp_mixture_fields(alpha, beta, x: Sequence, weights: Sequence, means: Sequence[Sequence], variances: Sequence) -> tuple[list, list]:
    """mpmath oracle of the fields of ``sum_k w_k N(means[k], diag(variances[k]))`` at ``I = x``.

    Args:
        alpha, beta: the schedule values (mpf or numbers) with ``alpha > 0``.
        x: the state, a list of D numbers.
        weights: K nonnegative weights (normalised here).
        means: K lists of D numbers.
        variances: K entries, each one number (isotropic) or a list of D variances (diagonal).

    Returns ``(eta_X, eta_Z)`` as lists of mpf: posterior-weighted (log-sum-exp) sums of the
    per-component fields, all from the lambdified sympy derivation. Use inside ``mpmath.workdps``.
    """
    if not (len(weights) == len(means) == len(variances)) or not weights:
        raise ValueError("weights, means and variances must have the same non-zero length")
    comps = [mp_gaussian_fields(alpha, beta, x, m, v) for m, v in zip(means, variances)]
    logs = [mpmath.log(mpmath.mpf(w)) + c[2] if w > 0 else -mpmath.inf for w, c in zip(weights, comps)]
    top = max(logs)
    ws = [mpmath.exp(v - top) if v != -mpmath.inf else mpmath.mpf(0) for v in logs]
    total = mpmath.fsum(ws)
    ws = [w / total for w in ws]
    dim = len(x)
    eta_x = [mpmath.fsum(w * c[0][j] for w, c in zip(ws, comps)) for j in range(dim)]
    eta_z = [mpmath.fsum(w * c[1][j] for w, c in zip(ws, comps)) for j in range(dim)]
    return eta_x, eta_z



# ---------------------------------------------------------------------------- paths (C4, C5)
MIN_DPS = 30


@dataclass(frozen=True)
class Mixture:
    """``sum_k w_k N(means[k], diag(variances[k]))`` as plain numbers (kept exact in mpmath)."""

    weights: tuple
    means: tuple  # K tuples of D numbers
    variances: tuple  # K numbers (isotropic)

    @property
    def dim(self) -> int:
        return len(self.means[0])


class MpSchedule:
    """``alpha, beta, alpha_dot, beta_dot, eps_star`` of a schedule (parameters bound) as mpmath
    functions of t (lambdified sympy; evaluate inside ``mpmath.workdps``).

    Two spellings: attributes (``ms.alpha(tv)``, the raw lambdified function) and a call
    (``ms("alpha", tv)``, which takes ``tv`` as an mpf and returns an mpf)."""

    NAMES = ("alpha", "beta", "alpha_dot", "beta_dot", "eps_star")

    def __init__(self, schedule: Schedule):
        b = schedule.bound
        self.schedule = b
        self._f = {n: sp.lambdify(T_SYM, getattr(b, n), modules="mpmath") for n in self.NAMES}
        for n, f in self._f.items():
            setattr(self, n, f)

    def __call__(self, name: str, tv) -> mpmath.mpf:
        return mpmath.mpf(self._f[name](mpmath.mpf(tv)))

    def drift(self, mix: Mixture, nu, tv, x: Sequence) -> list:
        """``b + nu eps* s = (alpha_dot - nu eps*/alpha) eta_Z + beta_dot eta_X`` at (t, x)."""
        a, bt = self.alpha(tv), self.beta(tv)
        ex, ez = mp_mixture_fields(a, bt, x, mix.weights, mix.means, mix.variances)
        cz = self.alpha_dot(tv) - (nu * self.eps_star(tv) / a if nu else 0)
        bd = self.beta_dot(tv)
        return [cz * z + bd * e for z, e in zip(ez, ex)]


def _check_dps(dps: int) -> None:
    if dps < MIN_DPS:
        raise ValueError(f"dps must be >= {MIN_DPS}, got {dps}")


GBS_SEQUENCE = (2, 4, 6, 8, 10, 12, 14, 16)


def _gbs_step(f, tv, y: list, h, seq=GBS_SEQUENCE) -> list:
    """One Gragg-Bulirsch-Stoer macro step: modified midpoint with ``n`` substeps for each ``n`` in
    ``seq``, extrapolated to zero step in ``h^2`` (Aitken-Neville); order ``2 len(seq)``."""
    rows: list[list[list]] = []
    f0 = f(tv, y)
    for i, n in enumerate(seq):
        hs = h / n
        z_prev = y
        z = [yi + hs * fi for yi, fi in zip(y, f0)]
        for m in range(1, n):
            fz = f(tv + m * hs, z)
            z_prev, z = z, [zp + 2 * hs * fi for zp, fi in zip(z_prev, fz)]
        fend = f(tv + h, z)
        row = [[(zi + zpi + hs * fi) / 2 for zi, zpi, fi in zip(z, z_prev, fend)]]
        for k in range(1, i + 1):
            ratio = mpmath.mpf(n) / seq[i - k]
            prev = rows[i - 1][k - 1]
            row.append([a + (a - b) / (ratio**2 - 1) for a, b in zip(row[k - 1], prev)])
        rows.append(row)
    return rows[-1][-1]


def mp_ode_solve(schedule: Schedule | MpSchedule, mix: Mixture, t0, t1, x0: Sequence, dps: int = 30, steps: int = 8) -> list:
    """``x(t1)`` of the probability-flow ODE ``dx/dt = b(t, x)`` from ``x(t0) = x0`` at ``dps``
    digits: ``steps`` Gragg-Bulirsch-Stoer macro steps of order 16 (mpmath's Taylor ``odefun``
    gives the same answer but is two orders of magnitude slower on mixture fields)."""
    _check_dps(dps)
    ms = schedule if isinstance(schedule, MpSchedule) else MpSchedule(schedule)
    with mpmath.workdps(dps + 5):
        t0, t1 = mpmath.mpf(t0), mpmath.mpf(t1)
        h = (t1 - t0) / steps
        y = [mpmath.mpf(v) for v in x0]
        f = lambda tv, yv: ms.drift(mix, 0, tv, yv)  # noqa: E731
        for k in range(steps):
            y = _gbs_step(f, t0 + k * h, y, h)
        return y


def _mp_c(conv: Conversion, ms_a: MpSchedule, sv, tau_v):
    """``c_s = (alpha_B + beta_B)(s) / (alpha_A + beta_A)(tau)``."""
    fb = _sum_b(conv)
    return fb(sv) / (ms_a.alpha(tau_v) + ms_a.beta(tau_v))


_SUMS: dict = {}


def _sum_b(conv: Conversion):
    key = (conv.alpha_B, conv.beta_B)
    if key not in _SUMS:
        _SUMS[key] = sp.lambdify(S_SYM, conv.alpha_B + conv.beta_B, modules="mpmath")
    return _SUMS[key]


def mp_conversion_ode_gap(conv: Conversion, mix: Mixture, s0, s1, x0: Sequence, dps: int = 30, steps: int = 8) -> float:
    """``max_j |x_B(s1) - c(s1) x_A(tau(s1))|`` for the two ODE solutions started consistently
    (``x_A(tau(s0)) = x0``, ``x_B(s0) = c(s0) x0``), each integrated at ``dps`` digits."""
    _check_dps(dps)
    ma, mb = MpSchedule(conv.A), MpSchedule(conv.B)
    with mpmath.workdps(dps):
        s0, s1 = mpmath.mpf(s0), mpmath.mpf(s1)
        t0, t1 = conv.mp_tau(s0, dps), conv.mp_tau(s1, dps)
        c0, c1 = _mp_c(conv, ma, s0, t0), _mp_c(conv, ma, s1, t1)
        xa = mp_ode_solve(ma, mix, t0, t1, x0, dps, steps)
        xb = mp_ode_solve(mb, mix, s0, s1, [c0 * mpmath.mpf(v) for v in x0], dps, steps)
        return float(max(abs(b - c1 * a) for a, b in zip(xa, xb)))


def mp_sde_em(ms: MpSchedule, mix: Mixture, nu, grid: Sequence, x0: Sequence, dw: Sequence[Sequence]) -> list:
    """Euler-Maruyama path of ``dX = (b + nu eps* s) dt + sqrt(2 nu eps*) dW`` on ``grid`` (mpf),
    with increments ``dw[k]`` (one list of D numbers per step); returns the states at the grid."""
    x = [mpmath.mpf(v) for v in x0]
    path = [x]
    for k in range(len(grid) - 1):
        t0, t1 = grid[k], grid[k + 1]
        f = ms.drift(mix, nu, t0, x)
        g = mpmath.sqrt(2 * nu * ms.eps_star(t0))
        x = [xi + (t1 - t0) * fi + g * mpmath.mpf(wi) for xi, fi, wi in zip(x, f, dw[k])]
        path.append(x)
    return path


def mp_conversion_sde_gap(conv: Conversion, mix: Mixture, nu, s_grid: Sequence, x0: Sequence, normals: Sequence[Sequence], dps: int = 30) -> float:
    """Path discrepancy ``max_k |X_B(s_k) - c(s_k) X_A(tau(s_k))|``.

    A is integrated with ``eps = nu eps*_A`` on ``t_k = tau(s_k)`` with ``Delta W_k = normals[k]
    sqrt(t_{k+1} - t_k)``; B with ``nu eps*_B`` on ``s_k`` with the time-changed
    ``Delta W_B,k = Delta W_k sqrt(Delta s_k / Delta t_k)`` (the same noise); ``X_B(s_0) = c(s_0) x0``.
    """
    _check_dps(dps)
    ma, mb = MpSchedule(conv.A), MpSchedule(conv.B)
    with mpmath.workdps(dps):
        sg = [mpmath.mpf(v) for v in s_grid]
        tg = [conv.mp_tau(v, dps) for v in sg]
        dwa = [[mpmath.mpf(z) * mpmath.sqrt(tg[k + 1] - tg[k]) for z in normals[k]] for k in range(len(sg) - 1)]
        dwb = [[w * mpmath.sqrt((sg[k + 1] - sg[k]) / (tg[k + 1] - tg[k])) for w in dwa[k]] for k in range(len(sg) - 1)]
        cs = [_mp_c(conv, ma, sv, tv) for sv, tv in zip(sg, tg)]
        pa = mp_sde_em(ma, mix, nu, tg, x0, dwa)
        pb = mp_sde_em(mb, mix, nu, sg, [cs[0] * mpmath.mpf(v) for v in x0], dwb)
        return float(max(abs(b - c * a) for xa, xb, c in zip(pa, pb, cs) for a, b in zip(xa, xb)))
