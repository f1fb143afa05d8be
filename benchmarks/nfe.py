"""Recorded few-step benchmarks (issue 7, item 5): ``python benchmarks/nfe.py [mnist-gmm|mnist]``
runs exactly the ``lazysi bench`` command recorded in BENCHMARKS.md for that model ("Few-step
sampling: quality vs NFE"; default ``mnist-gmm``); extra arguments are passed on (e.g. ``--quick``).
The logic lives in :mod:`lazysi.numeric.evaluation.bench`."""
from __future__ import annotations

import sys

from lazysi.cli import main

RECORDED = {
    "mnist-gmm": ["bench", "--models", "mnist-gmm", "--nfe", "1", "2", "3", "4", "6", "8", "12", "16",
                  "--samplers", "euler", "lazy-ode", "lazy-heun", "lazy-cov", "lazy-cov2", "lazy-cov-pc", "lazy-cov-pcd",
                  "lazy-cov-pcd@uniform", "fm-euler", "dpm++2m", "unipc", "fm-midpoint",
                  "--n", "256", "--n-fid", "2000", "--fid", "4", "--fid-extra", "euler:16",
                  "--out", "benchmarks/results"],
    # the U-Net costs ~1.5 ms per sample evaluation here: fewer samples for RMSE; FID of every sampler at NFE 4,
    # of Euler at 16/32 and of the best few at 16
    "mnist": ["bench", "--models", "mnist", "--nfe", "1", "2", "3", "4", "6", "8", "12", "16", "32",
              "--samplers", "euler", "lazy-ode", "lazy-cov", "lazy-cov2", "lazy-cov-pc", "lazy-cov-pcd",
              "lazy-cov-pcd@uniform", "fm-euler", "dpm++2m", "unipc", "fm-midpoint",
              "--n", "128", "--n-fid", "2000", "--fid", "4",
              "--fid-extra", "euler:16", "euler:32", "lazy-cov-pcd:16", "lazy-cov-pcd@uniform:16", "dpm++2m:16", "unipc:16",
              "--out", "benchmarks/results/mnist"],
}

if __name__ == "__main__":
    args = sys.argv[1:]
    model = args.pop(0) if args and args[0] in RECORDED else "mnist-gmm"
    raise SystemExit(main(RECORDED[model] + args))
