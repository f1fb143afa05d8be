"""The curated Python API (re-exported lazily as ``lazysi.load_model``, ``lazysi.sample``, ...).

Time convention everywhere: t = 0 base (noise or a point mass), t = 1 data.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.generate import sample as _sample_batched
from lazysi.numeric.sampling.registry import resolve

__all__ = ["load_model", "sample"]


def load_model(name: str) -> Model:
    """A model by name (``mnist``, ``mnist-gmm``, ``gaussian``, ``gaussian-full``) or checkpoint path."""
    return Model.load(name)


def sample(model: str | Model, sampler: str, steps: int, n: int, *, seed: int = 0, batch: int = 64,
           grid: str | Sequence[float] | None = None, sigma: float | None = None, mu: str | float = "data",
           nu: float = 1.0, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
           threads: int | None = None, progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, int]:
    """Samples ``0 .. n-1`` of ``model`` with a registered ``sampler`` (``NAME`` or ``NAME@GRID``, see
    ``lazysi.SAMPLERS``) in ``steps`` steps; returns ``(x, NFE per sample)`` with ``x`` float32 on the
    CPU in data space. The same samples as ``lazysi sample`` with the same options, bit for bit,
    for any ``batch`` (at equal ``threads``)."""
    m = model if isinstance(model, Model) else Model.load(model)
    spec = resolve(sampler)
    setup = m.setup(sigma=sigma, mu=mu, frame=spec.frame, nu=nu)
    return _sample_batched(spec, m.provider, steps, n, seed, m.shape, batch=batch, setup=setup, grid=grid, dtype=dtype,
                           device=device, threads=threads, progress=progress)
