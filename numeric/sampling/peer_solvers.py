"""Peer samplers of issues 15 and 16, each as data (:class:`PeerImpl`) plus one function.

Every peer runs on the SAME model (a lazysi :class:`~lazysi.numeric.fields.providers.FieldProvider` on the
linear training schedule ``alpha = 1 - t``, ``beta = t``; lazysi time t = 0 noise .. t = 1 data) with
one signature::

    run(provider, steps, x0, *, seed, indices, grid=None) -> x at t = 1

``x0`` is the initial noise ``Z`` (t = 0). ``grid`` is an optional explicit float64 grid of lazysi
times with ``steps + 1`` points from 0 to 1; ``None`` is the peer's own recommended grid.
``seed``/``indices`` feed the per-sample noise of stochastic peers (row j's noise depends only on
``(seed, indices[j])``, never on the batch it is in); deterministic peers ignore them.

Conventions converted here and only here:

* **diffusers** (flow mode): ``sigma = 1 - t``, latents ``x = (1 - sigma) X + sigma Z``, model output
  ``v = Z - X``: the model output is ``-b(t, x)`` at ``t = 1 - sigma`` (``b``: lazysi's velocity,
  ``provider.drift``). The issue-16 diffusers peers run in float32 as users run them (UniPC order 3
  raises in float64); the first ones (``fm-euler``, ``dpm++2m``, ``unipc``, stop 9) run in the dtype
  of ``x0`` as they always have; the result is cast back to ``x0``'s dtype.
* **written peers** (no installed package provides them for a flow model): with the data
  coefficient ``a_t = t`` and the noise coefficient ``s_t = 1 - t`` the half-log-SNR is
  ``lambda = log(t / (1 - t))``; the data prediction is ``D = eta_X = E[X | x_t]`` and the noise
  prediction ``eps = eta_Z = E[Z | x_t]`` (``provider.fields``; ``D = x + (1 - t) b``). Time is
  float64.

The registry :data:`PEER_IMPLS` holds every peer; :func:`make_dpm_adaptive` builds the adaptive peer
with other tolerances.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lazysi.numeric.sampling import grids
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.sampling.seeding import per_sample_normal, sample_seed

__all__ = [
    "PeerImpl",
    "PEER_IMPLS",
    "DECLARED_ORDERS",
    "check_linear_schedule",
    "ab_weights",
    "ipndm_solve",
    "dpmpp_2m_sde_solve",
    "dpm_adaptive_solve",
    "dpm_solver_pair",
    "AdaptiveInfo",
    "make_dpm_adaptive",
    "adaptive_nfe",
    "diffusers_generators",
    "diffusers_scheduler",
]


@dataclass(frozen=True)
class PeerImpl:
    """One peer sampler.

    ``kind``: ``"ode"`` or ``"sde"``. ``package``: the package whose code runs (``None``: written
    here). ``settings``: the exact settings, stated. ``nfe(steps)``: model evaluations per sample.
    ``run(provider, steps, x0, *, seed, indices, grid=None) -> x`` at t = 1.
    """

    name: str
    kind: str
    package: str | None
    settings: str
    nfe: Callable[[int], int]
    run: Callable[..., torch.Tensor]


#: Convergence orders of the written fixed-step peers as h -> 0, measured in tests/test_peer_solvers.py
#: on the exact Gaussian oracle: iPNDM's global ODE order (2: its Euler warm-up step; the AB4 body has
#: local order 5) and DPM-Solver++(2M) SDE's weak order (error of the output variance).
DECLARED_ORDERS: dict[str, float] = {"fm-euler": 1.0, "dpm++2m": 2.0, "unipc": 2.0, "ipndm": 2.0, "dpm++2m-sde-w": 2.0}


# ------------------------------------------------------------------------------------------ checks
def check_linear_schedule(provider: FieldProvider) -> None:
    """Raise unless ``provider`` is on the linear schedule ``alpha = 1 - t``, ``beta = t``."""
    sch = provider.schedule
    tv = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    if not (torch.allclose(sch.alpha(tv), 1 - tv, atol=1e-14) and torch.allclose(sch.beta(tv), tv, atol=1e-14)):
        raise ValueError("the peers are flow-matching samplers: the model must be on the linear schedule "
                         f"(alpha = 1 - t, beta = t), got {sch.schedule.name!r}")


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def _resolve_grid(grid: torch.Tensor | None, steps: int) -> torch.Tensor:
    """The written peers' grid: ``grid`` checked (steps + 1 points, 0 and 1 included) or uniform in t."""
    _check_steps(steps)
    if grid is None:
        return grids.uniform(steps)
    grids.check_grid(grid)
    if grid.numel() != steps + 1:
        raise ValueError(f"grid has {grid.numel()} points, {steps} steps need {steps + 1}")
    if float(grid[0]) != 0.0 or float(grid[-1]) != 1.0:
        raise ValueError(f"a peer grid must run from t = 0 to t = 1, got [{float(grid[0])}, {float(grid[-1])}]")
    return grid


def _check_rows(x0: torch.Tensor, indices: Sequence[int]) -> list[int]:
    idx = [int(i) for i in indices]
    if len(idx) != x0.shape[0]:
        raise ValueError(f"indices has {len(idx)} entries, x0 has {x0.shape[0]} rows")
    return idx


def _lam(t: float) -> float:
    """Half-log-SNR of the linear schedule, ``log(t / (1 - t))`` (+-inf at the ends)."""
    if t <= 0.0:
        return -math.inf
    if t >= 1.0:
        return math.inf
    return math.log(t) - math.log1p(-t)


# ------------------------------------------------------------------------------------------ iPNDM
def ab_weights(times: Sequence[float], t_next: float) -> list[float]:
    """Variable-step Adams-Bashforth weights: ``x_{n+1} = x_n + h sum_j w_j f(t_j)`` with
    ``h = t_next - times[-1]`` integrates exactly every polynomial ``f`` of degree ``< len(times)``.

    ``times`` are the history nodes, oldest first, ending at the current time ``t_n``. With scaled
    nodes ``u_j = (t_j - t_n) / h`` the weights solve the moment equations
    ``sum_j w_j u_j^k = 1 / (k + 1)``, k = 0..K-1 (float64). On a uniform grid they are the classical
    AB coefficients, e.g. ``(-9, 37, -59, 55) / 24`` for four nodes.
    """
    k = len(times)
    if k < 1:
        raise ValueError("need at least one history node")
    tn = float(times[-1])
    h = float(t_next) - tn
    if not h > 0:
        raise ValueError(f"t_next must exceed the last node, got {t_next} <= {tn}")
    u = torch.tensor([(float(tj) - tn) / h for tj in times], dtype=torch.float64)
    vander = torch.stack([u**p for p in range(k)])  # (k, k): row p = u_j^p
    moments = torch.tensor([1.0 / (p + 1) for p in range(k)], dtype=torch.float64)
    return torch.linalg.solve(vander, moments).tolist()


def ipndm_solve(provider: FieldProvider, grid: torch.Tensor, x0: torch.Tensor, *, max_order: int = 4) -> torch.Tensor:
    """iPNDM (Zhang & Chen 2023, DEIS paper, "improved PNDM"): a linear multistep method on the
    velocity ``dx/dt = b(t, x)`` with one evaluation per step. Step i uses Adams-Bashforth of order
    ``min(max_order, i + 1)`` over the stored velocities (warm start by lower-order AB: Euler, AB2,
    AB3, then AB4), as in the reference implementation (zju-pi/diff-sampler ``ipndm``; k-diffusion's
    ``sample_ipndm``). The reference uses the fixed uniform-step AB coefficients; here the weights are
    the variable-step ones of :func:`ab_weights`, identical on a uniform grid (the default) and
    consistent on any other.

    Order: each AB-k step has local error ``O(h^{k+1})``; the Euler warm-up step's ``O(h^2)`` makes
    the global error ``O(h^2)`` as h -> 0 (the reference's known trade: no extra evaluations for the
    warm start). ``grid`` runs forward in t (0 noise .. 1 data).
    """
    if max_order not in (1, 2, 3, 4):
        raise ValueError(f"max_order must be 1..4, got {max_order}")
    grids.check_grid(grid)
    x = x0
    hist_t: list[float] = []
    hist_f: list[torch.Tensor] = []
    for i in range(grid.numel() - 1):
        t, t_next = float(grid[i]), float(grid[i + 1])
        f = provider.drift(grid[i], x)
        hist_t.append(t)
        hist_f.append(f)
        if len(hist_t) > max_order:
            hist_t.pop(0)
            hist_f.pop(0)
        w = ab_weights(hist_t, t_next)
        x = x + (t_next - t) * sum(wj * fj for wj, fj in zip(w, hist_f))
    return x


# ------------------------------------------------------------------------------ DPM-Solver++(2M) SDE
def dpmpp_2m_sde_solve(provider: FieldProvider, grid: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, *,
                       eta: float = 1.0) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022), k-diffusion's ``sample_dpmpp_2m_sde`` (midpoint
    variant, ``eta = 1``, ``s_noise = 1``) transcribed to the flow schedule: data coefficient
    ``a_t = t``, noise coefficient ``s_t = 1 - t``, ``lambda = log(a/s)``, data prediction
    ``D = eta_X``. From ``t_i`` to ``t_{i+1} < 1``, with ``h = lambda_{i+1} - lambda_i``::

        x <- (s_{i+1}/s_i) e^{-eta h} x + a_{i+1} (1 - e^{-(1+eta) h}) D_i
             + 1/2 a_{i+1} (1 - e^{-(1+eta) h}) (h/h_{i-1}) (D_i - D_{i-1})      (from the 2nd step)
             + s_{i+1} sqrt(1 - e^{-2 eta h}) noise[i]

    and the last step into ``t = 1`` is the denoising step ``x <- D``. With ``eta = 1`` the first
    order part is the exact solution of ``dy = (-y + 2 e^lambda D) dlambda + sqrt(2) dW`` for
    ``y = x / s`` with D frozen: the probability-flow ODE plus Langevin dynamics, which keeps every
    marginal of the interpolant. From ``t_0 = 0`` (``h = inf``) ``x0`` is forgotten (weight 0).

    ``noise``: ``(steps, *x0.shape)`` standard normals (``noise[i]`` for step i; the last is unused).
    """
    grids.check_grid(grid)
    steps = grid.numel() - 1
    if tuple(noise.shape) != (steps, *x0.shape):
        raise ValueError(f"noise must have shape {(steps, *x0.shape)}, got {tuple(noise.shape)}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    x = x0
    d_old: torch.Tensor | None = None
    h_last = math.nan
    for i in range(steps):
        t, t_next = float(grid[i]), float(grid[i + 1])
        d = provider.fields(grid[i], x)[0]
        if t_next == 1.0:
            x = d
            continue
        h = _lam(t_next) - _lam(t)
        s_ratio = (1.0 - t_next) / (1.0 - t)
        eta_h = eta * h if eta else 0.0  # 0 * inf = 0 for the ODE's first step from t = 0
        phi = -math.expm1(-h - eta_h)  # 1 - e^{-(1+eta) h}
        x = (s_ratio * math.exp(-eta_h)) * x + (t_next * phi) * d
        if d_old is not None:
            inv_r = h / h_last  # 1/r, r = h_{i-1}/h; 0 after the infinite first step from t = 0
            x = x + (0.5 * t_next * phi * inv_r) * (d - d_old)
        if eta:
            x = x + ((1.0 - t_next) * math.sqrt(-math.expm1(-2.0 * eta_h))) * noise[i].to(x.dtype)
        d_old, h_last = d, h
    return x


# ------------------------------------------------------------------------------ DPM-Solver adaptive
def dpm_solver_pair(eps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, u: torch.Tensor,
                    u_next: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of k-diffusion's embedded DPM-Solver pair (noise prediction, VE coordinates
    ``x~ = X + sigma~ Z``, time ``u = -log sigma~``, per-row ``u, u_next`` of shape (B,)), returning
    ``(x_low, x_high)`` at ``u_next``. With ``h = u_next - u``, ``s_r = u + r h``::

        DPM-Solver-1:  x - sigma~(u_next) expm1(h) eps(x, u)
        DPM-Solver-2:  ... - sigma~(u_next)/(2 r1) expm1(h) (eps(x_r1, s_r1) - eps(x, u)),
                       x_r1 = x - sigma~(s_r1) expm1(r1 h) eps(x, u)
        DPM-Solver-3:  x - sigma~(u_next) expm1(h) eps - sigma~(u_next)/r2 (expm1(h)/h - 1) (eps_r2 - eps),
                       x_r2 = x - sigma~(s_r2) expm1(r2 h) eps - sigma~(s_r2) (r2/r1) (expm1(r2 h)/(r2 h) - 1) (eps_r1 - eps)

    ``order = 2``: (DPM-Solver-1, DPM-Solver-2 with r1 = 1/2), 2 evaluations; ``order = 3``:
    (DPM-Solver-2 with r1 = 1/3, DPM-Solver-3 with r1 = 1/3, r2 = 2/3), sharing ``eps(x_r1)``, 3
    evaluations. Local errors: ``O(h^{k+1})`` for DPM-Solver-k. ``eps(x, u)`` is the noise prediction.
    """
    dt = x.dtype
    shp = (-1,) + (1,) * (x.ndim - 1)

    def col(v: torch.Tensor) -> torch.Tensor:
        return v.to(dt).reshape(shp)

    h = u_next - u
    sig_next = col(torch.exp(-u_next))
    em = col(torch.expm1(h))
    e0 = eps(x, u)
    if order == 2:
        r1 = 0.5
        s1 = u + r1 * h
        e1 = eps(x - col(torch.exp(-s1)) * col(torch.expm1(r1 * h)) * e0, s1)
        x_low = x - sig_next * em * e0
        return x_low, x_low - sig_next / (2 * r1) * em * (e1 - e0)
    if order != 3:
        raise ValueError(f"order must be 2 or 3, got {order}")
    r1, r2 = 1.0 / 3.0, 2.0 / 3.0
    s1, s2 = u + r1 * h, u + r2 * h
    e1 = eps(x - col(torch.exp(-s1)) * col(torch.expm1(r1 * h)) * e0, s1)
    x_low = x - sig_next * em * e0 - sig_next / (2 * r1) * em * (e1 - e0)
    sig2 = col(torch.exp(-s2))
    x_r2 = x - sig2 * col(torch.expm1(r2 * h)) * e0 - sig2 * (r2 / r1) * col(torch.expm1(r2 * h) / (r2 * h) - 1) * (e1 - e0)
    e2 = eps(x_r2, s2)
    return x_low, x - sig_next * em * e0 - sig_next / r2 * col(torch.expm1(h) / h - 1) * (e2 - e0)


@dataclass(frozen=True)
class AdaptiveInfo:
    """Per-sample bookkeeping of :func:`dpm_adaptive_solve` (tensors of shape (batch,)): model
    evaluations ``nfe`` (``order`` per attempted step, as k-diffusion counts), ``n_accept``,
    ``n_reject``; ``calls``: batched provider calls (= max of ``nfe``)."""

    nfe: torch.Tensor
    n_accept: torch.Tensor
    n_reject: torch.Tensor
    calls: int


def dpm_adaptive_solve(provider: FieldProvider, x0: torch.Tensor, *, order: int = 3, rtol: float = 0.05,
                       atol: float = 0.0078, h_init: float = 0.05, pcoeff: float = 0.0, icoeff: float = 1.0,
                       dcoeff: float = 0.0, accept_safety: float = 0.81, sigma_min: float = 1e-3,
                       sigma_max: float = 1e3, max_attempts: int = 10_000) -> tuple[torch.Tensor, AdaptiveInfo]:
    """k-diffusion's ``sample_dpm_adaptive`` (DPM-Solver-12 / -23 embedded pairs with its PID step
    size controller; Lu et al. 2022, Sec. 4) with ``eta = 0`` (the ODE), written out for a flow model.

    k-diffusion works in variance-exploding coordinates ``x~ = X + sigma~ Z`` with its time
    ``u = -log sigma~``. For the linear schedule ``x_t = t X + (1 - t) Z``: ``x~ = x_t / t``,
    ``sigma~ = (1 - t)/t``, so ``u = lambda = log(t/(1 - t))`` and the noise prediction is
    ``eps = eta_Z``. The run starts, as k-diffusion does, at ``x~ = sigma_max x0`` at
    ``sigma~ = sigma_max`` and stops at ``sigma~ = sigma_min``, returning ``x~`` there (a data-space
    sample with noise level ``sigma_min``). Defaults are k-diffusion's (order 3: the pair
    DPM-Solver-2 (r1 = 1/3) / DPM-Solver-3, 3 evaluations per attempted step; order 2: DPM-Solver-1 /
    -2, 2 evaluations); ``sigma_min = 1e-3``, ``sigma_max = 1e3`` match diffusers' flow range
    (``t`` from 1/1001 to 1000/1001).

    Step control, per step: ``delta = max(atol, rtol max(|x_low|, |x_prev|))``,
    ``err = ||(x_low - x_high)/delta||_2 / sqrt(numel)``, PID factor
    ``f = 1 + atan(e0^b1 e1^b2 e2^b3 - 1)`` on ``e = 1/(err + 1e-8)`` with
    ``b1 = (p + i + d)/order``, ``b2 = -(p + 2d)/order``, ``b3 = d/order``; accept when
    ``f >= accept_safety``; ``h <- h f`` either way. k-diffusion takes the norm over the whole batch
    (one step size for all samples); here it is taken PER SAMPLE (k-diffusion run on each sample
    alone), so a sample's path never depends on its batch; samples advance in lock-step with their
    own times, the model is called on the rows still running.
    """
    if order not in (2, 3):
        raise ValueError(f"order must be 2 or 3, got {order}")
    if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got {sigma_min}, {sigma_max}")
    if not (rtol >= 0 and atol >= 0 and rtol + atol > 0):
        raise ValueError(f"need rtol, atol >= 0, not both 0; got {rtol}, {atol}")
    if not h_init > 0:
        raise ValueError(f"h_init must be positive, got {h_init}")
    check_linear_schedule(provider)
    n = x0.shape[0]
    dt = x0.dtype
    u_start, u_end = -math.log(sigma_max), -math.log(sigma_min)
    b1 = (pcoeff + icoeff + dcoeff) / order
    b2 = -(pcoeff + 2 * dcoeff) / order
    b3 = dcoeff / order
    numel = x0[0].numel()

    def eps(xt: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # eta_Z at t = sigmoid(u), x = t x~
        t = torch.sigmoid(u)
        return provider.fields(t, t.to(dt).reshape((-1,) + (1,) * (x0.ndim - 1)) * xt)[1]

    x = sigma_max * x0
    x_prev = x.clone()
    s = torch.full((n,), u_start, dtype=torch.float64)
    h = torch.full((n,), h_init, dtype=torch.float64)
    errs = torch.zeros((n, 3), dtype=torch.float64)
    started = torch.zeros(n, dtype=torch.bool)
    nfe = torch.zeros(n, dtype=torch.long)
    n_acc = torch.zeros(n, dtype=torch.long)
    n_rej = torch.zeros(n, dtype=torch.long)
    calls = 0
    for _ in range(max_attempts):
        act = (s < u_end - 1e-5).nonzero(as_tuple=True)[0]
        if act.numel() == 0:
            break
        xa, sa = x[act], s[act]
        ua = torch.minimum(torch.full_like(sa, u_end), sa + h[act])
        x_low, x_high = dpm_solver_pair(eps, xa, sa, ua, order)
        calls += order
        delta = torch.maximum(torch.tensor(atol, dtype=dt), rtol * torch.maximum(x_low.abs(), x_prev[act].abs()))
        scaled = ((x_low - x_high) / delta).reshape(act.numel(), -1).to(torch.float64)
        # one reduction per row: a batched norm's summation order depends on the number of rows
        err = torch.stack([row.norm() for row in scaled]) / math.sqrt(numel)
        inv = 1.0 / (err + 1e-8)
        first = ~started[act]
        ea = errs[act]
        ea[first] = inv[first, None].expand(-1, 3)
        ea[:, 0] = inv
        factor = ea[:, 0] ** b1 * ea[:, 1] ** b2 * ea[:, 2] ** b3
        factor = 1 + torch.atan(factor - 1)
        acc = factor >= accept_safety
        ea[acc, 2] = ea[acc, 1]
        ea[acc, 1] = ea[acc, 0]
        errs[act] = ea
        started[act] = True
        h[act] = h[act] * factor
        ia = act[acc]
        x_prev[ia] = x_low[acc]
        x[ia] = x_high[acc]
        s[ia] = ua[acc]
        nfe[act] += order
        n_acc[ia] += 1
        n_rej[act[~acc]] += 1
    else:
        raise RuntimeError(f"dpm_adaptive did not reach sigma_min within {max_attempts} attempts")
    return x, AdaptiveInfo(nfe=nfe, n_accept=n_acc, n_reject=n_rej, calls=calls)


def adaptive_nfe(steps: int) -> int:
    """The NFE of an adaptive peer is not a function of ``steps``: it chooses its own steps from
    ``rtol, atol``. Count the evaluations (``lazysi.numeric.lazy.CountingProvider``, or
    :class:`AdaptiveInfo` from :func:`dpm_adaptive_solve`). Always raises."""
    raise ValueError("dpm-adaptive is error-controlled: its NFE is not a function of steps; count it with "
                     "CountingProvider or read AdaptiveInfo.nfe from dpm_adaptive_solve")


def make_dpm_adaptive(rtol: float = 0.05, atol: float = 0.0078, order: int = 3) -> PeerImpl:
    """The ``dpm-adaptive`` peer with tolerances ``rtol, atol`` (k-diffusion's defaults)."""

    def run(provider: FieldProvider, steps: int, x0: torch.Tensor, *, seed: int, indices: Sequence[int],
            grid: torch.Tensor | None = None) -> torch.Tensor:
        """``steps`` is not used (the step sizes are error-controlled; any positive int); ``grid``
        must be None."""
        _check_steps(steps)
        _check_rows(x0, indices)
        if grid is not None:
            raise ValueError("dpm-adaptive chooses its own steps: grid must be None")
        return dpm_adaptive_solve(provider, x0, order=order, rtol=rtol, atol=atol)[0]

    pair = "DPM-Solver-2 (r1=1/3) / DPM-Solver-3 (r1=1/3, r2=2/3), 3 NFE per attempted step" if order == 3 else \
        "DPM-Solver-1 / DPM-Solver-2 (r1=1/2), 2 NFE per attempted step"
    settings = (f"k-diffusion sample_dpm_adaptive rule written out for the flow (VE coordinates x/t, "
                f"u = log(t/(1-t))): order={order} ({pair}), rtol={rtol}, atol={atol}, h_init=0.05, "
                "pcoeff=0, icoeff=1, dcoeff=0, accept_safety=0.81, eta=0, sigma_max=1e3 -> sigma_min=1e-3 "
                "(t = 1/1001 -> 1000/1001), error norm per sample (k-diffusion: per batch); "
                "NFE adaptive (counted, not a function of steps)")
    return PeerImpl("dpm-adaptive", "ode", None, settings, adaptive_nfe, run)


# ------------------------------------------------------------------------------ written peers' runners
def _run_ipndm(provider: FieldProvider, steps: int, x0: torch.Tensor, *, seed: int, indices: Sequence[int],
               grid: torch.Tensor | None = None) -> torch.Tensor:
    check_linear_schedule(provider)
    _check_rows(x0, indices)
    return ipndm_solve(provider, _resolve_grid(grid, steps), x0)


def _run_dpmpp_2m_sde(provider: FieldProvider, steps: int, x0: torch.Tensor, *, seed: int,
                      indices: Sequence[int], grid: torch.Tensor | None = None) -> torch.Tensor:
    check_linear_schedule(provider)
    idx = _check_rows(x0, indices)
    g = _resolve_grid(grid, steps)
    noise = per_sample_normal(seed, idx, (steps, *x0.shape[1:]), stream="brownian", dtype=x0.dtype, device=x0.device)
    return dpmpp_2m_sde_solve(provider, g, x0, noise.transpose(0, 1))


# ------------------------------------------------------------------------------ diffusers peers
_FLOW = "num_train_timesteps=1000, prediction_type='flow_prediction', use_flow_sigmas=True, flow_shift=1.0"
_SIGMA_ONE = 1.0 - 1e-6  # UniPC's own nudge of sigma = 1 (alpha = 0 would make its log(alpha) infinite)


def diffusers_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded from ``(seed, i, "peer-noise")``: diffusers' randn_tensor
    draws row by row from a list of generators, so a sample's noise never depends on its batch."""
    return [torch.Generator().manual_seed(sample_seed(seed, int(i), "peer-noise")) for i in indices]


@dataclass(frozen=True)
class _Recipe:
    make: Callable[[], object]
    sigmas_api: bool  # set_timesteps(sigmas=...) exists in flow mode (UniPC, FlowMatchEuler)
    final_data_prediction: bool  # take the last step (to sigma = 0) ourselves as x - sigma v
    stochastic: bool
    float32: bool = True  # run in float32 as users do (False: in the dtype of x0)


def _run_diffusers(recipe: _Recipe, provider: FieldProvider, steps: int, x0: torch.Tensor, seed: int,
                   indices: Sequence[int], grid: torch.Tensor | None) -> torch.Tensor:
    check_linear_schedule(provider)
    idx = _check_rows(x0, indices)
    _check_steps(steps)
    sched = recipe.make()
    if grid is None:
        sched.set_timesteps(num_inference_steps=steps)
    else:
        g = _resolve_grid(grid, steps)
        sig = (1.0 - g[:-1]).clamp(max=_SIGMA_ONE).to(torch.float32)
        if recipe.sigmas_api:
            sched.set_timesteps(sigmas=sig.numpy())  # UniPC needs an array (it multiplies by the shift)
        else:  # no custom sigmas in flow mode: set the scheduler's arrays after set_timesteps
            sched.set_timesteps(num_inference_steps=steps)
            sched.sigmas = torch.cat([sig, sig.new_zeros(1)])
            sched.timesteps = (sig * sched.config.num_train_timesteps).to(sched.timesteps.dtype)
        if not torch.allclose(sched.sigmas[:-1], sig, atol=1e-6):  # e.g. a shift applied by the scheduler
            raise RuntimeError(f"{type(sched).__name__} did not take the grid's sigmas")
    sched.set_begin_index(0)
    gens = diffusers_generators(seed, idx) if recipe.stochastic else None
    x = x0.to(torch.float32) if recipe.float32 else x0
    sigmas = sched.sigmas.to(torch.float64)
    n = len(sched.timesteps)
    for i, ts in enumerate(sched.timesteps):
        t = (1.0 - sigmas[i]).to(x0.device)  # diffusers sigma -> lazysi time
        v = -provider.drift(t, x).to(x.dtype)  # lazysi velocity b = X - Z -> diffusers v = Z - X
        if recipe.final_data_prediction and i == n - 1:
            x = x - sched.sigmas[i].to(x.device) * v  # the step to sigma = 0: data prediction x - sigma v
            break
        if gens is not None:
            x = sched.step(v, ts, x, generator=gens, return_dict=False)[0]
        else:
            x = sched.step(v, ts, x, return_dict=False)[0]
    return x.to(x0.dtype)


def _fm_euler():
    import diffusers

    return diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def _unipc(solver_type: str, order: int = 3):
    import diffusers

    return diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                             use_flow_sigmas=True, flow_shift=1.0, solver_order=order,
                                             solver_type=solver_type)


def _dpm(order: int, algorithm: str):
    import diffusers

    return diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                                 use_flow_sigmas=True, flow_shift=1.0, solver_order=order,
                                                 algorithm_type=algorithm)


def _deis():
    import diffusers

    return diffusers.DEISMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                            use_flow_sigmas=True, flow_shift=1.0, solver_order=3)


def _sa():
    import diffusers

    return diffusers.SASolverScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                       use_flow_sigmas=True, flow_shift=1.0, predictor_order=3,
                                       corrector_order=3)


def _fm_euler_sde():
    import diffusers

    return diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, stochastic_sampling=True)


_RECIPES: dict[str, _Recipe] = {}


def diffusers_scheduler(name: str):
    """The configured diffusers scheduler behind the diffusers peer ``name`` (a fresh object)."""
    if name not in _RECIPES:
        raise ValueError(f"{name!r} is not a diffusers peer; known: {', '.join(_RECIPES)}")
    return _RECIPES[name].make()


def _diffusers_peer(name: str, kind: str, recipe: _Recipe, settings: str) -> PeerImpl:
    _RECIPES[name] = recipe

    def run(provider: FieldProvider, steps: int, x0: torch.Tensor, *, seed: int, indices: Sequence[int],
            grid: torch.Tensor | None = None) -> torch.Tensor:
        return _run_diffusers(recipe, provider, steps, x0, seed, indices, grid)

    run.__doc__ = f"Peer {name!r}: {settings}"
    return PeerImpl(name, kind, "diffusers", settings, _one_per_step, run)


def _one_per_step(steps: int) -> int:
    """One model evaluation per step."""
    _check_steps(steps)
    return steps


_GRID_NOTE = ("A custom grid sets sigma_i = 1 - t_i (t = 0 becomes sigma = 1 - 1e-6, UniPC's own rule, "
              "since the exponential steps divide by alpha = 1 - sigma)")
_FINAL_NOTE = ("diffusers 0.42.1 cannot step into sigma = 0 here ({why}); the last step (the scheduler's "
               "last evaluation) is taken as the sigma -> 0 limit of its first-order step, the data "
               "prediction x - sigma v, which is what DPM-Solver++ and UniPC-bh2 compute there")

PEER_IMPLS: dict[str, PeerImpl] = {
    p.name: p
    for p in (
        _diffusers_peer("fm-euler", "ode", _Recipe(_fm_euler, True, False, False, float32=False),
                        "diffusers FlowMatchEulerDiscreteScheduler (shift 1); in the dtype of the noise. " + _GRID_NOTE
                        + " (set_timesteps(sigmas=...))."),
        _diffusers_peer("dpm++2m", "ode", _Recipe(lambda: _dpm(2, "dpmsolver++"), False, False, False, float32=False),
                        "diffusers DPMSolverMultistepScheduler, flow_prediction, flow sigmas, dpmsolver++ order 2 (2M); "
                        "in the dtype of the noise. " + _GRID_NOTE + " (arrays set after set_timesteps)."),
        _diffusers_peer("unipc", "ode", _Recipe(lambda: _unipc("bh2", 2), True, False, False, float32=False),
                        "diffusers UniPCMultistepScheduler, flow_prediction, flow sigmas (bh2, order 2); in the dtype "
                        "of the noise. " + _GRID_NOTE + " (set_timesteps(sigmas=...))."),
        _diffusers_peer("unipc3-bh1", "ode", _Recipe(lambda: _unipc("bh1"), True, True, False),
                        f"diffusers UniPCMultistepScheduler({_FLOW}, solver_order=3, solver_type='bh1'); defaults: "
                        "predict_x0=True, lower_order_final=True (order 1 at the last step, 2 before), corrector "
                        "on, final_sigmas_type='zero'; grid sigma = linspace(1, 1/1000, n+1)[:-1] (first nudged to "
                        "1 - 1e-6) then 0. " + _FINAL_NOTE.format(why="bh1's B(h) = h is infinite at sigma = 0 and "
                        "its order-1 final step computes inf * 0 = NaN") + ". " + _GRID_NOTE + " (set_timesteps(sigmas=...))."),
        _diffusers_peer("unipc3-bh2", "ode", _Recipe(lambda: _unipc("bh2"), True, False, False),
                        f"diffusers UniPCMultistepScheduler({_FLOW}, solver_order=3, solver_type='bh2'); defaults: "
                        "predict_x0=True, lower_order_final=True, corrector on, final_sigmas_type='zero'; grid "
                        "sigma = linspace(1, 1/1000, n+1)[:-1] (first nudged to 1 - 1e-6) then 0. " + _GRID_NOTE
                        + " (set_timesteps(sigmas=...))."),
        _diffusers_peer("dpm++3m", "ode", _Recipe(lambda: _dpm(3, "dpmsolver++"), False, False, False),
                        f"diffusers DPMSolverMultistepScheduler({_FLOW}, solver_order=3, algorithm_type='dpmsolver++'); "
                        "defaults: solver_type='midpoint' (2nd-order warm-up), lower_order_final=True (orders 2, 1 "
                        "at the last two steps below 15 steps), final_sigmas_type='zero' (always order 1 into "
                        "sigma = 0); grid sigma = 1 - linspace(1, 1/1000, n+1), i.e. 0.999 .. 0.999/n, then 0 "
                        "(starts at t = 0.001 from x0). " + _GRID_NOTE + " (no sigmas= in flow mode: the "
                        "scheduler's sigmas/timesteps arrays are set after set_timesteps)."),
        _diffusers_peer("deis3", "ode", _Recipe(_deis, False, True, False),
                        f"diffusers DEISMultistepScheduler({_FLOW}, solver_order=3); defaults: algorithm_type='deis', "
                        "solver_type='logrho', lower_order_final=True; grid sigma = 0.999 .. 0.999/n (starts at "
                        "t = 0.001 from x0). " + _FINAL_NOTE.format(why="in flow mode its last sigma is the "
                        "previous one repeated, not 0, leaving noise of std 0.999/n; its eps-form step divides by "
                        "sigma = 0") + ". " + _GRID_NOTE + " (no sigmas= API: arrays set after set_timesteps)."),
        _diffusers_peer("sde-dpm++2m", "sde", _Recipe(lambda: _dpm(2, "sde-dpmsolver++"), False, False, True),
                        f"diffusers DPMSolverMultistepScheduler({_FLOW}, solver_order=2, algorithm_type="
                        "'sde-dpmsolver++'); defaults: solver_type='midpoint', lower_order_final=True, "
                        "final_sigmas_type='zero'; grid sigma = 0.999 .. 0.999/n, 0; noise from one CPU generator "
                        "per sample seeded by sample_seed(seed, i, 'peer-noise'). " + _GRID_NOTE
                        + " (arrays set after set_timesteps)."),
        _diffusers_peer("sa-solver", "sde", _Recipe(_sa, False, True, True),
                        f"diffusers SASolverScheduler({_FLOW}, predictor_order=3, corrector_order=3) (the "
                        "docstring's recommendation for unconditional sampling); defaults: algorithm_type="
                        "'data_prediction', tau_func = 1 for timesteps 200..800 (sigma in [0.2, 0.8]) else 0, "
                        "lower_order_final=True; grid sigma = 0.999 .. 0.999/n; per-sample generators as above. "
                        + _FINAL_NOTE.format(why="in flow mode its last sigma is the previous one repeated, not 0") + ". "
                        + _GRID_NOTE + " (no sigmas= API: arrays set after set_timesteps)."),
        _diffusers_peer("fm-euler-sde", "sde", _Recipe(_fm_euler_sde, True, False, True),
                        "diffusers FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, "
                        "stochastic_sampling=True): each step predicts x0 = x - sigma v and re-noises it with fresh "
                        "noise, x <- (1 - sigma') x0 + sigma' noise; grid sigma = linspace(1, 1/1000, n), then 0; "
                        "per-sample generators as above. " + _GRID_NOTE + " (set_timesteps(sigmas=...))."),
        PeerImpl("ipndm", "ode", None,
                 "iPNDM written from its rule (DEIS paper; zju-pi/diff-sampler, k-diffusion sample_ipndm): "
                 "Adams-Bashforth on the velocity dx/dt = b, max_order=4, warm start Euler, AB2, AB3; one NFE per "
                 "step; grid uniform in t by default (variable-step AB weights on other grids, equal to the "
                 "reference's fixed coefficients on a uniform grid); global order 2 (the Euler warm-up step), "
                 "local order 5 of the AB4 body",
                 _one_per_step, _run_ipndm),
        PeerImpl("dpm++2m-sde-w", "sde", None,
                 "DPM-Solver++(2M) SDE written from k-diffusion's sample_dpmpp_2m_sde (eta=1, s_noise=1, "
                 "solver_type='midpoint') in lambda = log(t/(1-t)) with data prediction eta_X, final step into t = 1 "
                 "the denoising step x = D; grid uniform in t by default; noise per_sample_normal(seed, i, "
                 "(steps, *shape), stream='brownian') (k-diffusion: a Brownian tree; one N(0, 1) per step either way)",
                 _one_per_step, _run_dpmpp_2m_sde),
        make_dpm_adaptive(),
    )
}
