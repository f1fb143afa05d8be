"""The one generate path: (sampler spec, model, steps, grid, indices, seed) -> samples and NFE.

Used by ``lazysi sample`` (plain and sharded), ``lazysi bench``, the benchmark scripts and Python
users (``lazysi.sample``). Time runs forward, t = 0 base -> t = 1 data, on float64 grids.

Guarantees, tested for every registered sampler: sample ``i`` depends only on ``(seed, i)``, the
options and the intra-op thread count — never on which other indices share its batch (every model
call has exactly :data:`MIN_ROWS` rows, :class:`MinRowsProvider`), so results are bit-identical
for any batch size, shard size and world size at equal ``threads``. ``threads`` fixes torch's
intra-op thread count for the call (None: leave it; torchrun starts ranks with one thread, a plain
process with all cores, and e.g. the embedded U-Net's convolutions round differently at different
thread counts, so pass the same ``threads`` to compare runs bit for bit). The returned NFE is
counted, not declared (:class:`CountingProvider`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.sampling.frames import PILOT_GRIDS, SamplingSetup
from lazysi.numeric.sampling.methods import Noise
from lazysi.numeric.sampling.rows import MIN_ROWS, CountingProvider, MinRowsProvider, fixed_rows
from lazysi.numeric.sampling.pilot import pilot_grid
from lazysi.numeric.sampling.registry import SamplerSpec, resolve

__all__ = ["MIN_ROWS", "CountingProvider", "MinRowsProvider", "intra_op_threads", "generate", "sample", "sample_batched"]

@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[int]:
    """Run the block with torch's intra-op thread count set to ``threads`` (None: unchanged);
    yields the count in effect and restores the previous one."""
    before = torch.get_num_threads()
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def generate(
    sampler: str | SamplerSpec,
    provider: FieldProvider,
    steps: int,
    indices: Sequence[int],
    seed: int,
    shape: Sequence[int],
    *,
    setup: SamplingSetup | None = None,
    grid: str | Sequence[float] | torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    min_rows: int = MIN_ROWS,
    threads: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Samples for the explicit ``indices`` (one row each, data space, shape ``(len(indices), *shape)``)
    and the number of model evaluations used per sample (counted).

    ``provider``: the model on its training schedule; ``setup``: its lazy data scale, centring mean,
    Gaussian approximation (:meth:`lazysi.numeric.models.model.Model.setup` builds it); ``grid``:
    a grid name of the sampler (a pilot grid, ``dp`` or ``ctrl``, is built from pilot runs of
    ``provider``, :mod:`~lazysi.numeric.sampling.pilot`; its model calls are not counted in the
    returned NFE), ``steps + 1`` explicit times, or None for the sampler's default.
    ``min_rows`` pads every model call to at least that many rows (see :class:`MinRowsProvider`);
    pass 1 for a network whose conditioning is tied to the batch.
    """
    spec = resolve(sampler)
    n = spec.run_steps(steps)
    setup = setup if setup is not None else SamplingSetup()
    if spec.frame.gaussian and setup.approx is None:
        raise ValueError(f"{spec.name} integrates in the Gaussian frame: pass a setup with a Gaussian approximation")
    if spec.fixed_grid and grid is not None and grid != spec.grid:
        raise ValueError(f"{spec.name} always runs on its {spec.grid} grid")
    if spec.grid is None and grid is not None and not getattr(spec.method, "explicit_grid", False):
        raise ValueError(f"{spec.name} runs on its own grid; no grid can be given")
    idx = tuple(int(i) for i in indices)
    shape = tuple(int(s) for s in shape)
    with intra_op_threads(threads):
        counter = CountingProvider(fixed_rows(provider, min_rows))
        field = spec.frame.provider(counter, setup)
        kind = spec.grid if grid is None else grid
        if isinstance(kind, str) and kind in PILOT_GRIDS:  # built from pilot runs of the model
            tgrid = pilot_grid(kind, spec, provider, setup, n, shape, min_rows)[0]
        else:
            tgrid = None if kind is None else spec.frame.grid(kind, field.schedule, n, setup)
        x0 = spec.frame.initial(seed, idx, shape, dtype, device, field.schedule)
        x1 = spec.method.solve(field, n, tgrid, x0, Noise(seed, idx, shape), setup)
        return spec.frame.finish(x1, setup, field.schedule), counter.calls


def sample_batched(generate_fn: Callable[[list[int]], tuple[torch.Tensor, int]], n: int, batch: int,
                   progress: Callable[[int], None] | None = None, start: int = 0) -> tuple[torch.Tensor, int]:
    """``generate_fn(indices) -> (samples, NFE)`` over ``start .. n-1`` in batches of ``batch``; returns
    the samples (float32, CPU) and the NFE per sample; ``progress(k)`` after each batch of k samples.
    With per-sample seeding inside ``generate_fn`` the result does not depend on ``batch``."""
    if n < 1 or batch < 1:
        raise ValueError(f"n and batch must be >= 1, got n={n}, batch={batch}")
    chunks, nfe = [], 0
    for lo in range(start, n, batch):
        idx = list(range(lo, min(lo + batch, n)))
        x, nfe = generate_fn(idx)
        chunks.append(x.detach().to("cpu", torch.float32))
        if progress is not None:
            progress(len(idx))
    return torch.cat(chunks), nfe


def sample(
    sampler: str | SamplerSpec,
    provider: FieldProvider,
    steps: int,
    n: int,
    seed: int,
    shape: Sequence[int],
    *,
    batch: int = 64,
    setup: SamplingSetup | None = None,
    grid: str | Sequence[float] | torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, int]:
    """Samples ``0 .. n-1`` in batches of ``batch`` (float32, CPU, data space) and the NFE per sample;
    equal to :func:`generate` on ``range(n)``, bit for bit, whatever ``batch`` is."""
    return sample_batched(
        lambda idx: generate(sampler, provider, steps, idx, seed, shape, setup=setup, grid=grid, dtype=dtype,
                             device=device, threads=threads),
        n, batch, progress)
