"""LazyFlowMatchScheduler against lazysi's own lazy sampler, offline, in float64.

Oracles:
* a tiny randomly initialised ``SD3Transformer2DModel`` (built from a config, no download) driven
  (1) by the diffusers-style loop ``transformer -> scheduler.step`` and (2) by lazysi's Euler
  sampler (:func:`lazysi.numeric.sampling.solvers.integrate`) on the lazy VP schedule through
  :class:`~lazysi.numeric.fields.convert.ConvertedProvider` (fields ``eta_B(s, x) = eta_A(tau, x/c)``,
  velocity from B's kernels) -- a different code path from the scheduler's affine step;
* exact Gaussian data (claim C13): the lazy ODE is exact for any number of Euler steps, so the
  scheduler fed the exact linear-schedule velocity returns ``data_sigma * noise``; diffusers' own
  FlowMatch Euler with the same number of steps is not exact (the test can fail);
* the conversion kernels themselves against C4's definition evaluated with mpmath at 50 digits.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

import mpmath
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel  # noqa: E402

from lazysi.numeric.fields.convert import ConvertedProvider  # noqa: E402
from lazysi.numeric.sampling.diffusers_scheduler import LazyFlowMatchScheduler, lazy_conversion  # noqa: E402
from lazysi.numeric.fields.gaussian import GaussianProvider  # noqa: E402
from lazysi.numeric.fields.schedule import NumericSchedule  # noqa: E402
from lazysi.numeric.fields.providers import FieldProvider  # noqa: E402
from lazysi.numeric.sampling.solvers import ODE, integrate  # noqa: E402
from lazysi.numeric.sampling.seeding import per_sample_normal  # noqa: E402
from lazysi.symbolic.families import family  # noqa: E402

SIGMA = 0.5  # data scale: c(1) = 1/SIGMA != 1 exercises the final rescaling


def _tiny_transformer() -> SD3Transformer2DModel:
    torch.manual_seed(0)
    model = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=16, caption_projection_dim=16, pooled_projection_dim=16, out_channels=4, pos_embed_max_size=8,
    )
    return model.to(torch.float64).eval()


class VelocityModelProvider(FieldProvider):
    """Adapter: a diffusers flow-matching model ``v(x_sigma, 1000 sigma) = noise - data`` as a
    provider under lazysi's linear schedule (t = 1 - sigma, b = -v). ``eta_X, eta_Z`` solve the two
    defining relations ``x = alpha eta_Z + beta eta_X``, ``b = alpha' eta_Z + beta' eta_X`` with the
    generated kernels (a 2x2 solve, no formula typed here)."""

    def __init__(self, v_fn):
        self.schedule = NumericSchedule(family("linear"))
        self.v_fn = v_fn

    def fields(self, t, x):
        t = torch.as_tensor(t, dtype=torch.float64).reshape(())
        b = -self.v_fn(x, 1000.0 * (1.0 - t))
        a, be, ad, bd = (float(v) for v in self.schedule.values(t.reshape(1)))
        m = torch.tensor([[a, be], [ad, bd]], dtype=torch.float64)
        rhs = torch.stack([x.reshape(-1), b.reshape(-1)])  # (2, D)
        eta_z, eta_x = torch.linalg.solve(m, rhs)
        return eta_x.reshape(x.shape), eta_z.reshape(x.shape)


def test_conversion_kernels_match_c4_definition_mpmath():
    """tau solves lambda_linear(tau) = lambda_vp(s) and c = alpha_B(s)/alpha_A(tau), at 50 digits."""
    conv = lazy_conversion(SIGMA)
    mpmath.mp.dps = 50
    sig = mpmath.mpf(SIGMA)
    for sv in (0.0, 1e-9, 0.1, 0.37, 0.5, 0.9, 1 - 1e-9, 1.0):
        s = mpmath.mpf(sv)
        aB, bB = mpmath.cos(mpmath.pi * s / 2), mpmath.sin(mpmath.pi * s / 2) / sig
        tau_ref = mpmath.findroot(lambda u: u * aB - (1 - u) * bB, mpmath.mpf("0.5"))  # beta_A/alpha_A = beta_B/alpha_B
        c_ref = bB / tau_ref if tau_ref > 0 else aB / (1 - tau_ref)
        st = torch.tensor([sv], dtype=torch.float64)
        assert abs(float(conv.tau(st)[0]) - float(tau_ref)) <= 1e-14
        assert abs(float(conv.c(st)[0]) - float(c_ref)) <= 1e-14 * float(c_ref)


def test_scheduler_grid_contract():
    sched = LazyFlowMatchScheduler(data_sigma=SIGMA)
    sched.set_timesteps(5, device="cpu")
    ts, sig = sched.timesteps, sched.sigmas
    assert ts.shape == (5,) and sig.shape == (6,)
    assert float(ts[0]) == 1000.0 and float(sig[-1]) == 0.0 and float(sig[0]) == 1.0
    assert bool((ts[1:] < ts[:-1]).all()) and bool(torch.isfinite(ts).all())
    assert torch.equal(ts, 1000.0 * sig[:-1])
    assert sched.init_noise_sigma == 1.0 and sched.order == 1
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    assert sched.scale_model_input(x, ts[0]) is x
    with pytest.raises(ValueError, match="not on this scheduler's grid"):
        sched.step(x, 123.456, x)
    with pytest.raises(ValueError, match="shape"):
        sched.step(x[:1], ts[0], x)
    with pytest.raises(ValueError, match="data_sigma"):
        LazyFlowMatchScheduler(data_sigma=0.0)
    with pytest.raises(RuntimeError, match="set_timesteps"):
        LazyFlowMatchScheduler(data_sigma=SIGMA).step(x, 1000.0, x)


def test_from_config_drops_shift_and_ignores_mu(caplog):
    """No double shift: an SD3/FLUX config's shift and dynamic shifting do not change the grid."""
    flux_like = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
    sched = LazyFlowMatchScheduler.from_config(flux_like.config, data_sigma=SIGMA)
    assert sched.config.data_sigma == SIGMA
    # diffusers keeps foreign keys in the config (for round trips) but they reach no parameter.
    assert set(inspect.signature(LazyFlowMatchScheduler.__init__).parameters) == {"self", "num_train_timesteps", "data_sigma"}
    plain = LazyFlowMatchScheduler(data_sigma=SIGMA)
    plain.set_timesteps(4)
    # FLUX's retrieve_timesteps (in a pipeline module that needs transformers, so reproduced here)
    # checks that set_timesteps accepts `sigmas`, then calls set_timesteps(sigmas=..., device=..., mu=...).
    assert "sigmas" in inspect.signature(sched.set_timesteps).parameters
    with caplog.at_level(logging.WARNING):
        sched.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25], device="cpu", mu=0.8)
    assert len(sched.timesteps) == 4 and torch.equal(sched.timesteps, plain.timesteps)
    assert "custom sigmas are ignored" in caplog.text
    sched.set_timesteps(4, mu=2.0)
    assert torch.equal(sched.timesteps, plain.timesteps)


def _diffusers_loop(model, sched, latents, cond):
    """The denoising loop of StableDiffusion3Pipeline (without guidance), kept step by step."""
    path = [latents]
    for t in sched.timesteps:
        x_in = sched.scale_model_input(latents, t)
        v = model(hidden_states=x_in, timestep=t.expand(latents.shape[0]), return_dict=False, **cond)[0]
        latents = sched.step(v, t, latents, return_dict=False)[0]
        path.append(latents)
    return path


@pytest.mark.parametrize("steps", [1, 4])
def test_sd3_transformer_matches_lazy_euler_sampler(steps):
    model = _tiny_transformer()
    g = torch.Generator().manual_seed(3)
    batch = 2
    cond = {
        "encoder_hidden_states": torch.randn(batch, 5, 16, generator=g, dtype=torch.float64),
        "pooled_projections": torch.randn(batch, 16, generator=g, dtype=torch.float64),
    }
    noise = torch.randn(batch, 4, 8, 8, generator=g, dtype=torch.float64)

    sched = LazyFlowMatchScheduler.from_config(FlowMatchEulerDiscreteScheduler(shift=3.0).config, data_sigma=SIGMA)
    sched.set_timesteps(steps, device="cpu")
    with torch.no_grad():
        path = _diffusers_loop(model, sched, noise * sched.init_noise_sigma, cond)

        def v_fn(x, timestep):
            ts = torch.as_tensor(timestep, dtype=torch.float64).reshape(-1)
            ts = ts.expand(x.shape[0]) if ts.numel() == 1 else ts
            return model(hidden_states=x, timestep=ts, return_dict=False, **cond)[0]

        sources = [VelocityModelProvider(v_fn)]
        try:  # the project's adapter, when present, is compared too
            from lazysi.numeric.models.adapters import diffusers_flow_model
        except ImportError:
            pass
        else:
            sources.append(diffusers_flow_model(v_fn))
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        conv = lazy_conversion(SIGMA)
        for source in sources:
            lazy = ConvertedProvider(source, family("vp", sigma=SIGMA), conv)
            ours = integrate("euler", ODE(lambda s, x: lazy.drift(s, x)), grid, noise.clone(), keep_path=True)
            assert len(ours) == len(path) == steps + 1
            for k in range(steps + 1):
                ck = float(conv.c(grid[k : k + 1])[0])
                x_b = path[k] * ck  # scheduler latents are source coordinates: x_B = c x_A
                assert torch.isfinite(path[k]).all()
                err = float((x_b - ours[k]).abs().max())
                assert err < 1e-6 * (1.0 + float(ours[k].abs().max())), f"{type(source).__name__}, step {k}: {err:.3e}"
    assert float((path[-1] - path[0]).abs().max()) > 1e-3  # the network did move the latents


def test_sd3_transformer_matches_lazysi_generate():
    """End to end against lazysi's sampler ``generate(..., "lazy-ode")`` (per-sample noise, lazy VP
    Euler, output ``sigma x_1`` in data coordinates) through the project's diffusers adapter."""
    from lazysi.numeric.models import adapters
    from lazysi.numeric.sampling.frames import SamplingSetup
    from lazysi.numeric.sampling.generate import generate
    model = _tiny_transformer()
    g = torch.Generator().manual_seed(4)
    indices, seed, steps = [3, 8], 11, 3
    cond = {
        "encoder_hidden_states": torch.randn(2, 5, 16, generator=g, dtype=torch.float64),
        "pooled_projections": torch.randn(2, 16, generator=g, dtype=torch.float64),
    }

    def v_fn(x, timestep):
        ts = torch.as_tensor(timestep, dtype=torch.float64).reshape(-1)
        return model(hidden_states=x, timestep=ts.expand(x.shape[0]) if ts.numel() == 1 else ts, return_dict=False, **cond)[0]

    with torch.no_grad():
        ours, calls = generate("lazy-ode", adapters.diffusers_flow_model(v_fn), steps, indices, seed, (4, 8, 8),
                               setup=SamplingSetup(sigma=SIGMA), min_rows=1)
        sched = LazyFlowMatchScheduler(data_sigma=SIGMA)
        sched.set_timesteps(steps)
        noise = per_sample_normal(seed, indices, (4, 8, 8))
        latents = _diffusers_loop(model, sched, noise, cond)[-1]
    assert calls == steps
    err = float((latents - ours).abs().max())
    assert err < 1e-6 * (1.0 + float(ours.abs().max())), err


@pytest.mark.parametrize("steps", [1, 3])
def test_exact_on_gaussian_data_any_step_count(steps):
    """C13: for X ~ N(0, SIGMA^2 I) the lazy ODE has zero velocity in its frame, so Euler with any
    number of steps maps Z to SIGMA Z exactly; diffusers' FlowMatch Euler is not exact."""
    exact = GaussianProvider(NumericSchedule(family("linear")), torch.zeros(4, 2, 2, dtype=torch.float64), SIGMA**2)

    def v_fn(x, timestep):  # diffusers convention: v = noise - data = -b_linear at t = 1 - sigma
        t = 1.0 - float(timestep) / 1000.0
        return -exact.velocity(torch.tensor(t, dtype=torch.float64), x)

    z = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    results = {}
    for sched in (LazyFlowMatchScheduler(data_sigma=SIGMA), FlowMatchEulerDiscreteScheduler()):
        sched.set_timesteps(steps, device="cpu")
        x = z.clone()
        for t in sched.timesteps:
            x = sched.step(v_fn(x, t), t, x).prev_sample
        results[type(sched).__name__] = float((x - SIGMA * z).abs().max())
    assert results["LazyFlowMatchScheduler"] < 1e-12
    assert results["FlowMatchEulerDiscreteScheduler"] > 1e-3


def test_save_and_reload_config(tmp_path):
    sched = LazyFlowMatchScheduler(num_train_timesteps=1000, data_sigma=SIGMA)
    sched.save_config(tmp_path)
    again = LazyFlowMatchScheduler.from_pretrained(tmp_path)
    assert again.config.data_sigma == SIGMA and again.config.num_train_timesteps == 1000


def _runnable_blocks(doc: str) -> list[str]:
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if b.startswith("# runnable example")]


def test_docs_diffusers_example_runs(tmp_path, monkeypatch, capsys):
    blocks = _runnable_blocks("diffusers.md")
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "docs/diffusers.md", "exec"), {"__name__": "docs_example"})  # our own documentation
    assert capsys.readouterr().out.strip()
