"""Benchmark metrics against independent closed forms."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from lazysi.numeric.evaluation import metrics


def _with_moments(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n points whose EMPIRICAL mean and (unbiased) covariance are exactly ``mean`` and ``cov``."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, mean.numel(), generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    c = z.T @ z / (n - 1)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(c)).T  # empirical covariance exactly I
    return mean + z @ torch.linalg.cholesky(cov).T


def test_fid_of_two_gaussians_matches_closed_form():
    """Diagonal covariances commute: FD = |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2."""
    a = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    b = torch.tensor([1.5, 0.2, 1.0, 0.7], dtype=torch.float64)
    m1 = torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=torch.float64)
    m2 = torch.tensor([0.5, 1.0, 1.0, 0.0], dtype=torch.float64)
    f1 = _with_moments(m1, torch.diag(a), 50, 0)
    f2 = _with_moments(m2, torch.diag(b), 80, 1)
    ref = float(((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert metrics.fid_from_features(f1, f2) == pytest.approx(ref, rel=1e-10)
    assert metrics.fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-10)


def test_sw2_of_1d_gaussians_matches_closed_form():
    """In 1-D every projection is +-1, so SW2 = W2 between the two empirical measures. With
    quantile-placed points x_i = m + s q_i (q_i = Phi^-1((i + 1/2)/n)) the sorted coupling gives
    W2^2 = (m1 - m2)^2 + (s1 - s2)^2 mean(q^2)."""
    n = 400
    q = torch.tensor(norm.ppf((torch.arange(n, dtype=torch.float64) + 0.5).numpy() / n), dtype=torch.float64)
    m1, s1, m2, s2 = 0.3, 1.2, -0.5, 0.4
    x = (m1 + s1 * q)[torch.randperm(n, generator=torch.Generator().manual_seed(0))][:, None]
    y = (m2 + s2 * q)[:, None]
    ref = math.sqrt((m1 - m2) ** 2 + (s1 - s2) ** 2 * float((q**2).mean()))
    assert metrics.sliced_w2(x, y, n_projections=8) == pytest.approx(ref, rel=1e-10)
    # limit of the population value sqrt((m1 - m2)^2 + (s1 - s2)^2) as n grows
    assert metrics.sliced_w2(x, y) == pytest.approx(math.sqrt(0.8**2 + 0.8**2), rel=5e-3)


def test_sw2_translation_and_seed():
    """SW2(X, X + c)^2 = E_theta (theta . c)^2 = |c|^2 / D for directions uniform on the sphere;
    with a fixed seed the estimate is reproducible."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 5, generator=g, dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5, 0.0, 1.0], dtype=torch.float64)
    v1 = metrics.sliced_w2(x, x + c, n_projections=4000)
    assert v1 == pytest.approx(float(c.norm()) / math.sqrt(5), rel=0.05)
    assert metrics.sliced_w2(x, x + c) == metrics.sliced_w2(x, x + c)


def test_pathwise_rmse():
    x = torch.zeros(4, 3, dtype=torch.float64)
    y = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 2.0, 0], [0, 0, 0]], dtype=torch.float64)
    assert metrics.pathwise_rmse(x, y) == pytest.approx(math.sqrt(5 / 12), rel=1e-15)
    with pytest.raises(ValueError, match="shape"):
        metrics.pathwise_rmse(x, y[:2])


def test_classifier_fid_floor_and_control():
    """Real digits (a random subset: the split is stored in class blocks) score near the floor;
    only two classes, or noisy digits, score far above it."""
    from lazysi.numeric.models.data import load_mnist

    floor = metrics.fid_floor(300)
    all_train = load_mnist("train")
    train = all_train[torch.randperm(all_train.shape[0], generator=torch.Generator().manual_seed(1))[:300]]
    assert metrics.classifier_fid(train) < 2.0 * floor + 1.0
    assert metrics.classifier_fid(all_train[:300]) > 10.0 * floor  # classes 0 and 1 only
    noisy = train + 0.8 * torch.randn(train.shape, generator=torch.Generator().manual_seed(0))
    assert metrics.classifier_fid(noisy) > 5.0 * floor
    with pytest.raises(ValueError, match="n must be"):
        metrics.fid_floor(1)


def test_bench_cli_end_to_end(tmp_path):
    """``lazysi bench`` on the exact anisotropic Gaussian: files written, NFE counted, lazy-cov exact
    (RMSE ~ 0, covariance-aware), Euler not; unknown sampler names exit with status 2."""
    import json

    from lazysi.cli import main

    out = tmp_path / "b"
    rc = main(["bench", "--models", "gaussian-full", "--nfe", "1", "2", "--samplers", "euler", "lazy-cov", "unipc",
               "lazy-cov@uniform", "euler@edm", "--n", "8", "--sigma", "1.0", "--fid", "--fid-extra", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "bench.json").read_text())
    rows = res["models"]["gaussian-full"]["rows"]
    by = {(r["sampler"], r["nfe"]): r for r in rows}
    assert all(r["counted_nfe"] == r["nfe"] for r in rows)
    assert by[("lazy-cov", 1)]["rmse"] < 1e-7  # the reference itself is RK4 (error ~1e-8 here)
    assert by[("euler", 1)]["rmse"] > 0.1
    # NAME@GRID runs our sampler on another grid: lazy-cov stays exact on any grid, Euler's error moves
    assert by[("lazy-cov@uniform", 2)]["rmse"] < 1e-7 and by[("lazy-cov@uniform", 2)]["counted_nfe"] == 2
    assert by[("euler@edm", 2)]["rmse"] > 0.01 and abs(by[("euler@edm", 2)]["rmse"] - by[("euler", 2)]["rmse"]) > 1e-3
    assert (out / "bench.md").read_text().count("| lazy-cov |") == 1
    assert main(["bench", "--models", "gaussian-full", "--samplers", "ddim", "--out", str(out)]) == 2


def test_cached_reference_is_keyed_by_the_model_files(tmp_path, monkeypatch):
    """A cached reference is reused only for the same weights: other weights recompute it."""
    from lazysi.numeric.evaluation import bench
    from lazysi.numeric.models.zoo import load_model

    provider, card = load_model("gaussian")
    calls = []
    real = bench.generate

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "generate", counting)
    a = dict(card, loaded_from={"w.safetensors": "aa" * 32})
    b = dict(card, loaded_from={"w.safetensors": "bb" * 32})
    assert bench.model_fingerprint(a) != bench.model_fingerprint(b)
    x1, info1 = bench.cached_reference(provider, "gaussian", [0, 1, 2], 0, (8,), tmp_path, a, steps=8)
    assert len(calls) == 2  # RK4 x 8 and x 16: an exact Gaussian converges at the first doubling
    assert info1["steps"] == 16 and info1["converged"]
    x2, _ = bench.cached_reference(provider, "gaussian", [0, 1, 2], 0, (8,), tmp_path, a, steps=8)
    assert len(calls) == 2 and torch.equal(x1, x2)  # reused
    _, info3 = bench.cached_reference(provider, "gaussian", [0, 1, 2], 0, (8,), tmp_path, b, steps=8)
    assert len(calls) == 4  # other weights: recomputed, not reused
    assert info3["model_fingerprint"] == bench.model_fingerprint(b) != info1["model_fingerprint"]
    bench.cached_reference(provider, "gaussian", [0, 1, 3], 0, (8,), tmp_path, b, steps=8)
    assert len(calls) == 6  # other indices: recomputed


def test_reference_doubles_until_the_change_is_below_tol_and_bounds_its_error(tmp_path):
    """The reference doubles RK4's steps until the RMS change is <= tol; the change it reports bounds
    the returned solution's true error, checked against the exact flow map of N(mu, s^2 I) on the
    linear schedule, X_1 = mu + s Z (an independent closed form, not the sampler)."""
    from lazysi.numeric.evaluation import bench
    from lazysi.numeric.sampling.seeding import per_sample_normal
    from lazysi.numeric.models.zoo import load_model

    provider, card = load_model("gaussian")
    idx = list(range(6))
    exact = torch.tensor(card["mean"], dtype=torch.float64) + card["cov"] ** 0.5 * per_sample_normal(3, idx, (8,))
    logs = []
    # a tolerance RK4 cannot meet by 4 steps: the finest solution comes back, flagged, with a warning
    x, info = bench.cached_reference(provider, "gaussian", idx, 3, (8,), tmp_path, card, steps=1, tol=1e-15,
                                     max_steps=4, log=logs.append)
    assert info["steps"] == 4 and not info["converged"] and [d["steps"] for d in info["doublings"]] == [2, 4]
    assert any("WARNING" in line for line in logs)
    err = float((x - exact).pow(2).mean().sqrt())
    assert 0 < err <= info["error_estimate_rmse"]
    assert info["error_estimate_max_sample"] >= info["error_estimate_rmse"]
    # a reachable tolerance stops at the first doubling whose change is below it, and the error is below tol
    x2, info2 = bench.cached_reference(provider, "gaussian", idx, 3, (8,), tmp_path, card, steps=1, tol=1e-6,
                                       max_steps=64, log=logs.append)
    changes = [d["rms_change"] for d in info2["doublings"]]
    assert info2["converged"] and changes[-1] <= 1e-6 and all(c > 1e-6 for c in changes[:-1])
    assert float((x2 - exact).pow(2).mean().sqrt()) <= 1e-6
    with pytest.raises(ValueError, match="max_steps"):
        bench.cached_reference(provider, "gaussian", idx, 3, (8,), tmp_path, card, steps=8, max_steps=8)


def test_sampler_at_grid_names_a_grid_for_samplers_with_a_grid_only():
    from lazysi.numeric.sampling.registry import SAMPLERS, resolve

    pcd = resolve("lazy-cov-pcd@uniform")
    assert (pcd.name, pcd.grid, pcd.method) == ("lazy-cov-pcd@uniform", "uniform", SAMPLERS["lazy-cov-pcd"].method)
    assert resolve("lazy-ode@edm").grid == "edm" and resolve("unipc") is SAMPLERS["unipc"] and SAMPLERS["unipc"].grid is None
    assert resolve("heun@lambda").nfe(3) == 5  # EDM's Heun: 2 evaluations per step, Euler last step
    for bad, msg in [("lazy-ode@vp", "unknown grid 'vp'"), ("unipc@uniform", "runs on its own grid"),
                     ("nope@uniform", "unknown sampler 'nope'"), ("euler@", "empty grid")]:
        with pytest.raises(ValueError, match=msg):
            resolve(bad)


def _synthetic_logits(n: int, t0: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z ~ N(0, 2^2) and labels drawn from softmax(z / t0): t0 is the true temperature."""
    g = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(n, 10, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(z / t0, 1), 1, generator=g)[:, 0]
    return z, y


def test_fit_temperature_recovers_the_true_temperature_and_minimises_the_nll():
    from scipy.optimize import minimize_scalar

    z, y = _synthetic_logits(40_000, 0.5)
    t = metrics.fit_temperature(z, y)
    assert abs(t / 0.5 - 1) < 0.04  # statistical error at n = 40,000 is ~1 %

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    oracle = math.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).x)
    assert abs(t / oracle - 1) < 1e-6
    z2, y2 = _synthetic_logits(40_000, 2.0, seed=1)
    assert abs(metrics.fit_temperature(z2, y2) / 2.0 - 1) < 0.04
    # a classifier that is never wrong has no finite NLL-optimal temperature
    with pytest.raises(ValueError, match="outside"):
        metrics.fit_temperature(z, z.argmax(1))
    with pytest.raises(ValueError, match="need logits"):
        metrics.fit_temperature(z[:, 0], y)


def test_expected_calibration_error_separates_calibrated_from_overconfident():
    z, y = _synthetic_logits(40_000, 1.0, seed=2)
    assert metrics.expected_calibration_error(torch.softmax(z, 1), y) < 0.01
    assert metrics.expected_calibration_error(torch.softmax(z / 0.4, 1), y) > 0.08
    # hand example: two samples at confidence 0.8 in one bin, one right one wrong -> |0.5 - 0.8| = 0.3
    p = torch.tensor([[0.8, 0.2], [0.8, 0.2]], dtype=torch.float64)
    assert metrics.expected_calibration_error(p, torch.tensor([0, 1])) == pytest.approx(0.3, abs=1e-12)


def test_committed_classifier_temperature_is_the_refit_and_only_rescales():
    """The card's temperature is the NLL optimum on the held-out digits for these weights (refit
    here), lowers the held-out ECE, and changes no predicted class."""
    from lazysi.numeric.models.data import load_mnist, mnist_labels

    card = metrics.classifier_card()
    x, y = load_mnist("test"), mnist_labels("test")
    with torch.no_grad():
        z = metrics.classifier()(x).to(torch.float64)
    assert abs(metrics.fit_temperature(z, y) / card["temperature"] - 1) < 1e-6
    p_cal, p_raw = metrics.classifier_probabilities(x), metrics.classifier_probabilities(x, calibrated=False)
    assert torch.equal(p_cal.argmax(1), p_raw.argmax(1))
    assert metrics.expected_calibration_error(p_cal, y) < metrics.expected_calibration_error(p_raw, y)
    assert card["calibration"]["calibrated"]["ece"] == pytest.approx(metrics.expected_calibration_error(p_cal, y), abs=1e-9)
