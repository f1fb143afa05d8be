"""Validation of the pilot grids on held-out noise (issue 16): pathwise RMSE of one sampler on the
grids ``vp`` (its default), ``dp``, ``ctrl`` and ``auto`` built from a pilot of ``--rows`` samples
(stream ``pilot``), measured on ``--n`` samples of the noise stream at indices 10000.. (disjoint
from the benchmark's 0..255 and from the pilot), against the converged RK4 reference. Prints a
Markdown table and writes JSON.

    python benchmarks/pilot_validation.py --model mnist-gmm --rows 32 --n 256 --out benchmarks/results/pilot_validation
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lazysi.numeric.evaluation.bench import cached_reference, model_setup
from lazysi.numeric.evaluation.metrics import pathwise_rmse
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.pilot import PilotConfig, pilot_grid
from lazysi.numeric.sampling.registry import resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-gmm")
    ap.add_argument("--sampler", default="lazy-cov-pc")
    ap.add_argument("--rows", type=int, default=32, help="pilot samples")
    ap.add_argument("--n", type=int, default=256, help="validation samples (indices 10000..)")
    ap.add_argument("--nfes", nargs="+", type=int, default=[4, 8, 12, 16, 32])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    m, setup, _ = model_setup(args.model)
    idx = list(range(10000, 10000 + args.n))
    ref, info = cached_reference(m.provider, args.model, idx, 0, m.shape, args.out, m.card)
    cfg = PilotConfig(rows=args.rows)
    spec = resolve(f"{args.sampler}@auto")
    rows = []
    for kind in ("default", "dp", "ctrl", "auto"):
        row = {"grid": kind}
        for k in args.nfes:
            steps = spec.steps_for(k)
            g = None if kind == "default" else pilot_grid(kind, spec, m.provider, setup, steps, m.shape, 8, cfg)[0]
            x, _ = generate(resolve(args.sampler), m.provider, steps, idx, 0, m.shape, setup=setup, grid=g)
            row[str(k)] = pathwise_rmse(x, ref)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"pilot_validation_{args.model}_{args.sampler}_rows{args.rows}.json").write_text(
        json.dumps({"reference": info, "rows": rows, "pilot_rows": args.rows, "n": args.n}, indent=1) + "\n")
    print(f"\n| pilot rows | grid | " + " | ".join(f"NFE {k}" for k in args.nfes) + " |")
    print("|---|---|" + "---|" * len(args.nfes))
    for row in rows:
        print(f"| {args.rows} | {row['grid']} | " + " | ".join(f"{row[str(k)]:.4f}" for k in args.nfes) + " |")


if __name__ == "__main__":
    main()
