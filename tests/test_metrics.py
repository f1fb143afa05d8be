"""Benchmark metrics against independent closed forms."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from lazysi.numeric import metrics


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
    from lazysi.numeric.data import load_mnist

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
               "--n", "8", "--sigma", "1.0", "--fid", "--fid-extra", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "bench.json").read_text())
    rows = res["models"]["gaussian-full"]["rows"]
    by = {(r["sampler"], r["nfe"]): r for r in rows}
    assert all(r["counted_nfe"] == r["nfe"] for r in rows)
    assert by[("lazy-cov", 1)]["rmse"] < 1e-7  # the reference itself is RK4 (error ~1e-8 here)
    assert by[("euler", 1)]["rmse"] > 0.1
    assert (out / "bench.md").read_text().count("| lazy-cov |") == 1
    assert main(["bench", "--models", "gaussian-full", "--samplers", "ddim", "--out", str(out)]) == 2


def test_cached_reference_is_keyed_by_the_model_files(tmp_path, monkeypatch):
    """A cached reference is reused only for the same weights: other weights recompute it."""
    from lazysi.numeric import bench
    from lazysi.numeric.zoo import load_model

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
    assert len(calls) == 2  # the reference and its half-step error estimate
    x2, _ = bench.cached_reference(provider, "gaussian", [0, 1, 2], 0, (8,), tmp_path, a, steps=8)
    assert len(calls) == 2 and torch.equal(x1, x2)  # reused
    _, info3 = bench.cached_reference(provider, "gaussian", [0, 1, 2], 0, (8,), tmp_path, b, steps=8)
    assert len(calls) == 4  # other weights: recomputed, not reused
    assert info3["model_fingerprint"] == bench.model_fingerprint(b) != info1["model_fingerprint"]
    bench.cached_reference(provider, "gaussian", [0, 1, 3], 0, (8,), tmp_path, b, steps=8)
    assert len(calls) == 6  # other indices: recomputed
