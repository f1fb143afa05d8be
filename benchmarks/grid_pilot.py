"""Pilot measurement of time grids for the covariance-aware samplers (issue 16 item 3): pathwise
RMSE against the converged RK4 reference (``lazysi.numeric.evaluation.bench.cached_reference``) on
PILOT noise (indices 10000.., disjoint from the benchmark's 0..255), for each sampler on the grids
``vp``, ``uniform`` and ``gauss`` at the NFEs given. Prints a Markdown table and writes JSON.

    python benchmarks/grid_pilot.py --model mnist-gmm --n 64 --out /tmp/grid_pilot
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lazysi.numeric.evaluation.bench import cached_reference, model_setup, sample_at_nfe
from lazysi.numeric.evaluation.metrics import pathwise_rmse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-gmm")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--first", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samplers", nargs="+", default=["lazy-cov-pc", "lazy-cov-pc4", "lazy-cov3"])
    ap.add_argument("--grids", nargs="+", default=["vp", "uniform", "gauss"])
    ap.add_argument("--nfes", nargs="+", type=int, default=[2, 3, 4, 6, 8, 12, 16, 32])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.first < 256:
        raise SystemExit("pilot indices must be disjoint from the benchmark's 0..255")
    m, setup, _ = model_setup(args.model)
    idx = list(range(args.first, args.first + args.n))
    ref, info = cached_reference(m.provider, args.model, idx, args.seed, m.shape, args.out, m.card)
    rows = []
    for s in args.samplers:
        for g in args.grids:
            row = {"sampler": s, "grid": g}
            for k in args.nfes:
                x, nfe = sample_at_nfe(f"{s}@{g}", m, k, idx, args.seed, setup)
                row[str(k)] = pathwise_rmse(x, ref)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / f"grid_pilot_{args.model}.json").write_text(json.dumps({"reference": info, "rows": rows}, indent=1) + "\n")
    print(f"\nreference: {info['steps']} RK4 steps, RMS error estimate {info['error_estimate_rmse']:.1e}\n")
    print("| sampler | grid | " + " | ".join(f"NFE {k}" for k in args.nfes) + " |")
    print("|---|---|" + "---|" * len(args.nfes))
    for row in rows:
        print(f"| {row['sampler']} | {row['grid']} | " + " | ".join(f"{row[str(k)]:.4f}" for k in args.nfes) + " |")


if __name__ == "__main__":
    main()
