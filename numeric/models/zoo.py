"""Model registry: a name or a path -> (FieldProvider on the model's training schedule, card).

Names:

* ``mnist`` — the embedded U-Net velocity model (linear schedule, t = 0 noise), weights
  ``numeric/weights/mnist_flow.safetensors`` + ``.json``;
* ``mnist-gmm`` — the embedded Gaussian mixture fitted to the same digits (exact fields,
  linear schedule), ``numeric/weights/mnist_gmm.*``;
* ``gaussian`` — exact ``N(mu, sigma^2 I)`` in 8 dimensions; ``gaussian-full`` — exact
  ``N(mu, Sigma)`` with a fixed anisotropic Sigma (both defined from parameters, not data);
* a PATH: ``<stem>.safetensors`` + ``<stem>.json`` (card ``class``: ``UNet`` with
  ``prediction``/``schedule`` fields, or ``LowRankMixture``), or a local diffusers model folder
  (a ``config.json`` with ``_class_name`` whose model takes ``(sample, timestep)``, beside or under a
  pipeline folder whose scheduler is ``FlowMatchEulerDiscreteScheduler``).

Every card returned carries ``data_shape``, ``data_mean`` (scalar), ``data_rms_centred`` and
``loaded_from`` (paths and sha256 of the files read). :func:`mean_vector` gives the per-coordinate
data mean used by ``--mu data``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from lazysi.symbolic.families import family

from lazysi.numeric.models import CheckpointError, load_checkpoint, read_card
from lazysi.numeric.models.adapters import ddpm_eps_model, denoiser_model, diffusers_flow_model, velocity_model
from lazysi.numeric.fields.gmm import LowRankMixtureProvider, load_mixture
from lazysi.numeric.fields.gaussian import GaussianProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.io.record import file_sha256

__all__ = ["MODEL_NAMES", "WEIGHTS_DIR", "load_model", "mean_vector", "file_sha256", "CheckpointError"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
MODEL_NAMES = ("mnist", "mnist-gmm", "gaussian", "gaussian-full")

_GAUSS_DIM = 8


def _loaded_from(*paths: Path) -> dict[str, Any]:
    return {str(p): file_sha256(p) for p in paths}


def _gaussian_params(full: bool) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Fixed parameters: mean ``mu_j = 0.5 cos(j)``; isotropic ``sigma = 0.5``; the full covariance is
    ``Q diag(lam) Q^T`` with ``lam`` log-spaced in [0.05, 2] and ``Q`` the orthonormal DCT-II basis."""
    j = torch.arange(_GAUSS_DIM, dtype=torch.float64)
    mu = 0.5 * torch.cos(j)
    if not full:
        return mu, 0.25
    lam = torch.logspace(math.log10(0.05), math.log10(2.0), _GAUSS_DIM, dtype=torch.float64)
    k = j[:, None]
    q = torch.cos(math.pi * (j[None, :] + 0.5) * k / _GAUSS_DIM) * math.sqrt(2.0 / _GAUSS_DIM)
    q[0] /= math.sqrt(2.0)
    q = q.T  # columns are basis vectors
    return mu, q @ torch.diag(lam) @ q.T


def _gaussian(full: bool) -> tuple[FieldProvider, dict[str, Any]]:
    mu, cov = _gaussian_params(full)
    var = torch.diagonal(cov).mean() if isinstance(cov, torch.Tensor) else torch.tensor(cov)
    card = {
        "class": "Gaussian",
        "kind": "exact",
        "description": ("N(mu, Sigma), Sigma = Q diag(logspace(0.05, 2)) Q^T (DCT basis)" if full
                        else "N(mu, sigma^2 I), sigma = 0.5") + f", mu_j = 0.5 cos(j), dim {_GAUSS_DIM}",
        "schedule": "linear",
        "data_shape": [_GAUSS_DIM],
        "data_mean": float(mu.mean()),
        "data_rms_centred": float(var.sqrt()),
        "mean": mu.tolist(),
        "cov": cov.tolist() if isinstance(cov, torch.Tensor) else cov,
        "loaded_from": {},
    }
    return GaussianProvider(NumericSchedule(family("linear")), mu, cov), card


class _TorchNet:
    """Calls a float32 torch module in eval/no-grad mode at the caller's dtype and device."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.param_dtype = next(module.parameters()).dtype

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        dev = next(self.module.parameters()).device
        if x.device != dev:
            self.module.to(x.device)
        with torch.no_grad():
            return self.module(t.to(self.param_dtype), x.to(self.param_dtype)).to(x.dtype)


def _schedule_from_card(card: dict[str, Any], where: Path):
    name = card.get("schedule", "linear")
    params = card.get("schedule_params", {})
    try:
        return family(name, **params)
    except Exception as exc:  # ExpressionError / ScheduleError / TypeError: name it
        raise CheckpointError(f"{where}: bad schedule {name!r} {params}: {exc}") from exc


def _checkpoint(stem: Path) -> tuple[FieldProvider, dict[str, Any]]:
    cpath = stem.with_name(stem.name + ".json")
    wpath = stem.with_name(stem.name + ".safetensors")
    for p in (wpath, cpath):
        if not p.is_file():
            raise FileNotFoundError(f"model file missing: {p}")
    card = read_card(cpath)
    if card.get("class") == "LowRankMixture":
        from safetensors import SafetensorError

        try:
            mix, card = load_mixture(stem)
        except SafetensorError as exc:
            raise CheckpointError(f"{wpath}: not a readable safetensors file ({exc})") from None
        except (KeyError, IndexError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{wpath}: not a valid LowRankMixture checkpoint ({type(exc).__name__}: {exc})") from None
        provider: FieldProvider = LowRankMixtureProvider(NumericSchedule(_schedule_from_card(card, cpath)), mix)
    else:
        model, card = load_checkpoint(stem)
        net = _TorchNet(model)
        kind = card.get("prediction", "velocity")
        sch = _schedule_from_card(card, cpath)
        if kind == "velocity":
            provider = velocity_model(net, sch)
        elif kind == "x0":
            provider = denoiser_model(net, sch)
        elif kind == "eps" and sch.name == "ddpm":
            provider = ddpm_eps_model(lambda u, x: net(u, x), **{k: float(v) for k, v in card.get("schedule_params", {}).items()})
        else:
            raise ValueError(f"{cpath}: unsupported prediction {kind!r} under schedule {sch.name!r}")
    card = dict(card)
    card["loaded_from"] = _loaded_from(wpath, cpath)
    card.setdefault("data_mean", 0.0)
    card.setdefault("data_rms_centred", 1.0)
    return provider, card


def _diffusers_folder(folder: Path) -> tuple[FieldProvider, dict[str, Any]]:
    """A diffusers model folder: ``config.json`` (``_class_name``) + safetensors weights, or a pipeline
    folder with ``model_index.json``, ``scheduler/`` and a ``transformer/`` or ``unet/`` model."""
    if not (folder / "config.json").is_file() and not (folder / "model_index.json").is_file():
        raise CheckpointError(f"{folder}: a folder but not a diffusers model (no config.json or model_index.json)")
    import diffusers

    model_dir, sched_cfg = folder, None
    if (folder / "model_index.json").is_file():
        for sub in ("transformer", "unet"):
            if (folder / sub / "config.json").is_file():
                model_dir = folder / sub
                break
        else:
            raise ValueError(f"{folder}: pipeline folder without a transformer/ or unet/ model")
        sched_path = folder / "scheduler" / "scheduler_config.json"
        sched_cfg = read_card(sched_path) if sched_path.is_file() else None
    elif (folder / "scheduler_config.json").is_file():
        sched_cfg = read_card(folder / "scheduler_config.json")
    config = read_card(model_dir / "config.json")
    cls_name = config.get("_class_name")
    cls = getattr(diffusers, str(cls_name), None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ValueError(f"{model_dir}: unknown diffusers model class {cls_name!r}")
    sched_name = (sched_cfg or {}).get("_class_name", "FlowMatchEulerDiscreteScheduler")
    if sched_name != "FlowMatchEulerDiscreteScheduler":
        raise ValueError(f"{folder}: only flow-matching diffusers models are supported (scheduler {sched_name!r})")
    if not any(model_dir.glob("*.safetensors")):
        raise ValueError(f"{model_dir}: no safetensors weights (pickle formats are never loaded)")
    model = cls.from_pretrained(str(model_dir), use_safetensors=True).eval()
    dtype = next(model.parameters()).dtype

    def net(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = model(x.to(dtype), timestep.to(dtype))
        out = out.sample if hasattr(out, "sample") else out[0] if isinstance(out, tuple) else out
        return out.to(x.dtype)

    num_train = float((sched_cfg or {}).get("num_train_timesteps", 1000))
    provider = diffusers_flow_model(net, timestep_scale=num_train)
    shape = [int(config.get("in_channels", 1)), int(config.get("sample_size", 32)), int(config.get("sample_size", 32))]
    files = [p for p in sorted(model_dir.glob("*")) if p.suffix in (".json", ".safetensors")]
    card = {
        "class": cls_name,
        "kind": "diffusers",
        "prediction": "velocity (diffusers sign: noise - data)",
        "schedule": "linear",
        "scheduler": sched_cfg,
        "data_shape": shape,
        "data_mean": 0.0,
        "data_rms_centred": 1.0,
        "loaded_from": _loaded_from(*files),
    }
    return provider, card


def load_model(name_or_path: str) -> tuple[FieldProvider, dict[str, Any]]:
    """``(provider on the training schedule, card)`` for a registered name or a local path."""
    if name_or_path == "mnist":
        stem = WEIGHTS_DIR / "mnist_flow"
        if not stem.with_name("mnist_flow.safetensors").is_file():
            raise FileNotFoundError(f"the embedded mnist weights are missing ({stem}.safetensors); "
                                    "train them with benchmarks/train_mnist_flow.py")
        return _checkpoint(stem)
    if name_or_path == "mnist-gmm":
        return _checkpoint(WEIGHTS_DIR / "mnist_gmm")
    if name_or_path in ("gaussian", "gaussian-full"):
        return _gaussian(name_or_path == "gaussian-full")
    path = Path(name_or_path)
    if path.is_dir():
        return _diffusers_folder(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    if path.with_name(path.name + ".safetensors").is_file():
        return _checkpoint(path)
    raise ValueError(f"unknown model {name_or_path!r}: not one of {', '.join(MODEL_NAMES)}, "
                     "not a <stem>.safetensors + <stem>.json checkpoint, not a diffusers folder")


def mean_vector(name_or_path: str, provider: FieldProvider, card: dict[str, Any]) -> torch.Tensor:
    """Per-coordinate data mean (float64, shape ``data_shape``): exact for the mixture and Gaussian
    models, the training digits' pixel mean for ``mnist``, else the card's scalar ``data_mean``."""
    shape = tuple(card["data_shape"])
    if isinstance(provider, LowRankMixtureProvider):
        return provider.mixture.mean().to(torch.float64).reshape(shape)
    if "mean" in card and isinstance(card["mean"], list):
        return torch.tensor(card["mean"], dtype=torch.float64).reshape(shape)
    if name_or_path == "mnist":
        from safetensors.torch import load_file

        # written by benchmarks/mnist_stats.py from the training digits (no data package needed here)
        return load_file(str(WEIGHTS_DIR / "mnist_stats.safetensors"))["mean"].to(torch.float64).reshape(shape)
    return torch.full(shape, float(card["data_mean"]), dtype=torch.float64)
