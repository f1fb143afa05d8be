"""Lazy samplers and baselines for pretrained models (numeric/lazy.py).

* C13/C14: on N(mu, sigma^2 I) the lazy ODE (centred, Euler) and the lazy point-mass SDE
  (Euler-Maruyama) reproduce, from the same noise, the exact solution with ONE step (and any number);
  the exact solutions are written independently: ``mu + sigma Z`` for the probability-flow ODE and
  ``mu + sigma W_1`` for the point-mass eps*-SDE.
* Baseline orders measured on an exact Gaussian-mixture oracle against a fine RK4 solution.
* Per-sample seeding: a sample does not depend on which other indices are generated with it.
"""
from __future__ import annotations

import math

import pytest
import torch

from lazysi.numeric.fields.gaussian import GaussianProvider, MixtureProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.sampling import generate as gen_module
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.grids import named_grid as make_grid
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.symbolic.families import family



def generate(provider, sampler, steps, indices, seed, shape, *, sigma=1.0, mu=0.0, grid=None):
    """The one generate path with the lazy frame's settings (sigma, mu)."""
    return gen_module.generate(sampler, provider, steps, indices, seed, shape, setup=SamplingSetup(sigma=sigma, mu=mu),
                               grid=grid)


DIM = 5
SIGMA = 0.7
MU = torch.tensor([0.3, -1.2, 0.0, 2.0, 0.5], dtype=torch.float64)
IDX = [0, 1, 2, 3, 17, 40]


def _gauss(name: str = "linear") -> GaussianProvider:
    return GaussianProvider(NumericSchedule(family(name)), MU, SIGMA**2)


def _rel(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got - ref).norm() / ref.norm())


@pytest.mark.parametrize("source, sampler, steps", [("linear", "lazy-ode", 1), ("linear", "lazy-ode", 3),
                                                    ("linear", "lazy-heun", 1), ("linear", "lazy-heun", 3),
                                                    ("linear", "lazy-ab2", 3),
                                                    ("sd3", "lazy-ode", 1), ("sd3", "lazy-heun", 2)])
def test_lazy_ode_exact_on_gaussian(source, sampler, steps):
    x, nfe = generate(_gauss(source), sampler, steps, IDX, 5, (DIM,), sigma=SIGMA, mu=MU)
    z = per_sample_normal(5, IDX, (DIM,))
    assert _rel(x, MU + SIGMA * z) <= 1e-10
    assert nfe == (2 * steps - 1 if sampler == "lazy-heun" else steps)


@pytest.mark.parametrize("grid", ["uniform", "lambda", "edm", "shifted"])
def test_lazy_ode_exact_on_any_grid(grid):
    x, _ = generate(_gauss(), "lazy-ode", 4, IDX, 0, (DIM,), sigma=SIGMA, mu=MU, grid=grid)
    assert _rel(x, MU + SIGMA * per_sample_normal(0, IDX, (DIM,))) <= 1e-10


@pytest.mark.parametrize("steps", [1, 4])
def test_lazy_sde_exact_on_gaussian_pathwise(steps):
    x, nfe = generate(_gauss(), "lazy-sde", steps, IDX, 3, (DIM,), sigma=SIGMA, mu=MU)
    # W_1 of the same path: sum of the per-sample increments sqrt(ds) xi_k on the uniform grid
    xi = per_sample_normal(3, IDX, (steps, DIM), stream="brownian")
    w1 = (xi * math.sqrt(1.0 / steps)).sum(1)
    assert _rel(x, MU + SIGMA * w1) <= 1e-10
    assert nfe == steps


def test_lazy_sde_exact_without_centring():
    """C14: the point-mass eps*-SDE is exact on N(mu, sigma^2 I) even uncentred (constant drift mu)."""
    x, _ = generate(_gauss(), "lazy-sde", 1, IDX, 3, (DIM,), sigma=SIGMA, mu=0.0)
    w1 = per_sample_normal(3, IDX, (1, DIM), stream="brownian")[:, 0]
    assert _rel(x, MU + SIGMA * w1) <= 1e-10


def test_exactness_needs_the_right_sigma_and_mu():
    """Controls: the same one-step samplers with a wrong scale or no centring are NOT exact."""
    z = per_sample_normal(5, IDX, (DIM,))
    exact = MU + SIGMA * z
    x, _ = generate(_gauss(), "lazy-ode", 1, IDX, 5, (DIM,), sigma=1.0, mu=MU)
    assert _rel(x, exact) > 1e-2
    x, _ = generate(_gauss(), "lazy-ode", 1, IDX, 5, (DIM,), sigma=SIGMA, mu=0.0)
    assert _rel(x, exact) > 1e-2
    x, _ = generate(_gauss(), "euler", 1, IDX, 5, (DIM,))
    assert _rel(x, exact) > 1e-2


def _mixture2d() -> MixtureProvider:
    sch = NumericSchedule(family("linear"))
    means = torch.tensor([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.5]], dtype=torch.float64)
    covs = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.4]], [[0.25, -0.1], [-0.1, 0.3]]],
                        dtype=torch.float64)
    return MixtureProvider(sch, torch.tensor([0.3, 0.4, 0.3], dtype=torch.float64), means, covs)


IDX2 = list(range(16))


@pytest.fixture(scope="module")
def mixture_reference():
    prov = _mixture2d()
    ref, _ = generate(prov, "rk4", 128, IDX2, 11, (2,))
    return prov, ref


@pytest.mark.parametrize("sampler, order", [("euler", 1.0), ("midpoint", 2.0), ("heun", 2.0), ("rk4", 4.0),
                                            ("lazy-ode", 1.0), ("lazy-heun", 2.0), ("lazy-ab2", 2.0)])
def test_measured_orders_on_mixture(mixture_reference, sampler, order):
    """Error slope against a 128-step RK4 solution of the training-schedule ODE from the same noise
    (the lazy samplers solve the SAME flow map after conversion, C4)."""
    prov, ref = mixture_reference
    ns = [8, 16, 32]
    errs = []
    for n in ns:
        x, _ = generate(prov, sampler, n, IDX2, 11, (2,), sigma=SIGMA, mu=torch.tensor([0.0, 0.1], dtype=torch.float64))
        errs.append(float((x - ref).norm()))
    slopes = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
    assert abs(slopes[-1] - order) < 0.35, f"{sampler}: errors {errs}, slopes {slopes}"


def test_reference_and_em_run(mixture_reference):
    prov, ref = mixture_reference
    x, nfe = generate(prov, "reference", 4, IDX2, 11, (2,))  # RK4 with 256 uniform steps
    assert nfe == 4 * 256 and float((x - ref).norm() / ref.norm()) < 1e-7
    x, nfe = generate(prov, "em", 8, IDX2, 11, (2,))
    assert nfe == 8 and torch.isfinite(x).all()


@pytest.mark.parametrize("sampler", ["lazy-ode", "lazy-sde", "em", "heun"])
def test_sample_does_not_depend_on_its_batch(sampler):
    prov = _mixture2d()
    full, _ = generate(prov, sampler, 3, [0, 1, 2, 3, 4, 5], 9, (2,), sigma=SIGMA)
    a, _ = generate(prov, sampler, 3, [0, 1, 2], 9, (2,), sigma=SIGMA)
    b, _ = generate(prov, sampler, 3, [5, 3], 9, (2,), sigma=SIGMA)
    assert torch.equal(full[:3], a) and torch.equal(full[5], b[0]) and torch.equal(full[3], b[1])
    other, _ = generate(prov, sampler, 3, [0, 1, 2], 10, (2,), sigma=SIGMA)
    assert not torch.equal(a, other)  # the seed matters


def test_bad_options_raise():
    prov = _gauss()
    with pytest.raises(ValueError, match="unknown sampler"):
        generate(prov, "ddim", 2, IDX, 0, (DIM,))
    with pytest.raises(ValueError, match="steps"):
        generate(prov, "euler", 0, IDX, 0, (DIM,))
    with pytest.raises(ValueError, match="sigma"):
        generate(prov, "lazy-ode", 2, IDX, 0, (DIM,), sigma=-1.0)
    with pytest.raises(ValueError, match="unknown grid"):
        make_grid("cosine", NumericSchedule(family("linear")), 4)
