"""The covariance-aware frame: the model's drift split into the exact flow of a Gaussian
approximation and a residual, integrated per eigendirection (a "Gaussian part + residual" term).

Time runs forward, t = 0 base (standard noise) -> t = 1 data, on the model's TRAINING schedule
``I_t = alpha_t Z + beta_t X``. For a Gaussian approximation ``N(mu, Sigma)``,
``Sigma = U diag(d) U^T`` (:class:`~lazysi.numeric.fields.approx.GaussianApprox`), the
probability-flow velocity is affine; with ``y = x - beta_t mu`` and, per eigendirection of
variance ``d``, ``w = u^T y``::

    dw/dt = k(t, d) w,   phi(t, d) = exp(int k dt) = sqrt(alpha^2 + beta^2 d)

(:mod:`lazysi.symbolic.frame` derives ``k, phi, F = int dt/phi, G = int t dt/phi,
H = int t^2 dt/phi, K = int t^3 dt/phi`` with sympy; :class:`FrameKernels` generates torch code from
them). The
model's velocity is ``b = b_G + r`` with the residual ``r = b - b_G``; variation of constants per
direction is exact::

    w(t_1) = phi_1/phi_0 w(t_0) + phi_1 int_{t_0}^{t_1} u^T r(tau) / phi(tau) dtau.

:class:`GaussianTerm` evaluates ``r`` (one model call) and propagates a state over a step with
``r`` replaced by a polynomial of degree <= 3 in Newton form
``c_0 + c_1 (tau - n_0) + c_2 (tau - n_0)(tau - n_1) + ...``; the exponential integrators built on it
(Euler, Adams-Bashforth 2 and 3, predictor-correctors) are step functions in
:mod:`lazysi.numeric.sampling.solvers`. States are flattened ``(B, D)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sympy as sp
import torch

from lazysi.symbolic.codegen import compile_module, render_module
from lazysi.symbolic.fields import D
from lazysi.symbolic.frame import MOMENT_KERNELS, derive_frame_kernels
from lazysi.symbolic.schedule import t

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.models.adapters import fields_from_prediction

__all__ = ["FrameKernels", "frame_kernels", "GaussianTerm", "Evaluation", "blocked_matmul", "MATMUL_ROWS", "split_parts",
           "join_parts"]

#: the frame's matrix products run in blocks of exactly this many rows (see :func:`blocked_matmul`)
MATMUL_ROWS = 8


def blocked_matmul(a: torch.Tensor, b: torch.Tensor, rows: int = MATMUL_ROWS) -> torch.Tensor:
    """``a @ b`` computed in blocks of exactly ``rows`` rows of ``a`` (the last block zero-padded):
    a matrix product's rounding depends on the number of rows and on a row's place in the tail of
    the batch, so without blocks a sample's coordinates would depend on the batch it is in."""
    n = a.shape[0]
    if n == rows:
        return a @ b
    out = []
    for lo in range(0, n, rows):
        blk = a[lo:lo + rows]
        m = blk.shape[0]
        if m < rows:
            blk = torch.cat([blk, blk.new_zeros((rows - m, *blk.shape[1:]))])
        out.append((blk @ b)[:m])
    return torch.cat(out)


def split_parts(approx: GaussianApprox, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y`` (B, D) -> eigen-coordinates and the complement (``lowrank`` only), batch-invariant
    (:func:`blocked_matmul`)."""
    basis = approx.basis
    if basis is None:
        return y, None
    w = blocked_matmul(y, basis)
    return w, (y - blocked_matmul(w, basis.T)) if approx.kind == "lowrank" else None


def join_parts(approx: GaussianApprox, w: torch.Tensor, perp: torch.Tensor | None) -> torch.Tensor:
    """The inverse of :func:`split_parts`."""
    if approx.basis is None:
        return w
    y = blocked_matmul(w, approx.basis.T)
    return y + perp if perp is not None else y


class FrameKernels:
    """Generated torch kernels ``phi, k, F, G, H, K`` of one schedule: ``kernels(name, t, d) -> tensor``
    (float64, ``t`` and ``d`` broadcast)."""

    def __init__(self, schedule: NumericSchedule):
        self.schedule = schedule
        self.exprs = derive_frame_kernels(schedule.schedule)
        src = render_module(f"covariance-aware lazy kernels, schedule {schedule.schedule.name}", self.exprs, t,
                            [(D, "d", 1.0)], simplify=False)
        self._ns = compile_module(src, f"lazysi_covlazy_{schedule.schedule.name}")
        self.source = src

    def __call__(self, name: str, tv: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        tv = torch.as_tensor(tv, dtype=torch.float64)
        return self._ns[name](tv + torch.zeros_like(d), d=d)


_KERNELS: dict[str, FrameKernels] = {}


def frame_kernels(schedule: NumericSchedule) -> FrameKernels:
    """Cached :class:`FrameKernels` (derivation + codegen take seconds once per process)."""
    key = sp.srepr(schedule.schedule.bound.alpha) + "|" + sp.srepr(schedule.schedule.bound.beta)
    if key not in _KERNELS:
        _KERNELS[key] = FrameKernels(schedule)
    return _KERNELS[key]


def _newton_monomials(nodes: Sequence[float | torch.Tensor], n: int) -> list[list[float]]:
    """``[e^(0), ..., e^(n-1)]``: ``e^(j)[m]`` is the coefficient of ``tau^m`` in
    ``prod_{i<j} (tau - nodes[i])`` (python floats; expanded by one factor at a time)."""
    polys = [[1.0]]
    for j in range(1, n):
        prev, c = polys[-1], float(nodes[j - 1])
        new = [0.0] * (j + 1)
        new[j] = prev[j - 1]
        new[0] = (-c) * prev[0]
        for m in range(1, j):
            new[m] = prev[m - 1] + (-c) * prev[m]
        polys.append(new)
    return polys


class Evaluation(NamedTuple):
    """One model evaluation in the frame: the residual ``r`` and the velocity ``b`` at ``(t, x)``."""

    r: torch.Tensor
    b: torch.Tensor


class GaussianTerm:
    """The model's probability-flow ODE as "Gaussian part + residual" on ``provider``'s schedule.

    ``shape``: one sample's shape (the provider sees ``(B, *shape)``; the term works on ``(B, D)``).
    ``approx`` is cast to the state's ``dtype`` and moved to ``device``; kernels run in float64.
    """

    def __init__(self, provider: FieldProvider, approx: GaussianApprox, shape: tuple[int, ...], dtype: torch.dtype,
                 device: str | torch.device):
        self.provider = provider
        self.schedule = provider.schedule
        self.kernels = frame_kernels(self.schedule)
        self.shape = tuple(shape)
        self.dtype = dtype
        self.device = torch.device(device)
        self.mu = approx.mean.to(device=self.device, dtype=dtype)
        self.dv = approx.variances.to(device=self.device, dtype=torch.float64)
        self.drest = torch.tensor([approx.rest], dtype=torch.float64, device=self.device)
        self.approx = approx.to(dtype=dtype, device=self.device)

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return split_parts(self.approx, y)

    def join(self, w: torch.Tensor, perp: torch.Tensor | None) -> torch.Tensor:
        return join_parts(self.approx, w, perp)

    def _coef(self, name: str, tv, which: torch.Tensor) -> torch.Tensor:
        return self.kernels(name, tv, which).to(device=self.device)

    def gaussian_velocity(self, tv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The Gaussian approximation's exact velocity at ``(tv, x)`` (affine in ``x``)."""
        sch, dtype = self.schedule, self.dtype
        y = x - sch.beta(tv).to(dtype) * self.mu
        w, perp = self.split(y)
        w = w * self._coef("k", tv, self.dv).to(dtype)
        if perp is not None:
            perp = perp * self._coef("k", tv, self.drest).to(dtype)
        return sch.beta_dot(tv).to(dtype) * self.mu + self.join(w, perp)

    def evaluate(self, tv: torch.Tensor, x: torch.Tensor) -> Evaluation:
        """One model evaluation: the velocity ``b`` and the residual ``b - b_G`` at ``(tv, x)``."""
        b = self.provider.drift(tv, x.reshape(x.shape[0], *self.shape)).reshape(x.shape[0], -1)
        return Evaluation(b - self.gaussian_velocity(tv, x), b)

    def propagate(self, x: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor,
                  coefs: Sequence[torch.Tensor | None], nodes: Sequence[float | torch.Tensor] = ()) -> torch.Tensor:
        """Exact Gaussian flow over ``[t0, t1]`` (forward in time) plus ``phi_1 int_{t0}^{t1} r/phi`` for the
        residual polynomial in Newton form ``r(tau) = sum_j coefs[j] prod_{i<j} (tau - nodes[i])``
        (``coefs[0]`` is required; a ``None`` coefficient is omitted). Per eigendirection the term ``j``
        integrates to ``phi_1 sum_m e_m [M_m]_{t0}^{t1}`` with ``e_m`` the monomial coefficients of
        ``prod_{i<j} (tau - nodes[i])`` and ``M_m = int t^m dt/phi`` the moment kernels ``F, G, H, K``
        (degree <= 3)."""
        if len(coefs) == 0 or coefs[0] is None:
            raise ValueError("propagate needs the residual's constant term coefs[0]")
        if len(coefs) > len(MOMENT_KERNELS):
            raise ValueError(f"residual polynomial of degree {len(coefs) - 1}: the frame's moment kernels "
                             f"{', '.join(MOMENT_KERNELS)} integrate degree <= {len(MOMENT_KERNELS) - 1}")
        if len(nodes) < len(coefs) - 1:
            raise ValueError(f"a Newton polynomial of degree {len(coefs) - 1} needs {len(coefs) - 1} nodes, got {len(nodes)}")
        sch, dtype = self.schedule, self.dtype
        parts_y = self.split(x - sch.beta(t0).to(dtype) * self.mu)
        parts = [self.split(v) if v is not None else (None, None) for v in coefs]
        monomials = _newton_monomials(nodes, len(coefs))
        out = []
        for j, var in enumerate((self.dv, self.drest)):
            yj = parts_y[j]
            if yj is None:
                out.append(None)
                continue
            p0, p1 = self._coef("phi", t0, var), self._coef("phi", t1, var)
            inc: dict[int, torch.Tensor] = {}

            def moment(m: int) -> torch.Tensor:
                if m not in inc:
                    name = MOMENT_KERNELS[m]
                    inc[m] = self._coef(name, t1, var) - self._coef(name, t0, var)
                return inc[m]

            yn = (p1 / p0).to(dtype) * yj + (p1 * moment(0)).to(dtype) * parts[0][j]
            for deg in range(1, len(coefs)):
                if parts[deg][j] is None:
                    continue
                e = monomials[deg]  # e[m]: coefficient of tau^m, e[deg] = 1
                acc = moment(deg)
                for m in range(deg - 1, -1, -1):
                    acc = acc + e[m] * moment(m)
                yn = yn + (p1 * acc).to(dtype) * parts[deg][j]
            out.append(yn)
        return self.join(out[0], out[1]) + sch.beta(t1).to(dtype) * self.mu

    def data_prediction(self, tv: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``eta_X`` recovered from a velocity ``b`` at ``(tv, x)`` (the velocity adapter's inversion)."""
        return fields_from_prediction("velocity", self.schedule, tv, x, b)[0]
