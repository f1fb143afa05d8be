"""A Gaussian approximation ``N(mean, Sigma)`` of a model's data, in the eigenbasis of ``Sigma``.

The covariance-aware frame (:mod:`lazysi.numeric.sampling.frame`) integrates this Gaussian's flow
exactly per eigendirection. Three kinds: ``full`` (all D eigenvectors), ``lowrank`` (the top r
eigenvectors, the remaining directions share the mean of the remaining eigenvalues) and ``diag``
(per-coordinate variances, no basis). Variances below :data:`VARIANCE_FLOOR` are raised to it
(constant pixels: a zero variance would make the frame's ``F = int dt/phi`` infinite).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lazysi.numeric.fields.linalg import check_psd_eigenvalues

__all__ = ["APPROX_KINDS", "VARIANCE_FLOOR", "GaussianApprox"]

APPROX_KINDS = ("full", "lowrank", "diag")
#: variances below this are raised to it (constant pixels: a zero variance would make F infinite)
VARIANCE_FLOOR = 1e-4


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
        check_psd_eigenvalues(evals, "the data covariance")  # round-off negatives are raised to the floor below
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

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "GaussianApprox":
        """The same approximation with its tensors cast to ``dtype`` and moved to ``device``."""
        def cast(v: torch.Tensor | None) -> torch.Tensor | None:
            return None if v is None else v.to(dtype=dtype or v.dtype, device=device or v.device)

        return GaussianApprox(self.kind, cast(self.mean), cast(self.variances), cast(self.basis), self.rest, self.shape,
                              self.summary)
