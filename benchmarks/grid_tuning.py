"""How much is left in the time grid? Tune a covariance-aware lazy sampler's grid on pilot noise,
measure it on the benchmark's own (held-out) noise.

For each NFE the ``steps - 1`` interior times are parametrised as a monotone warp of the lazy
``vp(sigma)`` grid (softmax increments in the grid's own index, interpolated through it; zero
parameters = the vp grid) and minimised with Nelder--Mead (scipy) on the pathwise RMSE to an
RK4 x 48 reference of ``--pilot`` samples whose noise indices (10000, 10001, ...) are disjoint from
the benchmark's. The tuned grid is then scored on the benchmark's ``--n`` samples (indices 0..n-1,
the reference that ``benchmarks/nfe.py`` caches), next to the untuned vp grid -- the same way as an
"align your steps" schedule would be, with no access to the held-out noise.

    python benchmarks/grid_tuning.py --model mnist-gmm --sampler lazy-cov-pc --nfe 4 8
    python benchmarks/grid_tuning.py --model mnist --sampler lazy-cov-pcd --nfe 4 8 --n 128

Writes ``benchmarks/results/grid_tuning_<model>_<sampler>_pilot<P>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

from lazysi.numeric.evaluation import bench
from lazysi.numeric.sampling.frames import FRAMES
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.registry import SAMPLERS
from lazysi.numeric.evaluation.metrics import pathwise_rmse

RESULTS = Path(__file__).resolve().parent / "results"
PILOT_OFFSET = 10000


def warped(base: torch.Tensor, theta: np.ndarray) -> list[float]:
    """Grid times from ``steps - 1`` parameters: increments ``softmax([theta, 0])`` in the index of
    ``base``, mapped through ``base`` by linear interpolation (``theta = 0`` gives ``base``)."""
    w = np.exp(np.concatenate([theta, [0.0]]) - max(0.0, float(np.max(theta, initial=0.0))))
    u = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    u[-1] = 1.0
    knots = np.linspace(0.0, 1.0, base.numel())
    t = np.interp(u, knots, base.numpy())
    t[0], t[-1] = 0.0, 1.0
    return t.tolist()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-gmm")
    ap.add_argument("--sampler", default="lazy-cov-pc", choices=[n for n, s in SAMPLERS.items() if s.frame.gaussian])
    ap.add_argument("--nfe", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--n", type=int, default=256, help="held-out samples (the benchmark's indices 0..n-1)")
    ap.add_argument("--pilot", type=int, default=32, help="pilot samples the grid is tuned on")
    ap.add_argument("--maxfev", type=int, default=25, help="objective evaluations per interior time")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="where the cached references live "
                    "(default: benchmarks/results, benchmarks/results/mnist for mnist)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or (RESULTS / "mnist" if args.model == "mnist" else RESULTS)
    model, setup, info = bench.model_setup(args.model)
    provider, card = model.provider, model.card
    shape = tuple(card["data_shape"])
    t0 = time.perf_counter()
    held = list(range(args.n))
    pilot = list(range(PILOT_OFFSET, PILOT_OFFSET + args.pilot))
    ref_held, _ = bench.cached_reference(provider, args.model, held, 0, shape, out, card)
    ref_pilot, _ = bench.cached_reference(provider, args.model, pilot, 0, shape, out / "pilot", card)

    def rmse(grid, idx, ref) -> float:
        x, _ = generate(args.sampler, provider, len(grid) - 1, idx, 0, shape, setup=setup, grid=grid)
        return pathwise_rmse(x, ref)

    rows = []
    for nfe in args.nfe:
        base = FRAMES["gaussian"].grid("vp", provider.schedule, nfe, setup)
        th0 = np.zeros(nfe - 1)
        simplex = np.vstack([th0] + [th0 + 0.4 * np.eye(nfe - 1)[i] for i in range(nfe - 1)])
        res = minimize(lambda th: rmse(warped(base, th), pilot, ref_pilot), th0, method="Nelder-Mead",
                       options={"maxfev": args.maxfev * (nfe - 1), "xatol": 1e-3, "fatol": 1e-6,
                                "initial_simplex": simplex})
        tuned = warped(base, res.x)
        row = {"nfe": nfe, "vp_grid": base.tolist(), "tuned_grid": tuned, "evaluations": int(res.nfev),
               "pilot_rmse_vp": rmse(base.tolist(), pilot, ref_pilot), "pilot_rmse_tuned": float(res.fun),
               "heldout_rmse_vp": rmse(base.tolist(), held, ref_held), "heldout_rmse_tuned": rmse(tuned, held, ref_held)}
        rows.append(row)
        print(f"NFE {nfe}: pilot {row['pilot_rmse_vp']:.4f} -> {row['pilot_rmse_tuned']:.4f}, held-out "
              f"{row['heldout_rmse_vp']:.4f} -> {row['heldout_rmse_tuned']:.4f} "
              f"({100 * (1 - row['heldout_rmse_tuned'] / row['heldout_rmse_vp']):+.1f} %), "
              f"grid {[round(v, 4) for v in tuned]}", flush=True)
    result = {"model": args.model, "sampler": args.sampler, "sigma": setup.sigma, "n_heldout": args.n,
              "n_pilot": args.pilot, "pilot_indices_from": PILOT_OFFSET, "rows": rows,
              "training_steps": card.get("training_steps"), "model_fingerprint": bench.model_fingerprint(card),
              "seconds": round(time.perf_counter() - t0, 1),
              "command": "python benchmarks/grid_tuning.py " + " ".join(
                  [f"--model {args.model}", f"--sampler {args.sampler}", "--nfe " + " ".join(map(str, args.nfe)),
                   f"--n {args.n}", f"--pilot {args.pilot}", f"--maxfev {args.maxfev}"])}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"grid_tuning_{args.model}_{args.sampler}_pilot{args.pilot}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
