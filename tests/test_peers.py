"""Peers (diffusers schedulers, flow_matching ODESolver) on the same lazysi model: on exact
Gaussian data each converges to the exact transport map as NFE grows, NFE counts are right, and
the sign/time conventions are converted (a wrong sign or sigma = t would not converge)."""
from __future__ import annotations

import math

import pytest
import torch

from lazysi.numeric.models.zoo import load_model
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.methods import Noise
from lazysi.numeric.sampling.peers import PEERS, diffusers_scheduler, peer_available
from lazysi.numeric.sampling.registry import resolve
from lazysi.numeric.sampling.seeding import per_sample_normal


def generate_peer(provider, name, nfe, indices, seed, shape):
    """A peer at exactly ``nfe`` evaluations through the one generate path."""
    return generate(name, provider, resolve(name).steps_for(nfe), indices, seed, shape)


def peer_sample(provider, name, nfe, x0):
    """A peer's own loop from ``x0`` at ``nfe`` evaluations (errors as the registry raises them)."""
    spec = resolve(name)
    steps = spec.steps_for(nfe)
    if steps is None:
        raise ValueError(f"{name} cannot run at nfe {nfe}")
    return spec.method.solve(provider, steps, None, x0, Noise(0, tuple(range(x0.shape[0])), tuple(x0.shape[1:])),
                             SamplingSetup())

pytestmark = pytest.mark.skipif(not all(peer_available(p) for p in PEERS), reason="bench extra not installed")


def _exact(card, z, t0: float = 0.0):
    """Exact flow map of the linear-schedule ODE from (t0, z) to t = 1 for N(mu, Sigma) data: in the
    eigenbasis, w = u^T (x - t mu) scales with the marginal std sqrt((1 - t)^2 + t^2 d) of
    I_t = (1 - t) Z + t X (definition of the interpolant)."""
    mu = torch.tensor(card["mean"], dtype=torch.float64)
    cov = torch.as_tensor(card["cov"], dtype=torch.float64)
    if cov.ndim == 0:
        cov = cov * torch.eye(mu.numel(), dtype=torch.float64)
    ev, u = torch.linalg.eigh(cov)
    gain = ev.sqrt() / torch.sqrt((1 - t0) ** 2 + t0**2 * ev)
    return mu + (z - t0 * mu) @ (u @ torch.diag(gain) @ u.T)


def _start_time(name: str, nfe: int) -> float:
    """lazysi time of the peer's first grid point (diffusers' DPM-Solver with flow sigmas starts at
    sigma = 1 - 1/num_train_timesteps, not at pure noise)."""
    if name == "fm-midpoint":
        return 0.0
    sched = diffusers_scheduler(name)
    sched.set_timesteps(num_inference_steps=nfe)
    return 1.0 - float(sched.sigmas[0])


@pytest.mark.parametrize("name", ["fm-euler", "dpm++2m", "unipc", "fm-midpoint"])  # the others: test_peer_solvers.py
def test_peer_converges_on_anisotropic_gaussian(name):
    provider, card = load_model("gaussian-full")
    idx = list(range(16))
    z = per_sample_normal(0, idx, (8,))
    errs = {}
    for nfe in (4, 16, 64):
        x, calls = generate_peer(provider, name, nfe, idx, 0, (8,))
        assert calls == nfe
        errs[nfe] = float((x - _exact(card, z, _start_time(name, nfe))).abs().max())
    assert errs[16] < errs[4] and errs[64] < errs[16], errs
    # measured order from 16 -> 64: first order gains ~4x, the second-order peers ~16x
    order = math.log(errs[16] / errs[64]) / math.log(4.0)
    if name == "fm-euler":
        assert 0.85 < order < 1.3, (errs, order)
    elif name == "dpm++2m":
        # measured ~1.2: with flow sigmas its grid starts at lambda = log(0.001/0.999) and its first
        # (first-order) step spans several units of lambda, which dominates up to NFE 64
        assert order > 0.9, (errs, order)
    else:
        assert order > 1.6, (errs, order)


def test_fm_euler_is_lazysi_euler():
    """diffusers' flow-matching Euler and lazysi's Euler are the same method on almost the same grid
    (diffusers stops at sigma = 1/1000 before the last step): errors agree closely at NFE 64."""
    provider, card = load_model("gaussian-full")
    idx = list(range(16))
    exact = _exact(card, per_sample_normal(0, idx, (8,)))
    ours, _ = generate("euler", provider, 64, idx, 0, (8,))
    theirs, _ = generate_peer(provider, "fm-euler", 64, idx, 0, (8,))
    ref = float((ours - exact).abs().max())
    assert 0.8 * ref < float((theirs - exact).abs().max()) < 1.25 * ref


def test_errors():
    provider, _ = load_model("gaussian")
    x0 = torch.zeros(2, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="cannot run at nfe 3"):  # two evaluations per step
        peer_sample(provider, "fm-midpoint", 3, x0)
    with pytest.raises(ValueError, match="unknown sampler"):
        peer_sample(provider, "ddim", 4, x0)
    with pytest.raises(ValueError, match="nfe"):
        peer_sample(provider, "unipc", 0, x0)
    from lazysi.numeric.fields.gaussian import GaussianProvider
    from lazysi.numeric.fields.schedule import NumericSchedule
    from lazysi.symbolic.families import family

    vp = GaussianProvider(NumericSchedule(family("vp")), torch.zeros(8, dtype=torch.float64), 0.25)
    with pytest.raises(ValueError, match="linear schedule"):
        peer_sample(vp, "unipc", 4, x0)
