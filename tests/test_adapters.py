"""Adapters: each network convention wrapped around an exact Gaussian-mixture provider must give back
the exact fields (round trip, float64, 1e-12); the low-rank mixture's Woodbury fields must match the
full-covariance oracle; the model zoo loads what it promises."""
from __future__ import annotations

import json

import pytest
import torch

from lazysi.numeric.models import adapters
from lazysi.numeric.fields.gaussian import MixtureProvider
from lazysi.numeric.fields.gmm import LowRankMixture, LowRankMixtureProvider, load_mixture, save_mixture
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.symbolic.families import family

TIMES = [0.0, 1e-6, 0.013, 0.25, 0.5, 0.77, 0.999, 1.0]


def _mixture(schedule: NumericSchedule, dim: int = 3, k: int = 3, seed: int = 1) -> MixtureProvider:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, dim, dim, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) / dim + 0.1 * torch.eye(dim, dtype=torch.float64)
    means = 2.0 * torch.randn(k, dim, generator=g, dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)[:k]
    return MixtureProvider(schedule, weights, means, covs)


def _points(dim: int = 3, n: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return 1.5 * torch.randn(n, dim, generator=g, dtype=torch.float64)


def _assert_close(got: torch.Tensor, ref: torch.Tensor, rel: float = 1e-12) -> None:
    err = float((got - ref).abs().max())
    scale = float(ref.abs().max()) + 1e-300
    assert err <= rel * max(scale, 1.0), f"max error {err:.3e} (scale {scale:.3e})"


def _round_trip(provider, exact, times, cond=lambda t: 1.0) -> None:
    """Fields equal to 1e-12, times ``cond(t)`` where the map from prediction to fields amplifies
    round-off (division by alpha for x0, by D for a velocity on a schedule with D -> 0)."""
    x = _points()
    for t in times:
        ex, ez = exact.fields(t, x)
        gx, gz = provider.fields(t, x)
        _assert_close(gx, ex, 1e-12 * cond(t))
        _assert_close(gz, ez, 1e-12 * cond(t))


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("name", ["linear", "vp", "sd3", "polynomial"])
def test_velocity_round_trip(name):
    sch = NumericSchedule(family(name))
    exact = _mixture(sch)

    def net(t, x):  # a perfect velocity network in lazysi time
        ex, ez = exact.fields(t, x)
        return adapters.prediction_from_fields("velocity", sch, t[:, None], ex, ez)

    # polynomial: D = alpha beta_dot - beta alpha_dot = 2 t (1 - t) vanishes at both ends (there a
    # velocity does not determine the fields); inside, round-off is amplified by 1/D
    times = [t for t in TIMES if name != "polynomial" or 0.0 < t < 1.0]
    cond = (lambda t: 1.0 / (2 * t * (1 - t))) if name == "polynomial" else (lambda t: 1.0)
    _round_trip(adapters.velocity_model(net, sch), exact, times, cond)


def test_velocity_linear_matches_the_rectified_flow_formula():
    """eta_X = x + (1 - t) v, eta_Z = x - t v, an independent statement of the linear case."""
    sch = NumericSchedule(family("linear"))
    g = torch.Generator().manual_seed(3)
    v = torch.randn(5, 4, generator=g, dtype=torch.float64)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    prov = adapters.velocity_model(lambda t, xx: v, sch)
    for t in (0.0, 0.3, 1.0):
        ex, ez = prov.fields(t, x)
        _assert_close(ex, x + (1 - t) * v, 1e-15)
        _assert_close(ez, x - t * v, 1e-15)


def test_diffusers_flow_round_trip_and_sign():
    sch = NumericSchedule(family("linear"))
    exact = _mixture(sch)
    seen = []

    def net(x, timestep):  # diffusers: sigma = 1 - t, timestep = 1000 sigma, output Z - X
        t = 1.0 - timestep / 1000.0
        seen.append(float(timestep[0]))
        ex, ez = exact.fields(t, x)
        return ez - ex

    _round_trip(adapters.diffusers_flow_model(net), exact, TIMES)
    assert seen[0] == 1000.0 and seen[-1] == 0.0  # t = 0 is pure noise: timestep 1000

    # the opposite sign convention must NOT round-trip (the test can fail)
    wrong = adapters.diffusers_flow_model(lambda x, ts: -net(x, ts))
    gx, _ = wrong.fields(0.5, _points())
    ex, _ = exact.fields(0.5, _points())
    assert float((gx - ex).abs().max()) > 1e-2


@pytest.mark.parametrize("name", ["linear", "vp", "ddpm"])
def test_x0_round_trip(name):
    sch = NumericSchedule(family(name))
    exact = _mixture(sch)
    prov = adapters.denoiser_model(lambda t, x: exact.fields(t, x)[0], sch)
    alpha = lambda t: float(sch.alpha(torch.tensor(t, dtype=torch.float64)))  # noqa: E731
    _round_trip(prov, exact, [t for t in TIMES if t < 1.0], lambda t: max(1.0, 1.0 / alpha(t)))
    with pytest.raises(ValueError, match="alpha = 0"):
        prov.fields(1.0, _points())


@pytest.mark.parametrize("name", ["linear", "vp"])
def test_edm_denoiser_round_trip(name):
    sch = NumericSchedule(family(name))
    exact = _mixture(sch)
    a_sch = sch

    def denoiser(x_ve, sigma_ve):  # VE convention: x_ve = X + sigma Z; map back with beta from sigma
        # find t with alpha/beta = sigma on this schedule by bisection (independent of the adapter)
        lo, hi = torch.zeros_like(sigma_ve), torch.ones_like(sigma_ve)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            big = a_sch.alpha(mid) / a_sch.beta(mid) > sigma_ve
            lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
        t = 0.5 * (lo + hi)
        beta = a_sch.beta(t)[:, None]
        return exact.fields(t, x_ve * beta)[0]

    prov = adapters.edm_denoiser_model(denoiser, sch)
    x = _points()
    for t in (0.013, 0.25, 0.5, 0.77, 0.99):
        ex, ez = exact.fields(t, x)
        gx, gz = prov.fields(t, x)
        _assert_close(gx, ex, 1e-11)
        _assert_close(gz, ez, 1e-11)
    with pytest.raises(ValueError, match="beta > 0"):
        prov.fields(0.0, x)


def test_ddpm_eps_round_trip():
    sch = NumericSchedule(family("ddpm"))
    exact = _mixture(sch)
    seen = []

    def net(u, x):  # SDE time u = 1 - t (u = 1 noise), scaled by 999
        seen.append(float(u[0]))
        return exact.fields(1.0 - u / 999.0, x)[1]

    _round_trip(adapters.ddpm_eps_model(net, time_scale=999.0), exact, TIMES)
    assert seen[0] == 999.0 and seen[-1] == 0.0


def test_unknown_prediction_type_raises():
    with pytest.raises(ValueError, match="unknown prediction type"):
        adapters.NetworkProvider(lambda t, x: x, family("linear"), "score")


# ----------------------------------------------------------------------------- low-rank mixture

def _low_rank(dim=6, k=3, r=2, seed=0) -> LowRankMixture:
    g = torch.Generator().manual_seed(seed)
    return LowRankMixture(
        weights=torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)[:k],
        means=torch.randn(k, dim, generator=g, dtype=torch.float64),
        factors=torch.randn(k, dim, r, generator=g, dtype=torch.float64),
        diag=0.05 + torch.rand(k, dim, generator=g, dtype=torch.float64),
        shape=(dim,),
    )


@pytest.mark.parametrize("name", ["linear", "vp", "point-mass"])
def test_low_rank_fields_match_full_covariance_oracle(name):
    sch = NumericSchedule(family(name))
    mix = _low_rank()
    lr = LowRankMixtureProvider(sch, mix)
    full = MixtureProvider(sch, mix.weights, mix.means, mix.covariances())
    x = _points(6, 9)
    times = [t for t in TIMES if name != "point-mass" or t > 0.0]
    for t in times:
        for got, ref in zip(lr.fields(t, x), full.fields(t, x)):
            _assert_close(got, ref, 1e-10)
    # per-sample times in one call
    tv = torch.linspace(0.1, 0.9, x.shape[0], dtype=torch.float64)
    for got, ref in zip(lr.fields(tv, x), full.fields(tv, x)):
        _assert_close(got, ref, 1e-10)


def test_low_rank_log_density_matches_oracle():
    sch = NumericSchedule(family("linear"))
    mix = _low_rank()
    full = MixtureProvider(sch, mix.weights, mix.means, mix.covariances())
    x = _points(6, 9)
    alpha, beta = sch.alpha(torch.tensor(0.6, dtype=torch.float64)), sch.beta(torch.tensor(0.6, dtype=torch.float64))
    logp, _ = mix.component_terms(alpha, beta, x)
    _assert_close(torch.logsumexp(logp, 1), full.log_density(0.6, x), 1e-12)


def test_mixture_save_load_round_trip(tmp_path):
    mix = _low_rank()
    save_mixture(mix, tmp_path / "m", {"data_shape": [6], "class": "LowRankMixture"})
    back, card = load_mixture(tmp_path / "m")
    assert card["class"] == "LowRankMixture"
    for a, b in ((back.means, mix.means), (back.factors, mix.factors), (back.diag, mix.diag)):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="diag must be strictly positive"):
        LowRankMixture(mix.weights, mix.means, mix.factors, -mix.diag, mix.shape)


# ----------------------------------------------------------------------------- zoo

def test_zoo_mnist_gmm_card_and_exact_moments():
    from lazysi.numeric.models.zoo import load_model, mean_vector

    prov, card = load_model("mnist-gmm")
    for key in ("data_mean", "data_rms_centred", "command", "data_shape", "loaded_from"):
        assert key in card
    assert isinstance(prov, LowRankMixtureProvider) and prov.mixture.n_components >= 10
    assert tuple(card["data_shape"]) == (1, 28, 28)
    # at t = 0 (pure noise) eta_X is the mixture mean whatever x is
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    ex, ez = prov.fields(0.0, x)
    _assert_close(ex, mean_vector("mnist-gmm", prov, card).expand_as(ex), 1e-12)
    _assert_close(ez, x, 1e-12)


def test_zoo_gaussian_and_bad_names(tmp_path):
    from lazysi.numeric.fields.gaussian import GaussianProvider
    from lazysi.numeric.models.zoo import load_model

    prov, card = load_model("gaussian")
    assert isinstance(prov, GaussianProvider) and card["data_rms_centred"] == pytest.approx(0.5)
    prov, card = load_model("gaussian-full")
    cov = torch.tensor(card["cov"], dtype=torch.float64)
    assert torch.allclose(cov, cov.T) and float(torch.linalg.eigvalsh(cov).min()) > 0.04
    with pytest.raises(ValueError, match="unknown model"):
        load_model(str(tmp_path / "nothing"))
    (tmp_path / "w.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown model"):
        load_model(str(tmp_path / "w.pt"))


def test_zoo_checkpoint_path_with_card(tmp_path):
    """A PATH to a safetensors mixture + JSON card loads through the same route as mnist-gmm."""
    from lazysi.numeric.models.zoo import load_model

    mix = _low_rank()
    save_mixture(mix, tmp_path / "toy", {"class": "LowRankMixture", "data_shape": [6], "schedule": "linear"})
    prov, card = load_model(str(tmp_path / "toy.safetensors"))
    assert set(card["loaded_from"]) == {str(tmp_path / "toy.safetensors"), str(tmp_path / "toy.json")}
    x = _points(6, 3)
    ref = MixtureProvider(NumericSchedule(family("linear")), mix.weights, mix.means, mix.covariances())
    for got, want in zip(prov.fields(0.4, x), ref.fields(0.4, x)):
        _assert_close(got, want, 1e-5)  # stored in float32


def test_zoo_diffusers_folder(tmp_path):
    """A local diffusers model folder (tiny random UNet2DModel + flow-matching scheduler) is wrapped with
    the diffusers convention: fields equal those of the adapter around the same direct call."""
    diffusers = pytest.importorskip("diffusers")
    from lazysi.numeric.models.zoo import load_model

    torch.manual_seed(0)
    model = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                  block_out_channels=(8, 8), norm_num_groups=4,
                                  down_block_types=("DownBlock2D", "DownBlock2D"),
                                  up_block_types=("UpBlock2D", "UpBlock2D"))
    model.save_pretrained(tmp_path / "unet", safe_serialization=True)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "Pipeline"}))
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}))
    prov, card = load_model(str(tmp_path))
    assert card["data_shape"] == [1, 8, 8]
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    t = 0.3
    with torch.no_grad():
        v_d = model(x.float(), torch.full((2,), 700.0)).sample.double()
    ex, ez = prov.fields(t, x)
    _assert_close(ex, x + (1 - t) * (-v_d), 1e-6)
    _assert_close(ez, x - t * (-v_d), 1e-6)
