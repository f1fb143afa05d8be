"""One helper for symmetric positive semi-definite matrices (covariances): ``eigh`` with one rule
for what counts as round-off.

An eigenvalue below ``-PSD_RTOL * max|eigenvalue|`` means the matrix is not a covariance (raise,
naming it); a negative eigenvalue above that is round-off and becomes 0. The same rule serves the
Gaussian fields, the Gaussian approximation of a model's data and the Fréchet distance.
"""
from __future__ import annotations

import torch

__all__ = ["PSD_RTOL", "check_psd_eigenvalues", "psd_eigh"]

#: relative size of a negative eigenvalue still taken for round-off (float64 covariances estimated
#: from data, or products of square roots, are PSD to ~1e-12 relative; 1e-8 leaves room)
PSD_RTOL = 1e-8


def check_psd_eigenvalues(w: torch.Tensor, name: str, rtol: float = PSD_RTOL) -> None:
    """Raise ``ValueError`` naming ``name`` when an eigenvalue (last dimension) is more negative than
    ``-rtol * max|eigenvalue|`` of its matrix."""
    if w.numel() == 0:
        return
    scale = w.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    if bool((w < -rtol * scale).any()):
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {float(w.min()):.3g}, "
                         f"largest |eigenvalue| {float(scale.max()):.3g})")


def psd_eigh(a: torch.Tensor, name: str = "matrix", rtol: float = PSD_RTOL) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d, U)`` of the symmetric PSD matrices ``a`` (..., D, D), ``d >= 0`` ascending; a batch of
    matrices is decomposed one at a time (faster than the batched driver on CPU)."""
    if a.ndim == 3:
        pairs = [torch.linalg.eigh(c) for c in a]
        d, u = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    else:
        d, u = torch.linalg.eigh(a)
    check_psd_eigenvalues(d, name, rtol)
    return d.clamp_min(0.0), u
