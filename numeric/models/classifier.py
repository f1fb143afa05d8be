"""A small CNN classifier for 1x28x28 MNIST digits scaled to ``[-1, 1]``.

Used by the numeric benchmarks as a feature extractor (a 128-d penultimate
embedding, for Frechet-type distances between sample sets) and as a label
predictor (class histograms of generated digits).

Layout::

    [conv3x3 -> BN -> ReLU] x 2  (32 ch)  -> maxpool  28 -> 14
    [conv3x3 -> BN -> ReLU] x 2  (64 ch)  -> maxpool  14 -> 7
    flatten -> dropout -> linear(64*7*7 -> 128) -> ReLU      <- features(x)
    dropout -> linear(128 -> 10)                             <- forward(x), logits
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["MNISTClassifier"]


class MNISTClassifier(nn.Module):
    """Small CNN MNIST classifier with a ``features`` method (128-d by default).

    Args:
        channels: channels of the two convolutional stages.
        feature_dim: width of the penultimate (feature) layer.
        num_classes: number of output logits.
        dropout: dropout rate before each linear layer (train mode only).
    """

    def __init__(
        self,
        channels: tuple[int, int] | list[int] = (32, 64),
        feature_dim: int = 128,
        num_classes: int = 10,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        self._config: dict[str, Any] = {
            "channels": [c1, c2],
            "feature_dim": int(feature_dim),
            "num_classes": int(num_classes),
            "dropout": float(dropout),
        }

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]

        self.body = nn.Sequential(*stage(1, c1), *stage(c1, c2), nn.Flatten())
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c2 * 7 * 7, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict."""
        return dict(self._config, channels=list(self._config["channels"]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(batch, feature_dim)`` of images ``(batch, 1, 28, 28)`` in ``[-1, 1]``."""
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, num_classes)``."""
        return self.out(self.features(x))
