"""``--adaptive --tol``: what the tolerance buys (issue 16 item 4). For each tolerance, the step-size
control of a predictor-corrector on the pilot (32 samples, stream ``pilot``) gives a grid; the
sampler then runs on held-out samples (indices 10000.. of the noise stream) and its pathwise RMSE
against the converged RK4 reference is reported next to the NFE and the pilot's largest accepted
estimate. Prints a Markdown table and writes JSON.

    python benchmarks/adaptive_sweep.py --model mnist-gmm --n 256 --out benchmarks/results/pilot_validation
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lazysi.numeric.evaluation.bench import cached_reference, model_setup
from lazysi.numeric.evaluation.metrics import pathwise_rmse
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.pilot import adaptive_grid_for
from lazysi.numeric.sampling.registry import resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-gmm")
    ap.add_argument("--samplers", nargs="+", default=["lazy-cov-pc", "lazy-cov-pc4"])
    ap.add_argument("--tols", nargs="+", type=float, default=[0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    m, setup, _ = model_setup(args.model)
    idx = list(range(10000, 10000 + args.n))
    ref, info = cached_reference(m.provider, args.model, idx, 0, m.shape, args.out, m.card)
    rows = []
    for name in args.samplers:
        spec = resolve(name)
        for tol in args.tols:
            grid, pilot = adaptive_grid_for(spec, m.provider, setup, m.shape, tol)
            x, nfe = generate(spec, m.provider, grid.numel() - 1, idx, 0, m.shape, setup=setup, grid=grid)
            row = {"sampler": name, "tol": tol, "nfe": nfe, "rmse": pathwise_rmse(x, ref), "pilot": pilot}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "pilot"}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"adaptive_sweep_{args.model}.json").write_text(json.dumps({"reference": info, "rows": rows}, indent=1) + "\n")
    print("\n| sampler | tol | NFE | held-out RMSE | RMSE / tol | pilot: rejected, forced | pilot model calls |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["pilot"]
        print(f"| {r['sampler']} | {r['tol']:g} | {r['nfe']} | {r['rmse']:.4f} | {r['rmse'] / r['tol']:.2f} | "
              f"{p['rejected']}, {p['forced']} | {p['model_calls']} |")


if __name__ == "__main__":
    main()
