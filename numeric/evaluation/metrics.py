"""Sample-quality metrics for the few-step benchmark (``lazysi bench``).

* :func:`pathwise_rmse`: ``sqrt(mean_{i,j} (x_ij - ref_ij)^2)`` between samples and a reference
  solution of the same ODE from the SAME initial noise (ODE samplers only).
* :func:`classifier_fid`: Fréchet distance between Gaussians fitted (float64 moments) to the
  committed MNIST classifier's 128-d penultimate features of two image sets
  (:func:`lazysi.numeric.io.shards.frechet_distance`); images are clipped to the data range
  [-1, 1] before the classifier. :func:`fid_floor`: the same between ``n`` real training digits
  and the 1,000 held-out digits — the value a perfect sampler would get at that sample count.
* :func:`classifier_probabilities`: the committed classifier's class probabilities, softmax of the
  logits divided by the card's ``temperature`` (:func:`fit_temperature`, NLL-optimal on held-out
  digits; temperature scaling changes neither the predicted class nor the FID features).
  :func:`expected_calibration_error` measures how far confidence is from accuracy.
* :func:`sliced_w2`: sliced Wasserstein-2 (POT's ``ot.sliced_wasserstein_distance``, fixed
  projection seed) between flattened sample sets, e.g. against exact samples of ``mnist-gmm``
  (:func:`mixture_samples`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from lazysi.numeric.evaluation.fid import frechet_distance
from lazysi.numeric.models import load_checkpoint
from lazysi.numeric.models.zoo import WEIGHTS_DIR
from lazysi.numeric.models.data import load_mnist

__all__ = [
    "pathwise_rmse",
    "gaussian_moments",
    "fid_from_features",
    "classifier",
    "classifier_card",
    "classifier_features",
    "classifier_logits",
    "classifier_probabilities",
    "fit_temperature",
    "expected_calibration_error",
    "classifier_fid",
    "heldout_features",
    "fid_floor",
    "sliced_w2",
    "mixture_samples",
    "SW_PROJECTIONS",
    "SW_SEED",
]

SW_PROJECTIONS = 256
SW_SEED = 0


def pathwise_rmse(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Root mean square difference over all samples and coordinates (float64)."""
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(ref.shape)}")
    return float(((x.to(torch.float64) - ref.to(torch.float64)) ** 2).mean().sqrt())


def gaussian_moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (float64) of ``(n, k)`` features, n >= 2."""
    f = torch.as_tensor(features).to(torch.float64).reshape(features.shape[0], -1)
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {f.shape[0]}")
    mu = f.mean(0)
    fc = f - mu
    return mu, fc.T @ fc / (f.shape[0] - 1)


def fid_from_features(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets."""
    m1, c1 = gaussian_moments(f1)
    m2, c2 = gaussian_moments(f2)
    return frechet_distance(m1, c1, m2, c2)


@lru_cache(maxsize=1)
def classifier():
    """The committed MNIST classifier (eval mode, float32, CPU)."""
    model, _ = load_checkpoint(WEIGHTS_DIR / "mnist_classifier")
    return model.eval()


@lru_cache(maxsize=1)
def classifier_card() -> dict:
    """The committed MNIST classifier's JSON card (architecture, accuracy, ``temperature``, calibration record)."""
    import json

    return json.loads((WEIGHTS_DIR / "mnist_classifier.json").read_text())


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, lo: float = 1e-3, hi: float = 1e3) -> float:
    """The temperature ``T`` minimising the mean negative log-likelihood of ``softmax(logits / T)``
    for ``labels`` (temperature scaling, Guo et al. 2017). In ``b = 1/T`` the NLL
    ``mean(logsumexp(b z) - b z_y)`` is convex (its second derivative is the mean variance of the
    logits under the softmax), so its derivative ``mean(E_p[z] - z_y)`` is increasing and bisection
    on it (in log b, float64, to relative precision 1e-12) finds the unique minimiser. Raises when
    the minimiser is not inside ``[lo, hi]`` (e.g. a classifier that is never wrong on these
    labels has no finite NLL-optimal temperature)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    if z.ndim != 2 or y.shape != (z.shape[0],) or z.shape[0] == 0:
        raise ValueError(f"need logits (n, classes) and labels (n,), got {tuple(z.shape)} and {tuple(y.shape)}")
    zy = z.gather(1, y[:, None])[:, 0]

    def slope(b: float) -> float:
        return float((torch.softmax(b * z, 1) * z).sum(1).sub(zy).mean())

    b_lo, b_hi = 1.0 / hi, 1.0 / lo
    if slope(b_lo) >= 0 or slope(b_hi) <= 0:
        raise ValueError(f"the NLL-optimal temperature is outside [{lo}, {hi}] for these logits and labels")
    for _ in range(200):
        mid = math.sqrt(b_lo * b_hi)
        b_lo, b_hi = (mid, b_hi) if slope(mid) < 0 else (b_lo, mid)
        if b_hi / b_lo - 1 < 1e-12:
            break
    return 1.0 / math.sqrt(b_lo * b_hi)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """``sum_b (n_b / n) |accuracy_b - mean confidence_b|`` over ``bins`` equal-width bins of the top
    probability (the usual ECE)."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    conf, pred = p.max(1)
    correct = (pred == torch.as_tensor(labels)).to(torch.float64)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += float(m.to(torch.float64).mean() * (correct[m].mean() - conf[m].mean()).abs())
    return ece


def classifier_logits(x: torch.Tensor, model=None, batch: int = 500) -> torch.Tensor:
    """Logits (float64, ``(n, classes)``) of images in data space (clipped to [-1, 1]) under ``model``
    (default: the committed classifier), in chunks of ``batch``."""
    model = classifier() if model is None else model
    out = []
    with torch.no_grad():
        for chunk in torch.split(torch.as_tensor(x), batch):
            out.append(model(chunk.to(torch.float32).clamp(-1.0, 1.0).cpu()).to(torch.float64))
    return torch.cat(out)


def classifier_probabilities(x: torch.Tensor, calibrated: bool = True, batch: int = 500) -> torch.Tensor:
    """Class probabilities (float64, ``(n, 10)``) of images in data space (clipped to [-1, 1]):
    ``softmax(logits / T)`` with the card's ``temperature`` ``T``, or ``T = 1`` if not ``calibrated``."""
    temperature = float(classifier_card().get("temperature", 1.0)) if calibrated else 1.0
    return torch.softmax(classifier_logits(x, batch=batch) / temperature, 1)


def classifier_features(x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """128-d penultimate features (float64) of images ``(n, 1, 28, 28)`` in data space."""
    model = classifier()
    out = []
    with torch.no_grad():
        for chunk in torch.split(torch.as_tensor(x), batch):
            out.append(model.features(chunk.to(torch.float32).clamp(-1.0, 1.0).cpu()).to(torch.float64))
    return torch.cat(out)


@lru_cache(maxsize=1)
def heldout_features() -> torch.Tensor:
    """Features of the 1,000 held-out ("test" split) digits."""
    return classifier_features(load_mnist("test"))


def classifier_fid(x: torch.Tensor) -> float:
    """Classifier-FID of images ``x`` against the 1,000 held-out digits."""
    return fid_from_features(classifier_features(x), heldout_features())


def fid_floor(n: int) -> float:
    """Classifier-FID of the first ``n`` training digits of a fixed permutation (seed 0) against
    the held-out digits: the floor at sample count ``n`` (n <= 4,000)."""
    train = load_mnist("train")
    if not 2 <= n <= train.shape[0]:
        raise ValueError(f"n must be in [2, {train.shape[0]}], got {n}")
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(train.shape[0], generator=g)[:n]
    return fid_from_features(classifier_features(train[perm]), heldout_features())


def sliced_w2(x: torch.Tensor, y: torch.Tensor, n_projections: int = SW_PROJECTIONS, seed: int = SW_SEED) -> float:
    """Sliced Wasserstein-2 between the empirical measures of ``x`` and ``y`` (flattened rows),
    ``sqrt(E_theta W2^2(theta.x, theta.y))`` estimated with ``n_projections`` directions drawn
    uniformly on the sphere from ``seed`` (POT)."""
    import ot

    a = np.ascontiguousarray(torch.as_tensor(x).to(torch.float64).reshape(x.shape[0], -1).cpu().numpy())
    b = np.ascontiguousarray(torch.as_tensor(y).to(torch.float64).reshape(y.shape[0], -1).cpu().numpy())
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    return float(ot.sliced_wasserstein_distance(a, b, n_projections=n_projections, p=2, seed=seed))


def mixture_samples(mixture, n: int, seed: int) -> torch.Tensor:
    """``n`` exact samples of a :class:`~lazysi.numeric.fields.gmm.LowRankMixture` (float64) from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    mix = mixture.to(torch.float64)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    zf = torch.randn(n, mix.rank, generator=g, dtype=torch.float64)
    zd = torch.randn(n, mix.dim, generator=g, dtype=torch.float64)
    return mix.sample(u, zf, zd)
