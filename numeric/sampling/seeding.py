"""Per-sample seeding: sample i's randomness depends only on (seed, i).

So a batch's samples do not depend on the batch size, the number of processes, or which rank
produced them (EDM's habit). Each sample gets its own ``torch.Generator`` seeded from a hash
of (seed, index, stream); ``stream`` separates independent uses (initial noise, SDE increments).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

__all__ = ["sample_seed", "per_sample_normal"]


def sample_seed(seed: int, index: int, stream: str = "noise") -> int:
    """A 63-bit seed derived from (seed, index, stream) with sha256 (stable across platforms)."""
    if index < 0 or seed < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    digest = hashlib.sha256(f"{seed}:{index}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def per_sample_normal(
    seed: int,
    indices: Sequence[int] | torch.Tensor,
    shape: Sequence[int],
    *,
    stream: str = "noise",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Standard normal tensor of shape ``(len(indices), *shape)``; row j depends only on
    ``(seed, indices[j], stream)``. Drawn in float64 on the CPU, then cast and moved, so the values
    are identical on every device."""
    idx = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
    rows = []
    for i in idx:
        g = torch.Generator(device="cpu")
        g.manual_seed(sample_seed(seed, i, stream))
        rows.append(torch.randn(tuple(shape), generator=g, dtype=torch.float64))
    out = torch.stack(rows) if rows else torch.empty((0, *shape), dtype=torch.float64)
    return out.to(dtype=dtype, device=device)
