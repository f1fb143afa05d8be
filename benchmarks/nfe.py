"""Recorded few-step benchmark (issue 7, item 5): ``python benchmarks/nfe.py`` runs exactly the
``lazysi bench`` command recorded in BENCHMARKS.md ("Few-step sampling: quality vs NFE"); extra
arguments are passed on (e.g. ``--quick``). The logic lives in :mod:`lazysi.numeric.bench`."""
from __future__ import annotations

import sys

from lazysi.cli import main

RECORDED = ["bench", "--models", "mnist-gmm", "--nfe", "1", "2", "3", "4", "6", "8", "12", "16",
            "--samplers", "euler", "lazy-ode", "lazy-heun", "lazy-cov", "lazy-cov2", "lazy-cov-pc",
            "fm-euler", "dpm++2m", "unipc", "fm-midpoint",
            "--n", "256", "--n-fid", "2000", "--fid",
            "--fid-extra", "euler:4", "lazy-ode:4", "lazy-cov:4", "lazy-cov2:4", "lazy-cov-pc:4", "dpm++2m:4", "unipc:4", "euler:16",
            "--out", "benchmarks/results"]

if __name__ == "__main__":
    raise SystemExit(main(RECORDED + sys.argv[1:]))
