"""One root finder for the increasing maps of [0, 1] (lambda, tau): float64 bisection."""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["BISECTION_STEPS", "invert_increasing"]

#: halvings of [0, 1]: beyond float64 resolution everywhere in (0, 1)
BISECTION_STEPS = 110


def invert_increasing(f: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor,
                      steps: int = BISECTION_STEPS) -> torch.Tensor:
    """``t`` in [0, 1] with ``f(t) = target`` (elementwise) for an increasing ``f``, by bisection of
    [0, 1] in float64 (the midpoint of the final bracket). Callers set exact endpoint values."""
    target = torch.as_tensor(target, dtype=torch.float64)
    lo, hi = torch.zeros_like(target), torch.ones_like(target)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        below = f(mid) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)
