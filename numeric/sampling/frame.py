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
:mod:`lazysi.numeric.sampling.solvers`.

**Coordinates.** The integrators carry the state and the residuals in the eigen layout of the
approximation for the whole run (:func:`split_parts`): ``z = split(y)``, one ``(B, n)`` tensor of
``y = x - beta_t mu`` per eigendirection -- ``y U`` for a ``full`` basis (``n = D``), ``y`` itself
for ``diag``, and ``[y U, y - (y U) U^T]`` for ``lowrank`` (``n = r + D``: the top directions, then
the complement, on which every direction has the variance ``rest``). The basis is orthonormal, so
per-row squared norms are those of data space. :meth:`GaussianTerm.enter` converts the start state
in and :meth:`GaussianTerm.leave` the end state out (:func:`~lazysi.numeric.sampling.solvers.integrate`
calls them); each model evaluation costs one join (the model sees ``x = join(z) + beta_t mu``) and one
split (of its velocity), the residual is ``split(b - beta_dot mu) - k(t, d) z`` and
:meth:`GaussianTerm.propagate` is elementwise per coordinate (no matrix products). Every product
with the basis runs in blocks of 8 rows (:func:`blocked_matmul`, batch invariance).
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
           "join_parts", "layout_variances", "expand_layout"]

#: the frame's matrix products run in blocks of exactly this many rows (see :func:`blocked_matmul`)
MATMUL_ROWS = 8


def blocked_matmul(a: torch.Tensor, b: torch.Tensor, rows: int = MATMUL_ROWS) -> torch.Tensor:
    """``a @ b`` computed in blocks of exactly ``rows`` rows of ``a`` (the last block zero-padded):
    a matrix product's rounding depends on the number of rows and on a row's place in the tail of
    the batch, so without blocks a sample's coordinates would depend on the batch it is in. Each block
    is written into the result in place."""
    n = a.shape[0]
    if n == rows:
        return a @ b
    out = a.new_empty((n, b.shape[1]))
    full = n - n % rows
    for lo in range(0, full, rows):
        torch.mm(a[lo:lo + rows], b, out=out[lo:lo + rows])
    if full < n:
        tail = torch.cat([a[full:], a.new_zeros((rows - (n - full), *a.shape[1:]))])
        out[full:] = (tail @ b)[:n - full]
    return out


def split_parts(approx: GaussianApprox, y: torch.Tensor) -> torch.Tensor:
    """``y`` (B, D) -> its eigen layout ``z`` (module docstring), one tensor: ``y U`` (``full``, (B, D)),
    ``y`` (``diag``), ``[y U, y - (y U) U^T]`` (``lowrank``, (B, r + D)); batch-invariant
    (:func:`blocked_matmul`)."""
    basis = approx.basis
    if basis is None:
        return y
    w = blocked_matmul(y, basis)
    if approx.kind != "lowrank":
        return w
    return torch.cat([w, y - blocked_matmul(w, basis.T)], dim=1)


def join_parts(approx: GaussianApprox, z: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`split_parts`: eigen layout -> data space (B, D)."""
    basis = approx.basis
    if basis is None:
        return z
    rank = basis.shape[1]
    y = blocked_matmul(z[:, :rank], basis.T)
    return y + z[:, rank:] if approx.kind == "lowrank" else y


def layout_variances(approx: GaussianApprox) -> torch.Tensor:
    """The distinct variances of the eigen layout's coordinates (float64): ``approx.variances``, with
    ``rest`` appended for ``lowrank`` (shared by its ``D`` complement coordinates, :func:`expand_layout`)."""
    var = approx.variances.to(torch.float64)
    if approx.kind != "lowrank":
        return var
    return torch.cat([var, var.new_tensor([approx.rest])])


def expand_layout(approx: GaussianApprox, v: torch.Tensor) -> torch.Tensor:
    """Per-variance values ``v`` (last axis over :func:`layout_variances`) -> per coordinate of the
    eigen layout (``lowrank``: the last entry repeated over the ``D`` complement coordinates)."""
    if approx.kind != "lowrank":
        return v
    return torch.cat([v[..., :-1], v[..., -1:].expand(*v.shape[:-1], approx.dim)], dim=-1)


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
    """One model evaluation in the frame at ``(t, z)``: the residual ``r`` (eigen layout) and the
    model's velocity ``b`` (data space, (B, D))."""

    r: torch.Tensor
    b: torch.Tensor


class GaussianTerm:
    """The model's probability-flow ODE as "Gaussian part + residual" on ``provider``'s schedule.

    ``shape``: one sample's shape (the provider sees ``(B, *shape)``). The integrators' states and
    residuals are in the eigen layout (module docstring; :meth:`enter`, :meth:`leave`). ``approx`` is
    cast to the state's ``dtype`` and moved to ``device``; kernels run in float64, once per kernel and
    time (cached for the term's run).
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
        self.variances = layout_variances(approx).to(device=self.device)
        self.approx = approx.to(dtype=dtype, device=self.device)
        self._kernel_values: dict[tuple[str, float], torch.Tensor] = {}

    def enter(self, tv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A data-space state ``x`` (B, D) at ``tv`` -> its eigen layout ``split(x - beta_t mu)``."""
        return split_parts(self.approx, x - self.schedule.beta(tv).to(self.dtype) * self.mu)

    def leave(self, tv: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`enter`: ``join(z) + beta_t mu`` (B, D)."""
        return join_parts(self.approx, z) + self.schedule.beta(tv).to(self.dtype) * self.mu

    def _kernel(self, name: str, tv) -> torch.Tensor:
        """Kernel ``name`` at ``tv`` for each of :func:`layout_variances` (float64, cached)."""
        key = (name, float(tv))
        if key not in self._kernel_values:
            self._kernel_values[key] = self.kernels(name, tv, self.variances).to(device=self.device)
        return self._kernel_values[key]

    def _coef(self, v: torch.Tensor) -> torch.Tensor:
        """Per-variance float64 values -> per coordinate of the layout, in the state's dtype."""
        return expand_layout(self.approx, v.to(self.dtype))

    def evaluate(self, tv: torch.Tensor, z: torch.Tensor) -> Evaluation:
        """One model evaluation at ``(tv, z)``: the velocity ``b`` and the residual
        ``split(b - beta_dot mu) - k(t, d) z`` (``b - b_G`` in the eigen layout)."""
        batch = z.shape[0]
        x = self.leave(tv, z)
        b = self.provider.drift(tv, x.reshape(batch, *self.shape)).reshape(batch, -1)
        centred = split_parts(self.approx, b - self.schedule.beta_dot(tv).to(self.dtype) * self.mu)
        return Evaluation(torch.addcmul(centred, self._coef(self._kernel("k", tv)), z, value=-1.0), b)

    def propagate(self, z: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor,
                  coefs: Sequence[torch.Tensor | None], nodes: Sequence[float | torch.Tensor] = ()) -> torch.Tensor:
        """Exact Gaussian flow of the eigen-layout state ``z`` over ``[t0, t1]`` (forward in time) plus
        ``phi_1 int_{t0}^{t1} r/phi`` for the residual polynomial in Newton form
        ``r(tau) = sum_j coefs[j] prod_{i<j} (tau - nodes[i])`` (eigen layout; ``coefs[0]`` is required; a
        ``None`` coefficient is omitted). Per coordinate the term ``j`` integrates to
        ``phi_1 sum_m e_m [M_m]_{t0}^{t1}`` with ``e_m`` the monomial coefficients of
        ``prod_{i<j} (tau - nodes[i])`` and ``M_m = int t^m dt/phi`` the moment kernels ``F, G, H, K``
        (degree <= 3). Elementwise: no matrix products."""
        if len(coefs) == 0 or coefs[0] is None:
            raise ValueError("propagate needs the residual's constant term coefs[0]")
        if len(coefs) > len(MOMENT_KERNELS):
            raise ValueError(f"residual polynomial of degree {len(coefs) - 1}: the frame's moment kernels "
                             f"{', '.join(MOMENT_KERNELS)} integrate degree <= {len(MOMENT_KERNELS) - 1}")
        if len(nodes) < len(coefs) - 1:
            raise ValueError(f"a Newton polynomial of degree {len(coefs) - 1} needs {len(coefs) - 1} nodes, got {len(nodes)}")
        p0, p1 = self._kernel("phi", t0), self._kernel("phi", t1)
        inc: dict[int, torch.Tensor] = {}

        def moment(m: int) -> torch.Tensor:
            if m not in inc:
                name = MOMENT_KERNELS[m]
                inc[m] = self._kernel(name, t1) - self._kernel(name, t0)
            return inc[m]

        monomials = _newton_monomials(nodes, len(coefs))
        out = torch.addcmul(self._coef(p1 / p0) * z, self._coef(p1 * moment(0)), coefs[0])
        for deg in range(1, len(coefs)):
            if coefs[deg] is None:
                continue
            e = monomials[deg]  # e[m]: coefficient of tau^m, e[deg] = 1
            acc = moment(deg)
            for m in range(deg - 1, -1, -1):
                acc = acc + e[m] * moment(m)
            out = torch.addcmul(out, self._coef(p1 * acc), coefs[deg])
        return out

    def data_prediction(self, tv: torch.Tensor, z: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``eta_X`` (data space, (B, D)) recovered from the velocity ``b`` at ``(tv, z)`` (the velocity
        adapter's inversion)."""
        return fields_from_prediction("velocity", self.schedule, tv, self.leave(tv, z), b)[0]
