"""A loaded model with what every sampler needs from it: its provider on the training schedule,
its card, and its sampling settings (lazy data scale, centring mean, Gaussian approximation).

``Model.load(name)`` accepts the embedded names (``mnist``, ``mnist-gmm``, ``gaussian``,
``gaussian-full``) or a checkpoint PATH (:func:`lazysi.numeric.models.zoo.load_model`).
:meth:`Model.setup` resolves the settings into a
:class:`~lazysi.numeric.sampling.frames.SamplingSetup` for the generate path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.models.moments import approx_for_model, lazy_settings, resolve_sigma
from lazysi.numeric.models.zoo import load_model, mean_vector
from lazysi.numeric.sampling.frames import Frame, SamplingSetup

__all__ = ["Model"]


@dataclass
class Model:
    """``name``: the name or path it was loaded from; ``provider``: the model on its training
    schedule; ``card``: its JSON card (with ``data_shape``, ``data_mean``, ``data_rms_centred``,
    ``loaded_from``)."""

    name: str
    provider: FieldProvider
    card: dict[str, Any]
    _approx: dict[tuple[str, int], GaussianApprox] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, name: str) -> "Model":
        provider, card = load_model(name)
        return cls(name, provider, card)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.card["data_shape"])

    @cached_property
    def settings(self) -> dict[str, Any]:
        """The stored lazy-sampling settings (``<stem>.lazy.json``; ``{}`` when there are none)."""
        return lazy_settings(self.name)

    def sigma(self, override: float | None = None, rule: str = "settings") -> tuple[float, str]:
        """The lazy data scale and its source (argument > the rule's value: see
        :func:`~lazysi.numeric.models.moments.resolve_sigma`)."""
        return resolve_sigma(self.name, self.card, override, self.settings, rule)

    @cached_property
    def mean(self) -> torch.Tensor:
        """The per-coordinate data mean (float64, the data shape)."""
        return mean_vector(self.name, self.provider, self.card)

    def approx(self, kind: str = "full", rank: int = 64) -> GaussianApprox:
        """The Gaussian approximation of the data (cached per kind and rank)."""
        key = (kind, rank)
        if key not in self._approx:
            self._approx[key] = approx_for_model(self.name, self.provider, self.card, kind, rank)
        return self._approx[key]

    def setup(self, *, sigma: float | None = None, mu: str | float = "data", gaussian: bool = True,
              approx_kind: str = "full", rank: int = 64, shift: float = 3.0, nu: float = 1.0,
              frame: Frame | None = None) -> SamplingSetup:
        """The sampling settings: ``sigma`` (None: the default of ``frame``'s sigma rule), ``mu``
        (``"data"``: the per-coordinate data mean, or a number), the Gaussian approximation when
        ``gaussian`` (or when ``frame`` needs it)."""
        if frame is not None:
            gaussian = frame.gaussian
        s, _ = self.sigma(sigma, frame.sigma_rule if frame is not None else "settings")
        if mu == "data":
            mu_t = self.mean
        else:
            value = float(mu)
            if not math.isfinite(value):
                raise ValueError(f"mu must be finite, got {mu!r}")
            mu_t = torch.tensor(value, dtype=torch.float64)
        return SamplingSetup(sigma=s, mu=mu_t, approx=self.approx(approx_kind, rank) if gaussian else None,
                             shift=shift, nu=nu)
