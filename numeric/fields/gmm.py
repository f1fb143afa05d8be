"""Gaussian mixtures with low-rank-plus-diagonal covariances, and their exact fields.

A component is ``N(m_k, Sigma_k)`` with ``Sigma_k = U_k U_k^T + diag(d_k)`` (``U_k``: ``(D, r)``,
``d_k > 0``). This is the form of the committed ``mnist-gmm`` model: 784-dimensional, so the
fields are evaluated with the Woodbury identity instead of ``D x D`` solves.

Exact fields (claim C7; t = 0 base, t = 1 data, ``I_t = alpha Z + beta X``): given component k,
``I_t ~ N(beta m_k, C_k)`` with ``C_k = alpha^2 I + beta^2 Sigma_k``, and with
``w_k = C_k^{-1} (x - beta m_k)``

* ``E[X | I_t = x, k] = m_k + beta Sigma_k w_k``,
* ``E[Z | I_t = x, k] = alpha w_k``,

mixed with the posterior responsibilities ``r_k(x) ∝ pi_k N(x; beta m_k, C_k)``. Computing
``E[Z | ...]`` directly (not as ``(x - beta eta_X)/alpha``) keeps both fields finite at t = 1
(alpha = 0), where ``C_k = beta^2 Sigma_k`` is still invertible because ``d_k > 0``.

Woodbury, with ``g = alpha^2 + beta^2 d`` (a vector) and ``M = I_r + beta^2 U^T diag(1/g) U``:
``C^{-1} y = y/g - beta^2 diag(1/g) U M^{-1} U^T (y/g)`` and
``log det C = sum log g + log det M``. This is linear algebra on the definition, checked in the
tests against the full-covariance oracle of :mod:`lazysi.numeric.fields.gaussian`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import FieldProvider, broadcast_time

__all__ = ["LowRankMixture", "LowRankMixtureProvider", "fit_low_rank_mixture", "load_mixture", "save_mixture"]


@dataclass(frozen=True)
class LowRankMixture:
    """Mixture ``sum_k pi_k N(m_k, U_k U_k^T + diag(d_k))`` over vectors of length D.

    ``weights``: (K,), ``means``: (K, D), ``factors``: (K, D, r), ``diag``: (K, D), all one dtype.
    ``shape`` is the shape of one sample (``(1, 28, 28)`` for MNIST); ``prod(shape) == D``.
    """

    weights: torch.Tensor
    means: torch.Tensor
    factors: torch.Tensor
    diag: torch.Tensor
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(self.weights.shape)}")
        if self.factors.ndim != 3 or self.factors.shape[:2] != (k, d):
            raise ValueError(f"factors must have shape ({k}, {d}, r), got {tuple(self.factors.shape)}")
        if self.diag.shape != (k, d):
            raise ValueError(f"diag must have shape ({k}, {d}), got {tuple(self.diag.shape)}")
        if math.prod(self.shape) != d:
            raise ValueError(f"sample shape {self.shape} does not hold {d} values")
        if bool((self.diag <= 0).any()):
            raise ValueError("diag must be strictly positive (the covariances must be invertible)")
        if bool((self.weights <= 0).any()) or abs(float(self.weights.sum()) - 1.0) > 1e-5:
            raise ValueError("weights must be positive and sum to 1")

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def rank(self) -> int:
        return int(self.factors.shape[2])

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "LowRankMixture":
        f = lambda a: a.to(dtype=dtype, device=device)  # noqa: E731
        return LowRankMixture(f(self.weights), f(self.means), f(self.factors), f(self.diag), self.shape)

    def covariances(self) -> torch.Tensor:
        """Full covariances ``(K, D, D)`` (for checks and small dims)."""
        return self.factors @ self.factors.transpose(1, 2) + torch.diag_embed(self.diag)

    def mean(self) -> torch.Tensor:
        """Mixture mean ``sum_k pi_k m_k``, shape (D,)."""
        return self.weights @ self.means

    def rms_centred(self) -> float:
        """``sqrt(E|X - E X|^2 / D)``: the RMS of the centred data, exact."""
        mu = self.mean()
        second = (self.factors**2).sum(dim=(1, 2)) + self.diag.sum(1) + ((self.means - mu) ** 2).sum(1)
        return float(torch.sqrt((self.weights * second).sum() / self.dim))

    def sample(self, z_component: torch.Tensor, z_factor: torch.Tensor, z_diag: torch.Tensor) -> torch.Tensor:
        """Exact samples from given randomness (so callers control seeding).

        ``z_component``: (n,) uniforms in [0, 1) choosing the component by inverse CDF;
        ``z_factor``: (n, r) and ``z_diag``: (n, D) standard normals. Returns ``(n, *shape)``.
        """
        cdf = torch.cumsum(self.weights, 0)
        k = torch.searchsorted(cdf, z_component.to(cdf.dtype).contiguous(), right=True).clamp(max=self.n_components - 1)
        x = self.means[k] + (self.factors[k] @ z_factor.unsqueeze(-1)).squeeze(-1) + self.diag[k].sqrt() * z_diag
        return x.reshape(-1, *self.shape)

    def component_terms(self, alpha: torch.Tensor, beta: torch.Tensor, x: torch.Tensor):
        """Per-component quantities under ``I = alpha Z + beta X`` at ONE time.

        ``alpha, beta``: scalar tensors; ``x``: (B, D). Returns ``(log_density (B, K), w (B, K, D))``
        where ``log_density`` is ``log pi_k + log N(x; beta m_k, C_k)`` and
        ``w = C_k^{-1}(x - beta m_k)``. The r x r Woodbury matrices are formed once per call.
        """
        a2, b2 = alpha**2, beta**2
        g = a2 + b2 * self.diag  # (K, D)
        ug = self.factors / g[..., None]  # (K, D, r)
        m = torch.eye(self.rank, dtype=x.dtype, device=x.device) + b2 * (self.factors.transpose(-1, -2) @ ug)
        chol = torch.linalg.cholesky(m)  # (K, r, r)
        y = x[:, None, :] - beta * self.means[None]  # (B, K, D)
        yg = y / g[None]
        q = torch.einsum("kdr,bkd->kbr", self.factors, yg)  # U^T (y/g)
        sol = torch.cholesky_solve(q.transpose(-1, -2), chol).transpose(-1, -2)  # (K, B, r): M^{-1} q
        w = yg - b2 * torch.einsum("kdr,kbr->bkd", ug, sol)
        maha = (y * yg).sum(-1) - b2 * (q * sol).sum(-1).T
        logdet = torch.log(g).sum(-1) + 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        logp = torch.log(self.weights)[None] - 0.5 * (maha + logdet[None] + self.dim * math.log(2 * math.pi))
        return logp, w

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` of data points ``x`` (n, *shape) (alpha = 0, beta = 1)."""
        xf = x.reshape(x.shape[0], -1)
        one = torch.ones((), dtype=xf.dtype, device=xf.device)
        logp, _ = self.component_terms(torch.zeros_like(one), one, xf)
        return torch.logsumexp(logp, 1)


class LowRankMixtureProvider(FieldProvider):
    """Exact fields of a :class:`LowRankMixture` under a schedule (t = 0 base, t = 1 data).

    Evaluated in ``x``'s dtype (use float64 for oracle work); ``x`` is ``(B, *mixture.shape)``.
    """

    def __init__(self, schedule: NumericSchedule, mixture: LowRankMixture):
        self.schedule = schedule if isinstance(schedule, NumericSchedule) else NumericSchedule(schedule)
        self.mixture = mixture
        self._cache: dict[tuple[torch.dtype, torch.device], LowRankMixture] = {}

    def _mix(self, x: torch.Tensor) -> LowRankMixture:
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = self.mixture.to(dtype=x.dtype, device=x.device)
        return self._cache[key]

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mix = self._mix(x)
        xf = x.reshape(x.shape[0], -1)
        tb = broadcast_time(t, xf)[:, 0].expand(xf.shape[0])
        eta_x, eta_z = torch.empty_like(xf), torch.empty_like(xf)
        times, inverse = torch.unique(tb, return_inverse=True)
        for j, tj in enumerate(times):  # one Woodbury factorisation per distinct time
            rows = inverse == j
            alpha, beta = self.schedule.alpha(tj), self.schedule.beta(tj)
            logp, w = mix.component_terms(alpha, beta, xf[rows])
            r = torch.softmax(logp, dim=1)  # (B, K)
            # Sigma_k w = U (U^T w) + d * w
            sw = torch.einsum("kdr,bkr->bkd", mix.factors, torch.einsum("kdr,bkd->bkr", mix.factors, w)) + mix.diag[None] * w
            eta_x[rows] = torch.einsum("bk,bkd->bd", r, mix.means[None] + beta * sw)
            eta_z[rows] = alpha * torch.einsum("bk,bkd->bd", r, w)
        return eta_x.reshape(x.shape), eta_z.reshape(x.shape)


# ----------------------------------------------------------------------------- io

def save_mixture(mixture: LowRankMixture, stem: str | Path, card: dict[str, Any]) -> None:
    """Write ``<stem>.safetensors`` (float32 weights, means, factors, diag) and ``<stem>.json``."""
    from safetensors.torch import save_file

    stem = Path(stem)
    tensors = {
        "weights": mixture.weights.float().contiguous(),
        "means": mixture.means.float().contiguous(),
        "factors": mixture.factors.float().contiguous(),
        "diag": mixture.diag.float().contiguous(),
    }
    save_file(tensors, str(stem.with_name(stem.name + ".safetensors")))
    stem.with_name(stem.name + ".json").write_text(json.dumps(card, indent=2) + "\n")


def load_mixture(stem: str | Path, dtype: torch.dtype = torch.float64) -> tuple[LowRankMixture, dict[str, Any]]:
    """Load a mixture saved by :func:`save_mixture` (safetensors only) and its card."""
    from safetensors.torch import load_file

    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    wpath, cpath = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    for p in (wpath, cpath):
        if not p.is_file():
            raise FileNotFoundError(f"mixture file missing: {p}")
    card = json.loads(cpath.read_text())
    t = load_file(str(wpath))
    missing = {"weights", "means", "factors", "diag"} - set(t)
    if missing:
        raise ValueError(f"{wpath}: missing tensors {sorted(missing)}")
    weights = t["weights"].to(dtype)
    mix = LowRankMixture(weights / weights.sum(), t["means"].to(dtype), t["factors"].to(dtype), t["diag"].to(dtype),
                         tuple(int(s) for s in card.get("data_shape", [t["means"].shape[1]])))
    return mix, card


# ----------------------------------------------------------------------------- fit

def _component_fit(x: torch.Tensor, resp: torch.Tensor, rank: int, floor: float):
    """Weighted mean, top-``rank`` factors and diagonal residual of one component (float64)."""
    nk = resp.sum()
    mean = (resp[:, None] * x).sum(0) / nk
    xc = (x - mean) * torch.sqrt(resp / nk)[:, None]
    cov = xc.T @ xc
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0)[:rank], evecs.flip(1)[:, :rank]
    # residual variance per pixel, floored: keeps Sigma invertible for constant pixels
    diag = (torch.diagonal(cov) - (evecs**2 * evals).sum(1)).clamp(min=0.0) + floor
    factors = evecs * torch.sqrt((evals - 0.0).clamp(min=0.0))
    return mean, factors, diag


def fit_low_rank_mixture(
    x: torch.Tensor,
    init_labels: torch.Tensor,
    rank: int,
    iters: int,
    floor: float,
    shape: tuple[int, ...],
    log=print,
) -> tuple[LowRankMixture, list[float]]:
    """EM for a low-rank-plus-diagonal mixture (an approximate M-step: per-component PCA of the
    weighted covariance, residual variances on the diagonal plus ``floor``).

    ``x``: (N, D) float64 data; ``init_labels``: (N,) integer component ids 0..K-1 (hard initial
    assignment). Returns the mixture and the mean log-likelihood per iteration.
    """
    k = int(init_labels.max()) + 1
    resp = torch.nn.functional.one_hot(init_labels, k).to(x.dtype)
    history: list[float] = []
    mix = None
    for it in range(iters + 1):
        parts = [_component_fit(x, resp[:, j], rank, floor) for j in range(k)]
        weights = resp.sum(0) / resp.shape[0]
        mix = LowRankMixture(weights, torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]),
                             torch.stack([p[2] for p in parts]), shape)
        logps = []
        for chunk in torch.split(x, 500):
            one = torch.ones((), dtype=x.dtype)
            lp, _ = mix.component_terms(torch.zeros_like(one), one, chunk)
            logps.append(lp)
        logp = torch.cat(logps)
        ll = float(torch.logsumexp(logp, 1).mean())
        history.append(ll)
        log(f"iteration {it}: mean log-likelihood {ll:.2f}  ({ll / x.shape[1]:.4f} per pixel)")
        if it < iters:
            resp = torch.softmax(logp, 1)
            # keep every component alive
            resp = resp + 1e-8
            resp = resp / resp.sum(1, keepdim=True)
    assert mix is not None
    return mix, history
