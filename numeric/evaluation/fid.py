"""Fréchet distance between Gaussians fitted to features, and streaming feature statistics.

``FeatureStats`` keeps float64 running sums (count, sum, sum of outer products) that add across
shards and ranks, so the mean and covariance for a classifier-FID need no second pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from lazysi.numeric.fields.linalg import PSD_RTOL, check_psd_eigenvalues, psd_eigh

__all__ = ["FeatureStats", "sqrtm_psd", "frechet_distance"]


@dataclass
class FeatureStats:
    """Float64 running sums of features ``f`` (rows): ``count``, ``sum f``, ``sum f f^T``.

    ``mean = sum / count``; ``cov = (outer - count mean mean^T) / (count - 1)`` (unbiased, as in
    the usual FID code). Sums add across shards and ranks, so no second pass is needed.
    """

    dim: int
    count: int = 0
    total: torch.Tensor = field(default=None)  # type: ignore[assignment]
    outer: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.total is None:
            self.total = torch.zeros(self.dim, dtype=torch.float64)
        if self.outer is None:
            self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        """Add a ``(m, dim)`` block of features (converted to float64 on the CPU)."""
        f = torch.as_tensor(features).detach().to("cpu", torch.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"features must have shape (m, {self.dim}), got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError("features contain non-finite values")
        self.count += f.shape[0]
        self.total += f.sum(0)
        self.outer += f.T @ f

    def all_reduce(self, group: Any = None) -> None:
        """Sum the statistics over all ranks of ``group`` (in place; no-op without distributed)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")
        flat = torch.cat([torch.tensor([float(self.count)], dtype=torch.float64), self.total, self.outer.reshape(-1)]).to(device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat = flat.cpu()
        self.count = int(round(float(flat[0])))
        self.total = flat[1 : 1 + self.dim].clone()
        self.outer = flat[1 + self.dim :].reshape(self.dim, self.dim).clone()

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count < 2:
            raise ValueError(f"need at least 2 feature rows for a covariance, have {self.count}")
        mu = self.total / self.count
        cov = (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return mu, 0.5 * (cov + cov.T)

    def to_arrays(self) -> dict[str, np.ndarray]:
        mu, cov = self.mean_cov() if self.count >= 2 else (self.total * float("nan"), self.outer * float("nan"))
        return {
            "count": np.array(self.count, dtype=np.int64),
            "sum": self.total.numpy(),
            "outer": self.outer.numpy(),
            "mu": mu.numpy(),
            "cov": cov.numpy(),
        }


def sqrtm_psd(a: torch.Tensor, *, tol: float = PSD_RTOL) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix via ``eigh`` (float64).

    Eigenvalues in ``[-tol * max|eig|, 0)`` are rounding noise and set to 0; a more negative
    eigenvalue raises (the matrix is not a covariance)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(a.shape)}")
    w, v = psd_eigh(0.5 * (a + a.T), "matrix", tol)
    return (v * w.sqrt()) @ v.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2), in float64:

    ``|mu1 - mu2|^2 + tr cov1 + tr cov2 - 2 tr (cov1^{1/2} cov2 cov1^{1/2})^{1/2}``.

    The cross term uses symmetric PSD square roots from ``eigh`` (no complex ``sqrtm`` noise):
    ``tr (cov1 cov2)^{1/2} = sum sqrt(eig(cov1^{1/2} cov2 cov1^{1/2}))``."""
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    cov1, cov2 = (torch.as_tensor(c, dtype=torch.float64) for c in (cov1, cov2))
    d = mu1.numel()
    if mu2.numel() != d or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu1 {tuple(mu1.shape)}, mu2 {tuple(mu2.shape)}, cov1 {tuple(cov1.shape)}, cov2 {tuple(cov2.shape)}")
    s1 = sqrtm_psd(cov1)
    m = s1 @ cov2 @ s1
    w = torch.linalg.eigvalsh(0.5 * (m + m.T))
    check_psd_eigenvalues(w, "cov2")
    cross = w.clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2.0 * cross)
