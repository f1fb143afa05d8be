"""Model calls of a fixed number of rows (batch invariance) and counted calls (NFE), for the one
generate path (:mod:`lazysi.numeric.sampling.generate`) and the pilots
(:mod:`lazysi.numeric.sampling.pilot`)."""
from __future__ import annotations

import torch

from lazysi.numeric.fields.providers import FieldProvider

__all__ = ["MIN_ROWS", "MinRowsProvider", "CountingProvider", "fixed_rows"]

MIN_ROWS = 8


class MinRowsProvider(FieldProvider):
    """Evaluates ``source`` in calls of exactly ``min_rows`` rows: the batch is cut into blocks of
    that size and the last block is padded with zero rows that are dropped.

    Batched kernels choose their algorithm by batch size (measured on CPU: the U-Net's float32
    convolutions give a row 7e-7 apart in a 16-row and in an 8-row call; the mixture's matrix
    products treat the tail rows 8-10 of an 11-row batch differently, 1e-15), so a sample's value
    would depend on how many samples share its batch. In calls of one fixed size whose rows are
    independent it does not (measured: a row's value does not depend on its position in such a
    call; the test suite checks every sampler on every embedded model). On the CPU the blocks cost
    nothing measurable (U-Net, 64 rows: 0.34 s in one call, 0.32 s in eight); on a GPU pass a
    larger ``min_rows`` (the guarantee then holds at that call size)."""

    def __init__(self, source: FieldProvider, min_rows: int = MIN_ROWS):
        self.source = source
        self.schedule = source.schedule
        self.min_rows = min_rows

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, k = x.shape[0], self.min_rows
        tt = torch.as_tensor(t)
        per_row = tt.ndim == 1 and tt.shape[0] == n and n > 1
        distinct = per_row and bool((tt != tt[0]).any())
        if n == k and not distinct:
            return self.source.fields(t, x)
        # rows at different times (an adaptive sampler): a model's batched per-row computations round
        # by position, so each row gets a call of its own (padded like any other)
        block = 1 if distinct else k
        outs_x, outs_z = [], []
        for lo in range(0, n, block):
            xb, tb = x[lo:lo + block], (tt[lo:lo + block] if per_row else t)
            m = xb.shape[0]
            if m < k:
                xb = torch.cat([xb, xb.new_zeros((k - m, *x.shape[1:]))])
                if per_row:
                    tb = torch.cat([tb, tb[-1:].expand(k - m)])
            ex, ez = self.source.fields(tb, xb)
            outs_x.append(ex[:m])
            outs_z.append(ez[:m])
        return torch.cat(outs_x), torch.cat(outs_z)


class CountingProvider(FieldProvider):
    """Counts ``fields`` calls (network evaluations) of ``source``."""

    def __init__(self, source: FieldProvider):
        self.source = source
        self.schedule = source.schedule
        self.calls = 0

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.source.fields(t, x)


def fixed_rows(provider: FieldProvider, min_rows: int = MIN_ROWS) -> FieldProvider:
    """``provider`` evaluated in calls of exactly ``min_rows`` rows (:class:`MinRowsProvider`); itself
    for ``min_rows`` 1 (a network whose conditioning is tied to the batch)."""
    return MinRowsProvider(provider, min_rows) if min_rows > 1 else provider
