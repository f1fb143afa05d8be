"""Covariance-aware SDE samplers: the Gaussian part of an SDE integrated exactly, noise included.

Time runs forward, t = 0 base -> t = 1 data, on the schedule of the ``provider`` (the frame's
schedule; the samplers use the point-mass schedule, ``lazy_provider(p, "lazy-pm", sigma, 0.0)``).
The SDE is ``dX = (b + eps s) dt + sqrt(2 eps) dW`` with ``eps = nu eps*`` (``nu = 0``: the
probability-flow ODE; ``nu = 1``: the statistically optimal SDE, C2).

**What is the paper's and what is ours.** The paper's diffusion sampler is Euler-Maruyama on the
point-mass eps*-SDE (C12; ``lazy-sde`` in :mod:`lazysi.numeric.lazy`), exact on isotropic Gaussian
data (C13). The covariance frame below is ours (MATH.md C16): it makes the SDE sampler exact on
*any* Gaussian data, which no scalar schedule can (C15).

**The frame.** A Gaussian approximation ``N(m, Sigma)`` of the data (:class:`~lazysi.numeric.fields.approx.
GaussianApprox`, full / low-rank / diagonal) splits the drift into its exact Gaussian part and a
residual. Per eigendirection (variance ``d``) of ``y = x - beta m`` the Gaussian part is the linear
SDE ``dy = k y dt + sqrt(2 eps) dW`` whose transition over ``[t0, t1]`` is Gaussian
(:mod:`lazysi.symbolic.sde_frame`, where every kernel is derived and checked)::

    y1 = M y0 + sum_j c_j W_j + sqrt(V) xi,
    M = exp(log_A(t1) - log_A(t0)),  V = -phi1^2 expm1(-2 nu (L(t1) - L(t0))),
    W_j = int_{t0}^{t1} exp(log_A(t1) - log_A(s)) (s - t0)^j ds,

where ``sum_j c_j (s - t0)^j`` is the polynomial that stands for the residual over the step. The
residual is the model drift minus the Gaussian drift; through ``x = alpha eta_Z + beta eta_X`` it is
``r = (1 + nu) beta lambda_dot (eta_X - eta_X^G)`` (derived, ``r_gain``), finite for t < 1 also where
``eps*`` is infinite (a standard base) or the drift's x-coefficient is (a point-mass base, nu != 1).

* ``order=1`` (``lazy-cov-sde``): the residual frozen at the step's start (stochastic exponential
  Euler). Exact in distribution for Gaussian data equal to the approximation, any number of steps
  (``r = 0`` there).
* ``order=2, 3``: stochastic Adams in this frame (SA-Solver's idea, Xue et al. 2023, with the
  Gaussian part exact): ``r`` is the polynomial through the last 2 or 3 evaluations (Newton form at
  ``t_k``), integrated with the weights ``W_j``; one model evaluation per step, the first steps
  use what history there is.

Endpoints: at a point-mass base (``phi(t0) = 0``: ``alpha = beta = 0``) the state is ``y0 = 0``
and ``M`` is set to 0 (``V = phi1^2`` there, from ``L(t0) = -oo``); the model is evaluated there
through its fields (``eta_X(0, 0) = E[X]``), never through the drift, whose x-coefficient is
infinite at a point-mass base unless nu = 1. At t = 1 everything is finite (``d > 0``); the model
is never evaluated at ``grid[-1]``.

States and residuals are in the eigen layout of the ODE frame (:mod:`lazysi.numeric.sampling.frame`,
:func:`~lazysi.numeric.sampling.frame.split_parts`) for the whole run: per model evaluation one join
(the model's input) and one split (its ``eta_X``), per step one split (the step's normals); the
transition itself is elementwise per coordinate.

The weights ``W_j`` are computed by double-exponential (tanh-sinh) quadrature of the generated
integrand (see :mod:`lazysi.symbolic.sde_frame` for why not closed forms), ``2 * DE_HALF + 1`` nodes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import sympy as sp
import torch

from lazysi.symbolic.codegen import compile_module, render_module
from lazysi.symbolic.fields import D
from lazysi.symbolic.schedule import t
from lazysi.symbolic.sde_frame import SDE_KERNEL_NAMES, check_nu, derive_sde_kernels

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling.frame import expand_layout, join_parts, layout_variances, split_parts
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.numeric.sampling.solvers import get_solver, integrate
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import FieldProvider

__all__ = ["SdeKernels", "sde_kernels_for", "GaussianSDETerm", "cov_sde_solve", "brownian_normals", "DE_STEP", "DE_HALF"]

#: tanh-sinh rule on [0, 1]: nodes u_k = 1/(1 + exp(-pi sinh(k h))), k = -DE_HALF .. DE_HALF
DE_STEP = 1.0 / 24.0
DE_HALF = 96


@lru_cache(maxsize=None)
def _de_rule() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``u`` in (0, 1) and weights of the tanh-sinh rule for ``int_0^1 f(u) du`` (float64).
    ``u`` is computed as a logistic function, so nodes next to 0 keep full relative precision."""
    k = torch.arange(-DE_HALF, DE_HALF + 1, dtype=torch.float64) * DE_STEP
    z = math.pi * torch.sinh(k)
    u = torch.sigmoid(z)
    w = DE_STEP * math.pi * torch.cosh(k) * torch.sigmoid(z) * torch.sigmoid(-z)
    return u, w


class SdeKernels:
    """Generated torch kernels ``phi, L, log_A, gain_x, r_gain`` of one schedule and ``nu``
    (``fn(name, t, d)``, float64, ``t`` and ``d`` broadcast) and the transition they define."""

    def __init__(self, schedule: NumericSchedule, nu: float):
        self.schedule = schedule
        self.nu = float(nu)
        self.exprs = derive_sde_kernels(schedule.schedule, check_nu(nu))
        src = render_module(f"covariance-aware SDE kernels, schedule {schedule.schedule.name}, nu = {check_nu(nu)}",
                            self.exprs, t, [(D, "d", 1.0)], simplify=False)
        self._ns = compile_module(src, f"lazysi_covsde_{schedule.schedule.name}")
        self.source = src

    def __call__(self, name: str, tv, d: torch.Tensor) -> torch.Tensor:
        if name not in SDE_KERNEL_NAMES:
            raise ValueError(f"unknown kernel {name!r}; known: {', '.join(SDE_KERNEL_NAMES)}")
        tv = torch.as_tensor(tv, dtype=torch.float64)
        d = torch.as_tensor(d, dtype=torch.float64)
        return self._ns[name](tv + torch.zeros_like(d), d=d)

    def transition(self, t0: float, t1: float, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M, V)`` over ``[t0, t1]`` for each variance in ``d`` (float64, ``d``'s shape); ``M = 0``
        where ``phi(t0) = 0`` (point-mass base)."""
        d = torch.as_tensor(d, dtype=torch.float64)
        phi0, phi1 = self("phi", t0, d), self("phi", t1, d)
        m = torch.exp(self("log_A", t1, d) - self("log_A", t0, d))
        m = torch.where(phi0 == 0, torch.zeros_like(m), m)
        if self.nu == 0.0:
            v = torch.zeros_like(m)
        else:
            v = -(phi1**2) * torch.expm1(-2.0 * self.nu * (self("L", t1, d) - self("L", t0, d)))
        return m, v

    def weights(self, t0: float, t1: float, d: torch.Tensor, terms: int = 1) -> torch.Tensor:
        """``W_j = int_{t0}^{t1} A(t1)/A(s) (s - t0)^j ds`` for ``j < terms``: shape ``(terms, *d.shape)``."""
        d = torch.as_tensor(d, dtype=torch.float64)
        h = float(t1) - float(t0)
        u, w = _de_rule()
        shape = (-1,) + (1,) * d.ndim
        s = (float(t0) + h * u).clamp(max=float(t1)).reshape(shape)
        integrand = torch.exp(self("log_A", t1, d) - self._ns["log_A"](s + torch.zeros_like(d), d=d))
        out = []
        for j in range(terms):
            out.append(h ** (j + 1) * ((w * u**j).reshape(shape) * integrand).sum(0))
        return torch.stack(out)


_KERNELS: dict[tuple[str, str, float], SdeKernels] = {}


def sde_kernels_for(schedule: NumericSchedule, nu: float = 1.0) -> SdeKernels:
    """Cached :class:`SdeKernels` (derivation + codegen take seconds once per process)."""
    key = (sp.srepr(schedule.schedule.bound.alpha), sp.srepr(schedule.schedule.bound.beta), float(nu))
    if key not in _KERNELS:
        _KERNELS[key] = SdeKernels(schedule, nu)
    return _KERNELS[key]


def brownian_normals(seed: int, indices: Sequence[int], steps: int, shape: Sequence[int], *, dtype: torch.dtype = torch.float64,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """The ``normals`` argument of :func:`cov_sde_solve` for samples ``indices``: shape
    ``(steps, len(indices), *shape)``, row j drawn from ``(seed, indices[j])`` on the ``"brownian"``
    stream (the stream of every SDE sampler's increments), so a sample's noise does not depend on the
    batch it is generated in."""
    return per_sample_normal(seed, indices, (steps, *tuple(shape)), stream="brownian", dtype=dtype, device=device).movedim(1, 0)


class GaussianSDETerm:
    """The SDE ``dX = (b + nu eps* s) dt + sqrt(2 nu eps*) dW`` of ``provider`` (on its schedule,
    forward in t) as "Gaussian part + residual" in the covariance frame of ``approx``, driven by the
    per-step standard ``normals`` (steps, B, *shape): :meth:`residual` evaluates the model once,
    :meth:`propagate` takes step ``k`` with the Gaussian part exact (noise included) and the residual
    a polynomial through the given history. The step functions are ``exp-sde1/2/3`` of
    :mod:`lazysi.numeric.sampling.solvers`. States and residuals are in the eigen layout
    (:meth:`enter`, :meth:`leave`; module docstring)."""

    def __init__(self, provider: FieldProvider, approx: GaussianApprox, normals: torch.Tensor, nu: float,
                 shape: tuple[int, ...], dtype: torch.dtype, device: str | torch.device):
        if isinstance(nu, bool) or not isinstance(nu, (int, float)) or not (math.isfinite(nu) and nu >= 0):
            raise ValueError(f"nu must be a finite number >= 0, got {nu!r}")
        if approx.dim != math.prod(shape):
            raise ValueError(f"the Gaussian approximation has dimension {approx.dim}, a sample has {math.prod(shape)}")
        self.provider, self.schedule, self.shape = provider, provider.schedule, tuple(shape)
        self.kern = sde_kernels_for(self.schedule, float(nu))
        self.dtype, self.device = dtype, torch.device(device)
        self.normals = normals
        self.mu = approx.mean.to(device=self.device, dtype=dtype)
        self.ap = GaussianApprox(approx.kind, self.mu, approx.variances.to(device=self.device, dtype=dtype),
                                 None if approx.basis is None else approx.basis.to(device=self.device, dtype=dtype),
                                 approx.rest, approx.shape)
        self.variances = layout_variances(approx).cpu()
        self.one = torch.ones(1, dtype=torch.float64)

    def _cast(self, v: torch.Tensor) -> torch.Tensor:
        return v.to(device=self.device, dtype=self.dtype)

    def _coef(self, v: torch.Tensor) -> torch.Tensor:
        """Per-variance float64 values -> per coordinate of the layout, on the state's device and dtype."""
        return expand_layout(self.ap, self._cast(v))

    def _beta(self, tv: float) -> torch.Tensor:
        return self._cast(self.schedule.beta(torch.as_tensor(tv, dtype=torch.float64)))

    def enter(self, tv, x: torch.Tensor) -> torch.Tensor:
        """A data-space state ``x`` (B, D) at ``tv`` -> its eigen layout ``split(x - beta_t mu)``."""
        return split_parts(self.ap, x - self._beta(tv) * self.mu)

    def leave(self, tv, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`enter`: ``join(z) + beta_t mu`` (B, D)."""
        return join_parts(self.ap, z) + self._beta(tv) * self.mu

    def _eta_x(self, tv: float, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        x = self.leave(tv, z)
        eta_x, _ = self.provider.fields(torch.as_tensor(tv, dtype=torch.float64), x.reshape(batch, *self.shape))
        return eta_x.reshape(batch, -1).to(self.dtype)

    def residual(self, tv: float, z: torch.Tensor) -> torch.Tensor:
        """``r = r_gain (eta_X - eta_X^G)`` at ``(tv, z)`` in the eigen layout:
        ``r_gain (split(eta_X - mu) - gain_x z)`` (one model evaluation)."""
        centred = split_parts(self.ap, self._eta_x(tv, z) - self.mu)
        gain = self._cast(self.kern("r_gain", tv, self.one))
        return gain * (centred - self._coef(self.kern("gain_x", tv, self.variances)) * z)

    def data_prediction(self, tv: float, z: torch.Tensor) -> torch.Tensor:
        """The model's ``eta_X`` at ``(tv, z)`` (data space, (B, D); one evaluation): the denoised end
        of a run."""
        return self._eta_x(tv, z)

    def propagate(self, z: torch.Tensor, t0: float, t1: float, k: int,
                  hist: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
        """Step ``k`` over ``[t0, t1]`` with the residual polynomial through ``hist`` (Newton form at
        ``hist[-1]``, ``t0``), elementwise per coordinate of the layout:
        ``z1 = M z0 + sqrt(V) split(xi_k) + sum_j W_j c_j``."""
        batch, q = z.shape[0], len(hist)
        xi = split_parts(self.ap, self.normals[k].reshape(batch, -1).to(device=self.device, dtype=self.dtype))
        m, v = self.kern.transition(t0, t1, self.variances)
        w = self.kern.weights(t0, t1, self.variances, q)
        r = [h[1] for h in hist]
        ts = [h[0] for h in hist]
        out = self._coef(m) * z + self._coef(v.sqrt()) * xi + self._coef(w[0]) * r[-1]
        if q >= 2:
            d1 = (r[-1] - r[-2]) / (ts[-1] - ts[-2])
            out = out + self._coef(w[1]) * d1
        if q == 3:
            d1_prev = (r[-2] - r[-3]) / (ts[-2] - ts[-3])
            d2 = (d1 - d1_prev) / (ts[-1] - ts[-3])
            # (s - t_k)(s - t_{k-1}) = (s - t_k)^2 + (t_k - t_{k-1})(s - t_k)
            out = out + self._coef(w[2] + (ts[-1] - ts[-2]) * w[1]) * d2
        return out


def cov_sde_solve(provider: FieldProvider, approx: GaussianApprox, grid: torch.Tensor, x0: torch.Tensor,
                  normals: torch.Tensor, nu: float = 1.0, order: int = 1) -> torch.Tensor:
    """Integrate ``dX = (b + nu eps* s) dt + sqrt(2 nu eps*) dW`` of ``provider`` (on its schedule,
    forward in t) from ``x0`` at ``grid[0]`` to ``grid[-1]`` in the covariance frame of ``approx``
    (module docstring): Gaussian part exact including its noise, the residual by a polynomial of
    degree ``order - 1`` through the latest evaluations (the step solvers ``exp-sde<order>`` on the
    one loop :func:`~lazysi.numeric.sampling.solvers.integrate`).

    ``grid``: float64 1-D increasing times in [0, 1]. ``x0``: (B, *shape) (zeros at a point-mass
    base). ``normals``: (steps, B, *shape) i.i.d. standard normals, ``normals[i]`` drives step i
    (per sample, :func:`brownian_normals`, for batch invariance). One model evaluation per step, never
    at ``grid[-1]``. Returns (B, *shape) in ``x0``'s dtype."""
    if order not in (1, 2, 3) or isinstance(order, bool):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    grids.check_grid(grid)
    n_steps = grid.numel() - 1
    if tuple(normals.shape) != (n_steps, *x0.shape):
        raise ValueError(f"normals must have shape (steps, *x0.shape) = {(n_steps, *x0.shape)}, got {tuple(normals.shape)}")
    sch = provider.schedule
    g0 = grid[:1]
    if float(sch.alpha(g0)) == 0.0 and float(sch.beta(g0)) == 0.0 and bool((x0 != 0).any()):
        raise ValueError(f"the schedule's marginal at t = {float(g0)} is a point mass at 0: x0 must be zeros")
    term = GaussianSDETerm(provider, approx, normals, nu, tuple(x0.shape[1:]), x0.dtype, x0.device)
    x = integrate(get_solver(f"exp-sde{order}"), term, grid, x0.reshape(x0.shape[0], -1))
    return x.reshape(x0.shape)
