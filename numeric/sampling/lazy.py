"""Lazy samplers for pretrained models, and the baselines on the training schedule.

Time runs forward, t = 0 base -> t = 1 data, on explicit float64 grids. A model is a
:class:`~lazysi.numeric.fields.providers.FieldProvider` on its training schedule A (see
:mod:`lazysi.numeric.models.adapters` and :mod:`lazysi.numeric.models.zoo`).

Lazy samplers (MATH.md, "Applying it to a pretrained flow model") run in a lazy schedule B and
evaluate the model through the conversion C4, ``eta_B(s, x) = eta_A(tau(s), x / c_s)``
(:class:`~lazysi.numeric.fields.convert.ConvertedProvider`), on CENTRED data ``X - mu``
(:class:`CentredProvider`, C14: ``eta_{X-mu}(t, x') = eta_X(t, x' + beta_t mu) - mu``):

* ``lazy-ode``: Euler on the probability-flow ODE of ``vp(sigma)``: ``alpha = cos(pi s/2)``,
  ``beta = sin(pi s/2)/sigma``; start at ``Z``, output ``sigma x_1 + mu``. Exact in one step on
  ``N(mu, sigma^2 I)`` data (C13: the velocity vanishes there).
* ``lazy-heun``: Heun (order 2) on the same lazy ODE; as in EDM (Karras et al. 2022, Alg. 1) the
  step into the data end is an Euler step (no correction there), so NFE = 2 steps - 1.
* ``lazy-ab2``: variable-step Adams-Bashforth 2 (order 2, one evaluation per step; Euler first step)
  on the same lazy ODE.
* ``lazy-sde``: Euler-Maruyama on the eps*-SDE of ``point-mass(sigma)``: ``beta = s``,
  ``alpha = sigma sqrt(s (1 - s))``; start at 0, output ``x_1 + mu``. Exact on ``N(mu, sigma^2 I)``
  (C12-C14: the drift vanishes on centred data, the noise is ``sigma dW``).

Baselines on the training schedule A: ``euler``, ``heun`` (EDM's, as above), ``midpoint``, ``rk4`` (probability-flow
ODE from ``Z``), ``em`` (Euler-Maruyama with ``eps = eps*``; eps* is infinite at a standard base,
C3, so the first step, from t = 0, is a probability-flow Euler step) and ``reference``
(RK4 with ``max(steps, REFERENCE_STEPS)`` uniform steps).

Grids (``grid``): ``uniform`` in the sampler's own time; ``lambda`` uniform in its half log-SNR
between its times ``LAMBDA_CLIP`` and ``1 - LAMBDA_CLIP``, end points then moved to 0 and 1;
``edm`` (Karras rho = 7 noise levels, sigma_max = 80, last step to the data; first point moved to
0); ``shifted`` (SD3 shift ``shift``).

Per-sample randomness: sample i's initial noise and Brownian increments depend only on
``(seed, i)`` (:mod:`lazysi.numeric.sampling.seeding`), so :func:`generate` for an explicit list of indices
is what shards a run across processes.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lazysi.symbolic.families import family

from lazysi.numeric.sampling import grids
from lazysi.numeric.sampling.brownian import BrownianPath
from lazysi.numeric.fields.convert import ConvertedProvider, NumericConversion
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import Diffusion, FieldProvider, broadcast_time
from lazysi.numeric.sampling.solvers import ODE, SDE, Solver, get_solver, integrate, provider_ode, provider_sde
from lazysi.numeric.sampling.seeding import per_sample_normal

__all__ = [
    "SAMPLERS",
    "GRIDS",
    "REFERENCE_STEPS",
    "LAMBDA_CLIP",
    "SamplerSpec",
    "CentredProvider",
    "CountingProvider",
    "MinRowsProvider",
    "lazy_provider",
    "make_grid",
    "generate",
    "sample",
    "sample_batched",
]

REFERENCE_STEPS = 256
LAMBDA_CLIP = 0.02
GRIDS = ("uniform", "lambda", "edm", "shifted")


@dataclass(frozen=True)
class SamplerSpec:
    """``frame``: ``lazy-vp``, ``lazy-pm`` or ``train``; ``solver``: a name of
    :data:`lazysi.numeric.sampling.solvers.SOLVERS`; ``evals``: model evaluations per step."""

    name: str
    frame: str
    solver: str
    evals: int
    description: str


SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("lazy-ode", "lazy-vp", "euler", 1, "Euler on the lazy VP ODE (centred, scale sigma)"),
        SamplerSpec("lazy-heun", "lazy-vp", "heun", 2, "Heun (EDM: Euler last step) on the lazy VP ODE (centred, scale sigma)"),
        SamplerSpec("lazy-ab2", "lazy-vp", "ab2", 1, "Adams-Bashforth 2 (variable step) on the lazy VP ODE"),
        SamplerSpec("lazy-sde", "lazy-pm", "em", 1, "Euler-Maruyama on the point-mass eps*-SDE"),
        SamplerSpec("euler", "train", "euler", 1, "Euler on the training schedule's ODE"),
        SamplerSpec("heun", "train", "heun", 2, "Heun (EDM: Euler last step) on the training schedule's ODE"),
        SamplerSpec("midpoint", "train", "midpoint", 2, "midpoint on the training schedule's ODE"),
        SamplerSpec("rk4", "train", "rk4", 4, "RK4 on the training schedule's ODE"),
        SamplerSpec("em", "train", "em", 1, "Euler-Maruyama with eps* on the training schedule"),
        SamplerSpec("reference", "train", "rk4", 4, f"RK4, max(steps, {REFERENCE_STEPS}) uniform steps"),
    )
}


_CONVERSIONS: dict[tuple[str, str, float], tuple[NumericSchedule, NumericConversion]] = {}


class CentredProvider(FieldProvider):
    """Fields of the centred data ``X - mu`` under the same schedule (C14):
    ``eta_{X-mu}(t, x') = eta_X(t, x' + beta_t mu) - mu``, ``eta_Z(t, x') = eta_Z(t, x' + beta_t mu)``
    (``x' = x - beta_t mu``). ``mu`` has the event shape (or is a scalar)."""

    def __init__(self, source: FieldProvider, mu: torch.Tensor):
        self.source = source
        self.schedule = source.schedule
        self.mu = torch.as_tensor(mu, dtype=torch.float64)

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mu.to(dtype=x.dtype, device=x.device)
        beta = self.schedule.beta(broadcast_time(t, x))
        eta_x, eta_z = self.source.fields(t, x + beta * mu)
        return eta_x - mu, eta_z


MIN_ROWS = 8


class MinRowsProvider(FieldProvider):
    """Evaluates ``source`` on at least ``min_rows`` rows, padding with zero rows that are dropped.

    Batched kernels (convolutions, matrix products) may switch algorithms, and so round differently,
    for very small batches (measured on CPU: batches of 1-4 for the U-Net, 1 for the mixture); with
    padding a sample's value does not depend on how many samples share its batch. Rows are
    independent, so the padding never changes the other rows' values beyond that rounding."""

    def __init__(self, source: FieldProvider, min_rows: int = MIN_ROWS):
        self.source = source
        self.schedule = source.schedule
        self.min_rows = min_rows

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if n >= self.min_rows:
            return self.source.fields(t, x)
        pad = self.min_rows - n
        xp = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
        tt = torch.as_tensor(t)
        if tt.ndim == 1 and tt.shape[0] == n and n > 1:
            tt = torch.cat([tt, tt[-1:].expand(pad)])
        eta_x, eta_z = self.source.fields(tt if tt.ndim == 1 and tt.shape[0] == self.min_rows else t, xp)
        return eta_x[:n], eta_z[:n]


class CountingProvider(FieldProvider):
    """Counts ``fields`` calls (network evaluations) of ``source``."""

    def __init__(self, source: FieldProvider):
        self.source = source
        self.schedule = source.schedule
        self.calls = 0

    def fields(self, t, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.source.fields(t, x)


def lazy_provider(provider: FieldProvider, frame: str, sigma: float, mu: torch.Tensor | float) -> ConvertedProvider:
    """The model as a provider on the lazy schedule ``vp(sigma)`` (``frame = "lazy-vp"``) or
    ``point-mass(sigma)`` (``"lazy-pm"``), for the centred data ``X - mu``."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be positive and finite, got {sigma}")
    name = {"lazy-vp": "vp", "lazy-pm": "point-mass"}.get(frame)
    if name is None:
        raise ValueError(f"unknown lazy frame {frame!r}")
    key = (repr(provider.schedule.schedule), name, float(sigma))
    if key not in _CONVERSIONS:  # building a conversion is symbolic work (seconds): once per process
        target = NumericSchedule(family(name, sigma=sigma))
        _CONVERSIONS[key] = (target, NumericConversion(provider.schedule, target.schedule))
    target, conversion = _CONVERSIONS[key]
    return ConvertedProvider(CentredProvider(provider, torch.as_tensor(mu, dtype=torch.float64)), target, conversion)


def make_grid(kind: str, schedule: NumericSchedule, steps: int, shift: float = 3.0) -> torch.Tensor:
    """A float64 grid of ``steps + 1`` times from 0 to 1 in ``schedule``'s time (see module doc)."""
    if kind == "uniform":
        return grids.uniform(steps)
    if kind == "lambda":
        g = grids.uniform_lambda(schedule, steps, LAMBDA_CLIP, 1.0 - LAMBDA_CLIP)
        g[0], g[-1] = 0.0, 1.0
        return grids.check_grid(g)
    if kind == "edm":
        g = grids.edm(schedule, steps).clone()
        g[0] = 0.0
        return grids.check_grid(g)
    if kind == "shifted":
        return grids.check_grid(grids.shifted(steps, shift))
    raise ValueError(f"unknown grid {kind!r}; known: {', '.join(GRIDS)}")


def _brownian(grid: torch.Tensor, seed: int, indices: Sequence[int], shape: Sequence[int]) -> BrownianPath:
    """Brownian path on ``grid`` whose row j depends only on ``(seed, indices[j])`` (same stream and
    construction as :meth:`BrownianPath.sample`)."""
    n = grid.numel()
    xi = per_sample_normal(seed, indices, (n - 1, *shape), stream="brownian")
    dt = (grid[1:] - grid[:-1]).reshape((n - 1,) + (1,) * (1 + len(shape)))
    inc = xi.movedim(0, 1) * dt.sqrt()
    zero = torch.zeros((1, len(indices), *shape), dtype=torch.float64)
    return BrownianPath(grid, torch.cat([zero, inc.cumsum(0)]))


def _ab2_step(field: ODE, t0: torch.Tensor, t1: torch.Tensor, x: torch.Tensor, state):
    """Variable-step Adams-Bashforth 2: ``x + h [(1 + r/2) f_n - (r/2) f_{n-1}]``, ``r = h / h_prev``;
    the first step (no history, ``state = None``) is Euler. ``state = (h_prev, f_prev)``. One
    evaluation per step, order 2."""
    h = t1 - t0
    f = field.velocity(t0, x)
    if state is None:
        return x + h * f, (h, f)
    h_prev, f_prev = state
    r = h / h_prev
    return x + h * ((1 + 0.5 * r) * f - (0.5 * r) * f_prev), (h, f)


AB2 = Solver("ab2", "ode", 2.0, _ab2_step)


def _solver(name: str) -> Solver:
    return AB2 if name == "ab2" else get_solver(name)


def _run(spec: SamplerSpec, provider: FieldProvider, grid: torch.Tensor, x0: torch.Tensor,
         path: BrownianPath | None) -> torch.Tensor:
    solver = _solver(spec.solver)
    if spec.solver == "heun":
        # EDM's Heun (Karras et al. 2022, Alg. 1): no correction on the step into the data end
        ode = provider_ode(provider)
        x = integrate(solver, ode, grid[:-1], x0) if grid.numel() > 2 else x0
        return integrate("euler", ode, grid[-2:], x)
    if solver.kind == "ode":
        return integrate(solver, provider_ode(provider), grid, x0)
    assert path is not None
    if spec.frame == "train":
        # eps* is infinite at the standard base (C3): first step on the probability-flow ODE
        x1 = integrate("euler", provider_ode(provider), grid[:2], x0)
        if grid.numel() == 2:
            return x1
        return integrate(solver, provider_sde(provider, Diffusion.optimal(1.0)), grid[1:], x1, state=path)
    return integrate(solver, provider_sde(provider, Diffusion.optimal(1.0)), grid, x0, state=path)


def generate(
    provider: FieldProvider,
    sampler: str,
    steps: int,
    indices: Sequence[int],
    seed: int,
    shape: Sequence[int],
    *,
    sigma: float = 1.0,
    mu: torch.Tensor | float = 0.0,
    grid: str = "uniform",
    shift: float = 3.0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    min_rows: int = MIN_ROWS,
) -> tuple[torch.Tensor, int]:
    """Samples for the explicit ``indices`` (one row each, data space, shape ``(len(indices), *shape)``)
    and the number of model evaluations used (per sample).

    ``provider`` is the model on its training schedule; ``sigma, mu`` set the lazy frame (ignored by
    the baselines). Row j depends only on ``(seed, indices[j])`` and the options, never on which
    other indices are generated together. ``min_rows`` pads every model call to at least that many
    rows (see :class:`MinRowsProvider`); pass 1 for a network whose conditioning is tied to the
    batch (e.g. a transformer with fixed per-row prompt embeddings).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    spec = SAMPLERS[sampler]
    shape = tuple(int(s) for s in shape)
    counter = CountingProvider(MinRowsProvider(provider, min_rows) if min_rows > 1 else provider)
    mu_t = torch.as_tensor(mu, dtype=torch.float64)
    if spec.frame == "train":
        field: FieldProvider = counter
    else:
        field = lazy_provider(counter, spec.frame, sigma, mu_t)
    n_steps = max(steps, REFERENCE_STEPS) if sampler == "reference" else steps
    tgrid = make_grid("uniform" if sampler == "reference" else grid, field.schedule, n_steps, shift)
    idx = [int(i) for i in indices]
    if spec.frame == "lazy-pm":
        x0 = torch.zeros((len(idx), *shape), dtype=dtype, device=device)
    else:
        x0 = per_sample_normal(seed, idx, shape, dtype=dtype, device=device)
    path = _brownian(tgrid, seed, idx, shape) if _solver(spec.solver).kind == "sde" else None
    if path is not None and torch.device(device).type != "cpu":
        path = BrownianPath(path.times, path.values.to(device))
    x1 = _run(spec, field, tgrid, x0, path)
    if spec.frame == "lazy-vp":
        x1 = sigma * x1 + mu_t.to(dtype=dtype, device=device)
    elif spec.frame == "lazy-pm":
        x1 = x1 + mu_t.to(dtype=dtype, device=device)
    return x1, counter.calls


def sample(
    provider: FieldProvider,
    sampler: str,
    steps: int,
    n: int,
    seed: int,
    shape: Sequence[int],
    *,
    batch: int = 64,
    sigma: float = 1.0,
    mu: torch.Tensor | float = 0.0,
    grid: str = "uniform",
    shift: float = 3.0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, int]:
    """Samples ``0 .. n-1`` in batches of ``batch`` (float32, CPU, data space) and the NFE per sample;
    ``progress(k)`` is called after each batch of k samples. Equal to :func:`generate` on
    ``range(n)``, bit for bit, whatever ``batch`` is."""
    return sample_batched(
        lambda idx: generate(provider, sampler, steps, idx, seed, shape, sigma=sigma, mu=mu, grid=grid, shift=shift,
                             dtype=dtype, device=device),
        n, batch, progress)


def sample_batched(generate_fn: Callable[[list[int]], tuple[torch.Tensor, int]], n: int, batch: int,
                   progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, int]:
    """``generate_fn(indices) -> (samples, NFE)`` over ``0 .. n-1`` in batches of ``batch``; returns the
    samples (float32, CPU) and the NFE per sample; ``progress(k)`` after each batch of k samples.
    With per-sample seeding inside ``generate_fn`` the result does not depend on ``batch``."""
    if n < 1 or batch < 1:
        raise ValueError(f"n and batch must be >= 1, got n={n}, batch={batch}")
    chunks, nfe = [], 0
    for start in range(0, n, batch):
        idx = list(range(start, min(start + batch, n)))
        x, nfe = generate_fn(idx)
        chunks.append(x.detach().to("cpu", torch.float32))
        if progress is not None:
            progress(len(idx))
    return torch.cat(chunks), nfe
