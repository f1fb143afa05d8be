"""Solvers: pure step functions with a declared order, one thin loop (STYLE.md principle 4).

Time runs forward from the base (t = 0) to the data (t = 1) over an explicit float64 grid. A step
is ``step(field, t0, t1, x, state) -> (x, state)``; :func:`integrate` is the one loop that drives
every solver. Three kinds of field:

* ``"ode"``: :class:`ODE` ``dx/dt = v(t, x)``. Explicit Runge-Kutta methods are Butcher tables
  served by one stepper (``euler`` order 1, ``midpoint`` and ``heun`` order 2, ``rk4`` order 4);
  ``ab2`` is the variable-step Adams-Bashforth 2 (one evaluation per step, Euler first step).
* ``"sde"``: :class:`SDE` ``dx = f(t, x) dt + g(t) dW`` (additive noise, as for the interpolant
  SDEs: ``f = b + eps s``, ``g = sqrt(2 eps)``); ``state`` is the
  :class:`~lazysi.numeric.sampling.brownian.BrownianPath` that drives the step (read-only, so the
  step is pure). ``em`` (Euler-Maruyama) has strong order 1 for additive noise; ``heun_sde``
  (stochastic Heun) strong order 1 and weak order 2.
* ``"frame-sde"``: a :class:`~lazysi.numeric.sampling.frame_sde.GaussianSDETerm` (the model's SDE with
  ``eps = nu eps*`` in the same frame, driven by per-step normals): ``exp-sde1`` (residual frozen;
  the Gaussian part exact including its noise), ``exp-sde2``/``exp-sde3`` (stochastic Adams: the
  residual through the last 2/3 evaluations; strong order 1 with additive noise, smaller weak error).
* ``"frame"``: a :class:`~lazysi.numeric.sampling.frame.GaussianTerm` (the model's ODE as the exact
  flow of a Gaussian approximation plus a residual). Exponential integrators: ``exp-euler``
  (residual frozen, order 1), ``exp-ab2`` (residual linear through the last two evaluations,
  order 2), ``exp-pc`` (``exp-ab2`` predictor, then the evaluation at the predicted end, which the
  next step reuses, drives a corrector with the residual quadratic through three points: UniPC's
  idea in the Gaussian frame, one evaluation per step). ``state`` carries the latest evaluation
  and the previous residual. Third order and up (:class:`FrameHistory` state, residual polynomials
  in Newton form): ``exp-ab3`` (residual quadratic through the last three evaluations, order 3),
  ``exp-pc4`` (``exp-ab3`` predictor + cubic corrector through ``t_{k-2}, t_{k-1}, t_k`` and the
  predicted ``t_{k+1}``, order 4, one evaluation per step), ``exp-pc4-denoise``. Their warm start
  integrates from the run's start while every evaluation so far fits the polynomial (so the
  lower-order start-up keeps the global order); their last step is the predictor at a per-sample
  order chosen by back-testing the extrapolation on the latest evaluation.

The frame steps work in the term's coordinates (the eigen layout of
:mod:`lazysi.numeric.sampling.frame`): :func:`integrate` converts the start state in with the
term's ``enter`` and every state it returns out with ``leave``; the steps treat states and residuals
as opaque tensors (linear combinations, per-row squared norms, which the orthonormal layout keeps).

A :class:`Solver` may replace the step on the last step of a run (``final``; ``low_final`` below
``low_final_below`` steps): EDM's Heun ends with an Euler step, the predictor-corrector ends
without a corrector (no evaluation at the end time) and may end on the data prediction. These are
options of the solver, recorded in the sampler registry. Euler-Maruyama takes a probability-flow
step wherever the diffusion is infinite at the step's start (eps* at a standard base, C3).

:func:`integrate` raises :class:`NonFiniteError` naming the step index and times when a
non-finite value appears, keeping the states computed so far.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from lazysi.numeric.sampling.brownian import BrownianPath
from lazysi.numeric.sampling.grids import check_grid

__all__ = [
    "ODE",
    "SDE",
    "NonFiniteError",
    "Solver",
    "FrameState",
    "FrameHistory",
    "FRAME_KINDS",
    "SOLVERS",
    "get_solver",
    "integrate",
    "ControlRecord",
    "ControlLimit",
    "control_times",
    "provider_ode",
    "provider_sde",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Step = Callable[..., tuple[torch.Tensor, object]]


@dataclass(frozen=True)
class ODE:
    """``dx/dt = velocity(t, x)``; ``t`` is a 0-d float64 tensor."""

    velocity: Field


@dataclass(frozen=True)
class SDE:
    """``dx = drift(t, x) dt + sigma(t) dW`` (additive noise); ``sigma(t)`` is a 0-d tensor.
    ``velocity``: the probability-flow velocity (eps = 0), for solvers that start with an ODE step."""

    drift: Field
    sigma: Callable[[torch.Tensor], torch.Tensor]
    velocity: Field | None = None


class NonFiniteError(FloatingPointError):
    """A sampler met a non-finite value; ``step``, ``t0``, ``t1`` name where, ``states`` holds the
    states computed before (``states[0]`` is the initial state)."""

    def __init__(self, step: int, t0: float, t1: float, states: list[torch.Tensor]):
        super().__init__(f"non-finite value at step {step} (t = {t0!r} -> {t1!r}); {len(states)} finite states kept")
        self.step, self.t0, self.t1, self.states = step, t0, t1, states


@dataclass(frozen=True)
class Solver:
    """A named step function with its declared order (strong order for SDE solvers).

    ``kind``: the field it steps (``"ode"``, ``"sde"``, ``"frame"``, ``"frame-sde"``). ``final``: the
    step used instead of ``step`` on the last step; ``low_final`` replaces it when the run has fewer
    than ``low_final_below`` steps. ``estimate``: a step of lower order on the same state that
    makes no model evaluation of its own (a predictor-corrector's predictor): ``step - estimate``
    is the local error estimate of :func:`control_times`.
    ``evals(n)``: model evaluations of an ``n``-step run."""

    name: str
    kind: str
    order: float
    step: Step
    evals: Callable[[int], int]
    final: Step | None = None
    low_final: Step | None = None
    low_final_below: int = 0
    estimate: Step | None = None

    def pick(self, k: int, n: int) -> Step:
        """The step function for step ``k`` of an ``n``-step run."""
        if k == n - 1:
            if self.low_final is not None and n < self.low_final_below:
                return self.low_final
            if self.final is not None:
                return self.final
        return self.step


# ----------------------------------------------------------------------------- ODE steps

def _rk_step(a: tuple[tuple[float, ...], ...], b: tuple[float, ...], c: tuple[float, ...]) -> Step:
    """One explicit Runge-Kutta stepper from a Butcher table (torchdiffeq's habit)."""

    def step(field: ODE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state=None):
        h = t1 - t0
        ks: list[torch.Tensor] = []
        for i, ci in enumerate(c):
            xi = x
            for aij, kj in zip(a[i], ks):
                if aij:
                    xi = xi + (h * aij) * kj
            ks.append(field.velocity(t0 + ci * h, xi))
        out = x
        for bi, ki in zip(b, ks):
            if bi:
                out = out + (h * bi) * ki
        return out, state

    return step


_euler = _rk_step(((),), (1.0,), (0.0,))
_midpoint = _rk_step(((), (0.5,)), (0.0, 1.0), (0.0, 0.5))
_heun = _rk_step(((), (1.0,)), (0.5, 0.5), (0.0, 1.0))
_rk4 = _rk_step(((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6), (0.0, 0.5, 0.5, 1.0))


def _ab2(field: ODE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state):
    """Variable-step Adams-Bashforth 2: ``x + h [(1 + r/2) f_n - (r/2) f_{n-1}]``, ``r = h / h_prev``;
    the first step (no history, ``state = None``) is Euler. ``state = (h_prev, f_prev)``."""
    h = t1 - t0
    f = field.velocity(t0, x)
    if state is None:
        return x + h * f, (h, f)
    h_prev, f_prev = state
    r = h / h_prev
    return x + h * ((1 + 0.5 * r) * f - (0.5 * r) * f_prev), (h, f)


# ----------------------------------------------------------------------------- SDE steps

def _em(field: SDE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state: BrownianPath):
    """Euler-Maruyama: ``x + f(t0, x) h + g(t0) dW``; where the diffusion is infinite at ``t0`` (eps*
    at a standard base, C3) the step is the probability-flow Euler step."""
    g0 = field.sigma(t0)
    if field.velocity is not None and not bool(torch.isfinite(torch.as_tensor(g0)).all()):
        return _ode_euler_on_sde(field, t0, t1, x, state)
    dw = state.increment(float(t0), float(t1)).to(x.dtype)
    return x + (t1 - t0) * field.drift(t0, x) + g0 * dw, state


def _heun_sde(field: SDE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state: BrownianPath):
    """Stochastic Heun (additive noise): predictor ``x~ = x + f0 h + g0 dW``, corrector averages the
    drift and the noise coefficient at both ends with the same increment."""
    dw = state.increment(float(t0), float(t1)).to(x.dtype)
    h = t1 - t0
    f0, g0 = field.drift(t0, x), field.sigma(t0)
    pred = x + h * f0 + g0 * dw
    f1, g1 = field.drift(t1, pred), field.sigma(t1)
    return x + 0.5 * h * (f0 + f1) + 0.5 * (g0 + g1) * dw, state


def _ode_euler_on_sde(field: SDE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state: BrownianPath):
    """A probability-flow Euler step of an SDE's ODE (where the diffusion is infinite, C3)."""
    if field.velocity is None:
        raise ValueError("this solver starts with a probability-flow step: the SDE needs its velocity")
    return _euler(ODE(field.velocity), t0, t1, x, None)[0], state


# ----------------------------------------------------------------------------- frame steps

class FrameState(NamedTuple):
    """State of the exponential integrators: the latest evaluation (None: evaluate at the step's
    start) and the previous ``(t, r)``."""

    current: object | None
    prev: tuple[float, torch.Tensor] | None


def _frame_start(term, t0: torch.Tensor, x: torch.Tensor, state: FrameState | None):
    if state is None or state.current is None:
        return term.evaluate(t0, x), (state.prev if state is not None else None)
    return state.current, state.prev


def _back_difference(ev, t0: torch.Tensor, prev) -> torch.Tensor | None:
    return (ev.r - prev[1]) / (float(t0) - prev[0]) if prev is not None else None


def _exp_euler(term, t0, t1, x, state):
    """Exponential Euler: the residual frozen at the step's start."""
    ev, _ = _frame_start(term, t0, x, state)
    return term.propagate(x, t0, t1, [ev.r]), FrameState(None, (float(t0), ev.r))


def _exp_ab2(term, t0, t1, x, state):
    """Exponential Adams-Bashforth 2: the residual linear through the last two evaluations
    (exponential Euler on the first step)."""
    ev, prev = _frame_start(term, t0, x, state)
    return term.propagate(x, t0, t1, [ev.r, _back_difference(ev, t0, prev)], [t0]), FrameState(None, (float(t0), ev.r))


def _exp_pc(term, t0, t1, x, state):
    """``exp-ab2`` predictor; the evaluation at the predicted end drives a corrector with the residual
    through ``t_{k-1}, t_k, t_{k+1}`` (Newton form; linear through ``t_k, t_{k+1}`` on the first
    step). The next step reuses that evaluation: one evaluation per step."""
    ev, prev = _frame_start(term, t0, x, state)
    f0, f1 = float(t0), float(t1)
    d_back = _back_difference(ev, t0, prev)
    pred = term.propagate(x, t0, t1, [ev.r, d_back], [t0])
    ev1 = term.evaluate(t1, pred)
    d_fwd = (ev1.r - ev.r) / (f1 - f0)
    if prev is None:
        x1 = term.propagate(x, t0, t1, [ev.r, d_fwd], [t0])
    else:
        x1 = term.propagate(x, t0, t1, [ev.r, d_fwd, (d_fwd - d_back) / (f1 - prev[0])], [f0, f1])
    return x1, FrameState(ev1, (f0, ev.r))


def _exp_denoise(term, t0, t1, x, state):
    """The model's data prediction ``eta_X`` from the latest evaluation's velocity (no integration to
    ``t1``; what Euler's last step amounts to on the linear schedule), as the state at ``t1``."""
    ev, prev = _frame_start(term, t0, x, state)
    return term.enter(t1, term.data_prediction(t0, x, ev.b)), FrameState(ev, prev)


class FrameHistory(NamedTuple):
    """State of the higher-order exponential integrators: the latest evaluation (None: evaluate at
    the step's start), the earlier ``(t, r)`` pairs still needed (oldest first) and, while every
    evaluation since the run's start is among them, the ``anchor`` ``(t_0, x_0)``."""

    current: object | None
    hist: tuple[tuple[float, torch.Tensor], ...]
    anchor: tuple[torch.Tensor, torch.Tensor] | None = None


def _newton(points: list[tuple[float, torch.Tensor]]) -> tuple[list[torch.Tensor], list[float]]:
    """Newton form of the polynomial through ``points`` (in node order): the divided differences
    ``r[n_0], r[n_0, n_1], ...`` and the nodes ``n_0, ..., n_{m-2}`` its products need."""
    ts = [p[0] for p in points]
    table = [p[1] for p in points]
    coefs = [table[0]]
    for j in range(1, len(points)):
        table = [(table[i + 1] - table[i]) / (ts[i + j] - ts[i]) for i in range(len(table) - 1)]
        coefs.append(table[0])
    return coefs, ts[:-1]


def _history_start(term, t0: torch.Tensor, x: torch.Tensor, state: FrameHistory | None):
    """The evaluation at the step's start (reused from the state when there is one), the history
    and the anchor (the run's start ``(t0, x)`` on the first step)."""
    if state is None:
        return term.evaluate(t0, x), (), (t0, x)
    ev = state.current if state.current is not None else term.evaluate(t0, x)
    return ev, state.hist, state.anchor


def _integrate_poly(term, t0, t1, x, points, anchor, n_all: int) -> torch.Tensor:
    """``x`` at ``t0`` carried to ``t1`` with the residual through ``points`` (newest first). While the
    polynomial passes through all ``n_all`` evaluations since the anchor ``(t_a, x_a)``, the whole
    interval ``[t_a, t1]`` is integrated from ``x_a`` instead (the warm-up's lower-order steps are
    corrected retroactively, so the start-up keeps the method's global order; still one evaluation
    per step)."""
    coefs, nodes = _newton(points)
    if anchor is not None and len(points) == n_all:
        return term.propagate(anchor[1], anchor[0], t1, coefs, nodes)
    return term.propagate(x, t0, t1, coefs, nodes)


def _newton_value(coefs: list[torch.Tensor], nodes: list[float], tv: float) -> torch.Tensor:
    """The Newton polynomial ``sum_j coefs[j] prod_{i<j} (tv - nodes[i])`` at ``tv``."""
    out, prod = coefs[0], 1.0
    for j in range(1, len(coefs)):
        prod = prod * (tv - nodes[j - 1])
        out = out + prod * coefs[j]
    return out


def _backtested_orders(back: list[tuple[float, torch.Tensor]], order: int) -> tuple[int, torch.Tensor | None]:
    """Per sample, the extrapolation order (number of nodes, 1..``order``) that best predicted the
    latest evaluation ``back[0]`` from the earlier ones ``back[1:]`` (newest first): the residual at
    ``t_k`` against the polynomial through ``t_{k-1}, ..., t_{k-p}`` evaluated at ``t_k``, squared
    error summed over coordinates, ties to the lower order. Returns ``(p_max, choice)``: the largest
    order tested and the chosen order minus one per row (None when only order 1 is possible)."""
    p_max = min(order, len(back) - 1)
    if p_max <= 1:
        return 1, None
    t_k, r_k = back[0]
    errs = []
    for p in range(1, p_max + 1):
        coefs, nodes = _newton(back[1:1 + p])
        errs.append((_newton_value(coefs, nodes, t_k) - r_k).reshape(r_k.shape[0], -1).pow(2).sum(1))
    errs = torch.stack(errs)  # (p_max, B)
    best = errs.min(dim=0).values
    choice = (errs <= best).to(torch.int64).argmax(dim=0)  # first (lowest) order attaining the minimum
    return p_max, choice


def _exp_ab(order: int, backtest: bool = False) -> Step:
    """Exponential Adams-Bashforth of order ``order``: the residual is the polynomial through the
    last ``order`` evaluations ``t_k, t_{k-1}, ...`` (Newton form, newest node first), extrapolated
    over ``[t_k, t_{k+1}]`` and integrated exactly against the Gaussian part. Warm start (the
    principle: use every evaluation there is, up to the method's order): on step ``k < order`` the
    polynomial goes through all ``k + 1`` evaluations and is integrated from the run's start
    (:func:`_integrate_poly`). With ``backtest`` (the final-step rule: on a last step no later
    evaluation can correct an extrapolation) the number of nodes is chosen per sample as the order
    whose extrapolation best predicted the latest evaluation from the earlier ones
    (:func:`_backtested_orders`: the model's own residual, no extra evaluation; per row, so
    batch-invariant)."""
    if order < 2:
        raise ValueError(f"order must be >= 2, got {order}")

    def step(term, t0, t1, x, state):
        ev, hist, anchor = _history_start(term, t0, x, state)
        f0 = float(t0)
        back = [(f0, ev.r), *reversed(hist)]
        seen = (*hist, (f0, ev.r))
        nxt = FrameHistory(None, seen, anchor) if anchor is not None and len(seen) + 1 <= order \
            else FrameHistory(None, seen[-(order - 1):])
        n_all = len(hist) + 1
        if not backtest:
            return _integrate_poly(term, t0, t1, x, back[:order], anchor, n_all), nxt
        p_max, choice = _backtested_orders(back, order)
        if choice is None:
            return _integrate_poly(term, t0, t1, x, back[:1], anchor, n_all), nxt
        outs = torch.stack([_integrate_poly(term, t0, t1, x, back[:p], anchor, n_all) for p in range(1, p_max + 1)])
        return outs[choice, torch.arange(x.shape[0], device=x.device)], nxt

    return step


def _exp_pc_order(order: int) -> Step:
    """Predictor-corrector of order ``order`` (one evaluation per step): predictor
    :func:`_exp_ab` of order ``order - 1``, then the evaluation at the predicted end ``t_{k+1}``
    drives a corrector whose residual is the polynomial through ``t_k, t_{k+1}`` and up to
    ``order - 2`` earlier evaluations ``t_{k-1}, t_{k-2}, ...`` (degree ``order - 1``; UniPC's idea
    in the Gaussian frame). The next step reuses that evaluation. Warm start as in :func:`_exp_ab`:
    while all evaluations so far fit the corrector's polynomial, it is integrated from the run's
    start."""
    if order < 3:
        raise ValueError(f"order must be >= 3, got {order}")

    def step(term, t0, t1, x, state):
        ev, hist, anchor = _history_start(term, t0, x, state)
        f0, f1 = float(t0), float(t1)
        back = [(f0, ev.r), *reversed(hist)]
        n_all = len(hist) + 1
        pred = _integrate_poly(term, t0, t1, x, back[:order - 1], anchor, n_all)
        ev1 = term.evaluate(t1, pred)
        x1 = _integrate_poly(term, t0, t1, x, [back[0], (f1, ev1.r), *back[1:order - 1]], anchor, n_all + 1)
        seen = (*hist, (f0, ev.r))
        if anchor is not None and len(seen) + 2 <= order:
            return x1, FrameHistory(ev1, seen, anchor)
        return x1, FrameHistory(ev1, seen[-(order - 1):])

    return step


def _exp_denoise_history(term, t0, t1, x, state: FrameHistory | None):
    """:func:`_exp_denoise` for the :class:`FrameHistory` solvers: the data prediction ``eta_X`` from
    the latest evaluation's velocity."""
    ev, hist, anchor = _history_start(term, t0, x, state)
    return term.enter(t1, term.data_prediction(t0, x, ev.b)), FrameHistory(ev, hist, anchor)


def _exp_sde(order: int) -> Step:
    """The covariance-aware SDE step of :class:`~lazysi.numeric.sampling.frame_sde.GaussianSDETerm`:
    Gaussian part exact (noise included), the residual a polynomial through the last ``order``
    evaluations (stochastic Adams, SA-Solver's idea in the frame). ``state = (k, history)``."""

    def step(term, t0, t1, x, state):
        k, hist = state if state is not None else (0, [])
        hist = (hist + [(float(t0), term.residual(float(t0), x))])[-order:]
        return term.propagate(x, float(t0), float(t1), k, hist), (k + 1, hist)

    return step


def _exp_sde_denoise(term, t0, t1, x, state):
    """The last step of a covariance-aware SDE run as the model's data prediction ``eta_X`` at
    ``(t0, x)`` (no noise injected into the final step; the evaluation the step would make anyway),
    as the state at ``t1``."""
    return term.enter(float(t1), term.data_prediction(float(t0), x)), state


def _steps(n: int) -> int:
    return n


SOLVERS: dict[str, Solver] = {
    s.name: s
    for s in (
        Solver("euler", "ode", 1.0, _euler, _steps),
        Solver("midpoint", "ode", 2.0, _midpoint, lambda n: 2 * n),
        Solver("heun", "ode", 2.0, _heun, lambda n: 2 * n),
        Solver("heun-edm", "ode", 2.0, _heun, lambda n: 2 * n - 1, final=_euler),
        Solver("rk4", "ode", 4.0, _rk4, lambda n: 4 * n),
        Solver("ab2", "ode", 2.0, _ab2, _steps),
        Solver("em", "sde", 1.0, _em, _steps),
        Solver("heun_sde", "sde", 1.0, _heun_sde, lambda n: 2 * n),
        Solver("exp-euler", "frame", 1.0, _exp_euler, _steps),
        Solver("exp-ab2", "frame", 2.0, _exp_ab2, _steps),
        # below 15 steps the last step is first order, as diffusers' DPM-Solver/UniPC lower_order_final
        Solver("exp-pc", "frame", 3.0, _exp_pc, _steps, final=_exp_ab2, low_final=_exp_euler, low_final_below=15,
               estimate=_exp_ab2),
        Solver("exp-pc-denoise", "frame", 3.0, _exp_pc, _steps, final=_exp_denoise, estimate=_exp_ab2),
        # last step (no evaluation at its end, NFE = steps): the predictor, per sample at the order
        # whose extrapolation best predicted the latest evaluation (_backtested_orders)
        Solver("exp-ab3", "frame", 3.0, _exp_ab(3), _steps, final=_exp_ab(3, backtest=True)),
        Solver("exp-pc4", "frame", 4.0, _exp_pc_order(4), _steps, final=_exp_ab(3, backtest=True), estimate=_exp_ab(3)),
        Solver("exp-pc4-denoise", "frame", 4.0, _exp_pc_order(4), _steps, final=_exp_denoise_history, estimate=_exp_ab(3)),
        Solver("exp-sde1", "frame-sde", 1.0, _exp_sde(1), _steps),
        Solver("exp-sde2", "frame-sde", 1.0, _exp_sde(2), _steps),
        Solver("exp-sde3", "frame-sde", 1.0, _exp_sde(3), _steps),
        Solver("exp-sde2-denoise", "frame-sde", 1.0, _exp_sde(2), _steps, final=_exp_sde_denoise),
    )
}


def get_solver(name: str) -> Solver:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}")
    return SOLVERS[name]


#: solver kinds whose field is a frame term, stepped in the term's own coordinates
FRAME_KINDS = ("frame", "frame-sde")


def integrate(solver: str | Solver, field, grid: torch.Tensor, x0: torch.Tensor, state=None, *, keep_path: bool = False):
    """Run ``solver`` over ``grid`` (float64, increasing) from ``x0``; returns the final state, or the
    list of states at every grid time with ``keep_path``. SDE solvers need ``state`` (a
    :class:`BrownianPath` whose grid contains ``grid``); multistep solvers start from ``None``.
    A frame term (:data:`FRAME_KINDS`) is stepped in its own coordinates: ``x0`` goes in through
    ``field.enter(grid[0], x0)``, the states come back out through ``field.leave(t, z)``."""
    solver = get_solver(solver) if isinstance(solver, str) else solver
    grid = check_grid(grid)
    if solver.kind == "ode" and not isinstance(field, ODE):
        raise TypeError(f"{solver.name} is an ODE solver; pass an ODE field")
    if solver.kind == "sde":
        if not isinstance(field, SDE):
            raise TypeError(f"{solver.name} is an SDE solver; pass an SDE field")
        if not isinstance(state, BrownianPath):
            raise TypeError(f"{solver.name} needs a BrownianPath as state")
    frame = solver.kind in FRAME_KINDS
    out = field.leave if frame else (lambda tv, v: v)
    x = field.enter(grid[0], x0) if frame else x0
    states = [x0]  # out of the term's coordinates; without keep_path, only while x is x0
    n = grid.numel() - 1
    for k in range(n):
        t0, t1 = grid[k], grid[k + 1]
        prev = x
        x, state = solver.pick(k, n)(field, t0, t1, x, state)
        if not torch.isfinite(x).all():
            raise NonFiniteError(k, float(t0), float(t1), states if keep_path or k == 0 else [out(t0, prev)])
        if keep_path:
            states.append(out(t1, x))
    return states if keep_path else out(grid[-1], x)


class ControlLimit(RuntimeError):
    """:func:`control_times` used its ``max_steps`` attempts before reaching the end."""


@dataclass(frozen=True)
class ControlRecord:
    """What :func:`control_times` did: the accepted times, the estimate of each accepted step, the
    rejected attempts, the steps it evaluated (each attempt is one step of the solver) and the steps
    accepted above the tolerance at the smallest step allowed (``forced``)."""

    times: list[float]
    estimates: list[float]
    rejected: int
    attempts: int
    forced: int = 0


#: a rejected step shrinks to no less than this fraction of the last accepted step (the first step:
#: of the interval); a step at that floor is accepted whatever its estimate (counted as forced).
#: A predictor-corrector that reuses the evaluation at the PREDICTED end (UniPC's trick, one
#: evaluation per step) carries an O(1) offset into the next step's history, so its estimate grows
#: like 1/h as h -> 0 after a large step (measured: lazy-cov-pc4 on mnist-gmm at tol 0.1), and an
#: unbounded shrink would never end.
_CONTROL_SHRINK = 0.25
_CONTROL_FIRST_FLOOR = 1e-3


def control_times(solver: Solver, field, t0: float, t1: float, x0: torch.Tensor, tol: float, *, h0: float = 0.5,
                  max_steps: int = 1000, time_map: Callable[[float], float] | None = None) -> ControlRecord:
    """Step-size control with a solver's free error estimate: each attempted step from ``t`` to
    ``t + h`` computes ``solver.step`` and its lower-order ``solver.estimate`` on the same state (the
    predictor, no extra evaluation); the estimate is the RMS over all rows and coordinates of their
    difference (the pathwise RMSE's norm). Accepted when it is <= ``tol``; the next ``h`` is
    ``h min(2, max(0.2, 0.9 (tol/err)^(1/p)))`` with ``p = solver.order`` (the estimate is the
    predictor's local error, ``O(h^p)``), after a rejection at most the rejected ``h`` shrunk so. No
    step is longer than half of ``[t0, t1]`` (``h0``, the first attempt, defaults to that): the
    residual of the Gaussian frame vanishes at both ends of the interpolant (``E[X | Z] = mu`` at the
    base, ``E[Z | X] = 0`` at the data), so a step from end to end would see a zero estimate.
    Time runs forward from ``t0`` to ``t1``; the accepted times (with both ends) are a grid on which
    the solver's own run spends one evaluation per step. A rejected step shrinks to no less than
    :data:`_CONTROL_SHRINK` of the last accepted one, where it is accepted (``forced``). Raises when
    the state is non-finite at that floor or ``max_steps`` attempts do not reach ``t1``.

    ``time_map``: the steps are controlled in a time ``u`` on ``[t0, t1]`` with ``t = time_map(u)``
    (increasing, ends fixed; None: ``u = t``), e.g. the lazy VP time of the ``vp`` grid: large steps
    are then uniform in ``u`` and the control refines from there.
    """
    if solver.estimate is None:
        raise ValueError(f"{solver.name} has no error estimate (no predictor on its state)")
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be positive and finite, got {tol}")
    frame = solver.kind in FRAME_KINDS  # stepped in the term's coordinates (orthonormal: same squared norms)
    t, x, state = float(t0), (field.enter(torch.tensor(float(t0), dtype=torch.float64), x0) if frame else x0), None
    size = x0.numel()  # the RMS is over the data coordinates (a low-rank layout has more entries)
    times, estimates, rejected, attempts = [t], [], 0, 0
    h_max = 0.5 * (t1 - t0)
    h = min(h0, h_max)
    h_floor = _CONTROL_FIRST_FLOOR * (t1 - t0)
    p = solver.order
    forced = 0
    while t < t1:
        attempts += 1
        if attempts > max_steps:
            raise ControlLimit(f"step-size control did not reach t = {t1} in {max_steps} attempts (at t = {t}, tol {tol})")
        tn = t1 if t + h >= t1 - 1e-12 else t + h
        tt0, tt1 = (torch.tensor(v if time_map is None or v in (t0, t1) else time_map(v), dtype=torch.float64) for v in (t, tn))
        est, _ = solver.estimate(field, tt0, tt1, x, state)
        x1, new_state = solver.step(field, tt0, tt1, x, state)
        err = float(((x1 - est).pow(2).sum() / size).sqrt())
        at_floor = h <= h_floor * (1 + 1e-9)
        if not math.isfinite(err) and at_floor:
            raise RuntimeError(f"step-size control: non-finite state at t = {t} even at the smallest step {h:g}")
        factor = min(2.0, max(0.2, 0.9 * (tol / max(err, 1e-300)) ** (1.0 / p))) if math.isfinite(err) else 0.2
        if err <= tol or at_floor:
            forced += err > tol
            t, x, state = tn, x1, new_state
            times.append(float(tt1))
            estimates.append(err)
            h_floor = _CONTROL_SHRINK * h
            h = min(h * factor, h_max)
        else:
            rejected += 1
            h = max(h * min(factor, 0.9), h_floor)
    times[-1] = float(t1)
    return ControlRecord(times, estimates, rejected, attempts, forced)


def provider_ode(provider) -> ODE:
    """The probability-flow ODE of a :class:`~lazysi.numeric.fields.providers.FieldProvider`."""
    return ODE(lambda t, x: provider.drift(t, x))


def provider_sde(provider, diffusion) -> SDE:
    """``dX = (b + eps s) dt + sqrt(2 eps) dW`` of a provider and a
    :class:`~lazysi.numeric.fields.providers.Diffusion` (with the probability-flow velocity)."""
    sch = provider.schedule
    return SDE(lambda t, x: provider.drift(t, x, diffusion),
               lambda t: (2.0 * diffusion.eps(sch, torch.as_tensor(t, dtype=torch.float64))).sqrt(),
               lambda t, x: provider.drift(t, x))
