"""Exact field providers for Gaussian and Gaussian-mixture data (claim C7).

The mpmath oracles of the same fields live with the proofs (:mod:`lazysi.proofs.oracles`).

Convention: ``I_t = alpha_t Z + beta_t X``, t = 0 base, t = 1 data, ``Z ~ N(0, I)`` independent
of ``X``. For ``X ~ N(m, Sigma)`` with ``Sigma = U diag(d) U^T`` the fields are affine in ``x``;
with ``y = U^T (x - beta m)`` (eigenbasis coordinates)::

    eta_X = m + U (gain_x(t, d) * y),      eta_Z = U (gain_z(t, d) * y),
    log p_t(x) = -1/2 sum_j [log(2 pi v_j) + y_j^2 / v_j],   v_j = alpha^2 + beta^2 d_j.

``gain_x, gain_z, 1/v`` and ``v / (alpha^2 + beta^2)`` are *derived* in
:mod:`lazysi.symbolic.fields` and *generated* as torch code per schedule (committed modules
``numeric/generated/fields_<family>.py`` for the built-in families, generated at run time for any
other schedule), with their t = 0 / t = 1 limits as functions of ``d``. A mixture's fields are the
posterior-weighted sums of the component fields; the weights are a softmax (log-sum-exp) of
``log w_k + log p_{t,k}(x)``.

Degenerate times, handled exactly: where ``alpha_t = 0`` (the data end of a standard schedule,
the base of a point-mass schedule) every component gives the same ``eta_X`` (``x / beta`` at the
data end, the limit ``m + gain_x x`` at a point-mass base), so the posterior weights are replaced
by the prior weights there (no 0 * inf). At a point-mass base (``alpha = beta = 0``) ``I_0 = 0``
is independent of ``Z``, so ``eta_Z = E[Z] = 0`` there.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import sympy as sp
import torch

from lazysi.symbolic.fields import field_kernels, render_field_module
from lazysi.symbolic.families import FAMILIES, family

from lazysi.numeric.fields.linalg import psd_eigh
from lazysi.numeric.fields.schedule import NumericSchedule, family_module_name
from lazysi.numeric.fields.loader import load_generated
from lazysi.numeric.fields.providers import FieldProvider, broadcast_time

__all__ = [
    "GaussianFieldKernels",
    "GaussianProvider",
    "MixtureProvider",
    "module_generators",
]

def module_generators() -> dict[str, Callable[[], str]]:
    """Committed generated modules: ``fields_<family>.py`` for every built-in family."""
    return {f"fields_{family_module_name(n)}.py": (lambda n=n: render_field_module(family(n))) for n in FAMILIES}


class GaussianFieldKernels:
    """The generated per-direction coefficients ``gain_x, gain_z, inv_var, var_ratio`` of a
    schedule, each ``f(t, d) -> tensor`` (t and d broadcast; t = 0 base, t = 1 data)."""

    def __init__(self, schedule: NumericSchedule):
        sch = schedule.schedule
        bound = sch.bound
        self._ns, self._kw = load_generated(
            f"fields_{family_module_name(sch.name)}",
            [sch],
            lambda: render_field_module(bound),
            ("fields", bound.alpha, bound.beta),
        )

    def __call__(self, name: str, t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self._ns[name](t, d=d, **self._kw)


def _as64(value, name: str, device=None) -> torch.Tensor:
    out = torch.as_tensor(value, dtype=torch.float64, device=device)
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} contains non-finite values")
    return out


def _eig(cov: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of symmetric PSD matrices (..., D, D): ``(d, U)`` with ``d >= 0``
    (:func:`lazysi.numeric.fields.linalg.psd_eigh`); a non-symmetric matrix raises."""
    if not torch.allclose(cov, cov.transpose(-1, -2), rtol=1e-10, atol=1e-12 * float(cov.abs().max().clamp_min(1.0))):
        raise ValueError(f"{name} must be symmetric")
    return psd_eigh(cov, name)


class _Cast:
    """Per (dtype, device) copies of the provider's float64 parameters."""

    def __init__(self, **tensors: torch.Tensor | None):
        self._src = tensors
        self._cache: dict = {}

    def get(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = {k: (None if v is None else v.to(dtype=x.dtype, device=x.device)) for k, v in self._src.items()}
        return self._cache[key]


def _covariance(cov, dim: int, name: str, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``cov`` (float, 0-D, 1-D (D,), or 2-D (D, D)) -> eigenvalues (D,) or (1,) and U or None."""
    c = _as64(cov, name, device)
    if c.ndim == 0:
        if c < 0:
            raise ValueError(f"{name} must be >= 0, got {float(c)}")
        return c.reshape(1), None
    if c.ndim == 1:
        if c.shape[0] != dim:
            raise ValueError(f"{name} has {c.shape[0]} variances, the data has dimension {dim}")
        if (c < 0).any():
            raise ValueError(f"{name} has negative variances")
        return c, None
    if c.ndim == 2:
        if c.shape != (dim, dim):
            raise ValueError(f"{name} must be ({dim}, {dim}), got {tuple(c.shape)}")
        return _eig(c, name)
    raise ValueError(f"{name} must be a float, a 1-D tensor of variances or a 2-D covariance, got {c.ndim}-D")


class GaussianProvider(FieldProvider):
    """Exact fields of ``X ~ N(mean, cov)`` under ``schedule`` (t = 0 base, t = 1 data).

    Args:
        schedule: the numeric schedule.
        mean: tensor of the data's event shape (e.g. ``(D,)`` or ``(1, 28, 28)``).
        cov: a float (isotropic ``cov * I``), a 1-D tensor of ``D`` variances (diagonal) or a
            ``(D, D)`` covariance (eigendecomposed once; may be singular), ``D = mean.numel()``.

    ``fields(t, x)`` takes ``x`` of shape ``(batch, *mean.shape)`` and returns
    ``(eta_X, eta_Z)`` in x's dtype and device.
    """

    def __init__(self, schedule: NumericSchedule, mean: torch.Tensor, cov: float | torch.Tensor):
        self.schedule = schedule
        mean = _as64(mean, "mean")
        self.event_shape = tuple(mean.shape)
        self.dim = mean.numel()
        d, u = _covariance(cov, self.dim, "cov", mean.device)
        self.kernels = GaussianFieldKernels(schedule)
        self._p = _Cast(mean=mean.reshape(-1), d=d, u=u)

    @property
    def eigenvalues(self) -> torch.Tensor:
        return self._p._src["d"]

    def _eigen_coords(self, t, x: torch.Tensor):
        """``(p, tb, beta, y)``: the parameters in x's dtype, the time as (B or 1, 1), beta there and
        the eigenbasis coordinates ``y = U^T (x - beta m)`` (B, D)."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")
        p = self._p.get(x)
        xf = x.reshape(x.shape[0], self.dim)
        tb = broadcast_time(t, xf)  # (B or 1, 1)
        beta = self.schedule.beta(tb)
        y = xf - beta * p["mean"]
        if p["u"] is not None:
            y = y @ p["u"]
        return p, tb, beta, y

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, tb, beta, y = self._eigen_coords(t, x)
        alpha = self.schedule.alpha(tb)
        ex = self.kernels("gain_x", tb, p["d"]) * y
        ez = self.kernels("gain_z", tb, p["d"]) * y
        if p["u"] is not None:
            ex, ez = ex @ p["u"].T, ez @ p["u"].T
        base = (alpha == 0) & (beta == 0)  # point-mass base: I_0 = 0 is independent of Z
        ez = torch.where(base, torch.zeros_like(ez), ez)
        return (p["mean"] + ex).reshape(x.shape), ez.reshape(x.shape)

    def score(self, t, x: torch.Tensor) -> torch.Tensor:
        """Exact score ``-Sigma_t^{-1} (x - beta m)``, ``Sigma_t = alpha^2 I + beta^2 Sigma``, from the
        generated ``inv_var = 1/(alpha^2 + beta^2 d)``: finite at ``alpha = 0`` for ``d > 0`` (the
        data end), where ``-eta_Z/alpha`` is 0/0."""
        p, tb, _, y = self._eigen_coords(t, x)
        s = -self.kernels("inv_var", tb, p["d"]) * y
        if p["u"] is not None:
            s = s @ p["u"].T
        return s.reshape(x.shape)

    def point_mass_drift(self, t, x: torch.Tensor) -> torch.Tensor:
        """Drift of the optimal SDE in the point-mass form of C12, ``kappa (eta_X - x)``
        (``kappa = beta_dot / (1 - beta)`` on ``alpha^2 = sigma^2 beta (1 - beta)``), from generated
        per-direction coefficients whose t = 0 and t = 1 limits are derived (finite at t = 1 for
        d > 0, where ``eta_X - x`` and ``1 - beta`` both vanish). Raises for schedules without
        that form (see :func:`lazysi.symbolic.fields.point_mass_drift_kernels`)."""
        if "pm_drift_x" not in self.kernels._ns:
            raise ValueError(f"schedule {self.schedule.schedule.name!r} has no point-mass SDE form (C12)")
        p = self._p.get(x)
        xf = x.reshape(x.shape[0], self.dim)
        tb = broadcast_time(t, xf)
        xe, me = xf, p["mean"]
        if p["u"] is not None:
            xe, me = xf @ p["u"], me @ p["u"]
        out = self.kernels("pm_drift_x", tb, p["d"]) * xe + self.kernels("pm_drift_m", tb, p["d"]) * me
        if p["u"] is not None:
            out = out @ p["u"].T
        return out.reshape(x.shape)

    def log_density(self, t, x: torch.Tensor) -> torch.Tensor:
        """``log p_t(x)`` of ``I_t`` (shape (batch,)), for ``alpha_t > 0`` or ``beta_t^2 d > 0``."""
        p = self._p.get(x)
        xf = x.reshape(x.shape[0], self.dim)
        tb = broadcast_time(t, xf)
        return _log_density(self.schedule, self.kernels, tb, xf[None], p["mean"][None], p["d"][None], None if p["u"] is None else p["u"][None], self.dim)[0]

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of X (float64, on the parameters' device), shape ``(n, *event_shape)``."""
        p = self._p._src
        xi = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=p["mean"].device)
        xi = xi * p["d"].sqrt()
        if p["u"] is not None:
            xi = xi @ p["u"].T
        return (p["mean"] + xi).reshape((n,) + self.event_shape)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of ``I_t = alpha_t Z + beta_t X`` (float64), shape ``(n, *event_shape)``."""
        return _sample_marginal(self, t, n, generator)


def _sample_marginal(provider, t: float, n: int, generator) -> torch.Tensor:
    x = provider.sample_data(n, generator)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    tt = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    return provider.schedule.alpha(tt) * z + provider.schedule.beta(tt) * x


def _component_terms(schedule, kernels, tk, xf, means, d, u):
    """Per component: eigen-coordinates ``y`` (K, B, D) and the (K, B) log-density up to the
    component-independent terms ``-D/2 log(2 pi (alpha^2 + beta^2))``."""
    beta = schedule.beta(tk)
    y = xf[None] - beta * means[:, None, :]
    if u is not None:
        y = torch.bmm(y, u)
    dk = d[:, None, :]  # (K, 1, D) or (K, 1, 1)
    lvr = torch.log(kernels("var_ratio", tk, dk))
    iv = kernels("inv_var", tk, dk)
    dim = xf.shape[-1]
    if d.shape[-1] == 1 and dim != 1:  # isotropic
        logp = -0.5 * (dim * lvr[..., 0] + (y * y).sum(-1) * iv[..., 0])
    else:
        logp = -0.5 * (lvr.expand(y.shape).sum(-1) + (y * y * iv).sum(-1))
    return y, logp


def _log_density(schedule, kernels, tb, xf, means, d, u, dim):
    tk = tb[None]
    _, logp = _component_terms(schedule, kernels, tk, xf[0], means, d, u)
    alpha, beta = schedule.alpha(tb), schedule.beta(tb)
    ref = alpha * alpha + beta * beta
    return logp - 0.5 * dim * torch.log(2 * math.pi * ref)[..., 0][None]


class MixtureProvider(FieldProvider):
    """Exact fields of the Gaussian mixture ``sum_k w_k N(means[k], covs[k])`` (t = 0 base, t = 1 data).

    Args:
        schedule: the numeric schedule.
        weights: ``(K,)`` nonnegative mixture weights (normalised here).
        means: ``(K, *event_shape)``.
        covs: ``(K,)`` isotropic variances, ``(K, D)`` diagonal variances or ``(K, D, D)`` full
            covariances (each eigendecomposed once; ``D = prod(event_shape)``).

    Posterior weights are ``softmax_k(log w_k + log N(x; beta m_k, alpha^2 I + beta^2 Sigma_k))``
    computed with log-sum-exp; ``eta = sum_k w_k(x) eta_k``. Cost per call: two batched
    ``(K, B, D) x (D, D)`` products for full covariances.
    """

    def __init__(self, schedule: NumericSchedule, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
        self.schedule = schedule
        w = _as64(weights, "weights")
        means = _as64(means, "means")
        if w.ndim != 1 or w.numel() == 0:
            raise ValueError(f"weights must be a non-empty 1-D tensor, got shape {tuple(w.shape)}")
        if (w < 0).any() or float(w.sum()) <= 0:
            raise ValueError("weights must be nonnegative with a positive sum")
        k = w.shape[0]
        if means.ndim < 2 or means.shape[0] != k:
            raise ValueError(f"means must have shape ({k}, *event_shape), got {tuple(means.shape)}")
        self.event_shape = tuple(means.shape[1:])
        self.dim = int(math.prod(self.event_shape))
        c = _as64(covs, "covs", means.device)
        if c.ndim == 1 and c.shape[0] == k:
            if (c < 0).any():
                raise ValueError("covs has negative variances")
            d, u = c[:, None], None
        elif c.ndim == 2 and c.shape == (k, self.dim):
            if (c < 0).any():
                raise ValueError("covs has negative variances")
            d, u = c, None
        elif c.ndim == 3 and c.shape == (k, self.dim, self.dim):
            d, u = _eig(c, "covs")
        else:
            raise ValueError(
                f"covs must be ({k},) isotropic, ({k}, {self.dim}) diagonal or ({k}, {self.dim}, {self.dim}) full; got {tuple(c.shape)}"
            )
        w = w / w.sum()
        self.kernels = GaussianFieldKernels(schedule)
        self._p = _Cast(logw=torch.log(w), w=w, means=means.reshape(k, self.dim), d=d, u=u)

    @property
    def n_components(self) -> int:
        return self._p._src["w"].shape[0]

    def posterior_weights(self, t, x: torch.Tensor) -> torch.Tensor:
        """``P(component k | I_t = x)``, shape (batch, K)."""
        return self._weights_and_terms(t, x)[0].transpose(0, 1)

    def _weights_and_terms(self, t, x, prior_at_alpha_zero: bool = True):
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")
        p = self._p.get(x)
        xf = x.reshape(x.shape[0], self.dim)
        tb = broadcast_time(t, xf)  # (B or 1, 1)
        tk = tb[None]  # (1, B or 1, 1)
        y, logp = _component_terms(self.schedule, self.kernels, tk, xf, p["means"], p["d"], p["u"])
        logits = p["logw"][:, None] + logp  # (K, B)
        alpha = self.schedule.alpha(tb)[:, 0][None]  # (1, B or 1)
        if prior_at_alpha_zero:  # every component's eta_X agrees there; avoids 0 * inf in degenerate ones
            logits = torch.where(alpha == 0, p["logw"][:, None].expand_as(logits), logits)
        return torch.softmax(logits, dim=0), y, tk, p, xf, tb

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, y, tk, p, xf, tb = self._weights_and_terms(t, x)
        dk = p["d"][:, None, :]
        ex = self.kernels("gain_x", tk, dk) * y  # (K, B, D)
        ez = self.kernels("gain_z", tk, dk) * y
        if p["u"] is not None:
            ut = p["u"].transpose(1, 2)
            ex, ez = torch.bmm(ex, ut), torch.bmm(ez, ut)
        eta_x = torch.einsum("kb,kbd->bd", w, ex + p["means"][:, None, :])
        eta_z = torch.einsum("kb,kbd->bd", w, ez)
        alpha, beta = self.schedule.alpha(tb), self.schedule.beta(tb)
        eta_z = torch.where((alpha == 0) & (beta == 0), torch.zeros_like(eta_z), eta_z)
        return eta_x.reshape(x.shape), eta_z.reshape(x.shape)

    def score(self, t, x: torch.Tensor) -> torch.Tensor:
        """Exact score ``sum_k P(k | x) (-Sigma_{t,k}^{-1} (x - beta m_k))`` from the generated
        ``inv_var``, with the true posterior weights also at ``alpha = 0`` (the data end, where
        ``-eta_Z/alpha`` is 0/0): finite there for components with ``d > 0``."""
        w, y, tk, p, _, _ = self._weights_and_terms(t, x, prior_at_alpha_zero=False)
        s = -self.kernels("inv_var", tk, p["d"][:, None, :]) * y  # (K, B, D)
        if p["u"] is not None:
            s = torch.bmm(s, p["u"].transpose(1, 2))
        return torch.einsum("kb,kbd->bd", w, s).reshape(x.shape)

    def log_density(self, t, x: torch.Tensor) -> torch.Tensor:
        """``log p_t(x)`` of ``I_t`` (shape (batch,)), where ``alpha_t > 0``."""
        p = self._p.get(x)
        xf = x.reshape(x.shape[0], self.dim)
        tb = broadcast_time(t, xf)
        comp = _log_density(self.schedule, self.kernels, tb, xf[None], p["means"], p["d"], p["u"], self.dim)
        return torch.logsumexp(p["logw"][:, None] + comp, dim=0)

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of X (float64, on the parameters' device), shape ``(n, *event_shape)``."""
        p = self._p._src
        dev = p["means"].device
        comp = torch.multinomial(p["w"], n, replacement=True, generator=generator)
        xi = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=dev)
        xi = xi * p["d"][comp].sqrt()
        if p["u"] is not None:
            out = torch.empty_like(xi)
            for k in range(self.n_components):
                idx = (comp == k).nonzero(as_tuple=True)[0]
                if idx.numel():
                    out[idx] = xi[idx] @ p["u"][k].T
            xi = out
        return (p["means"][comp] + xi).reshape((n,) + self.event_shape)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of ``I_t = alpha_t Z + beta_t X`` (float64), shape ``(n, *event_shape)``."""
        return _sample_marginal(self, t, n, generator)


def field_kernel_expressions(schedule) -> dict[str, sp.Expr]:
    """The sympy sources of the generated coefficients (for tests and reports)."""
    return field_kernels(schedule)
