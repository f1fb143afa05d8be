"""How good is the benchmark's RK4 x 48 reference on the embedded ``mnist`` U-Net, and which
NFE-16/32 results does its error touch?

Computes an RK4 x 192 reference from the same per-sample noise (cached next to the x 48 one,
keyed by the weights' fingerprint), reports the x 48 reference's RMSE against it (overall and
worst sample), re-scores euler / lazy-cov-pc / lazy-cov-pcd / dpm++2m / unipc at NFE 16 and 32
against both references, and compares the ``vp`` and ``uniform`` grids of lazy-cov-pc/-pcd at
NFE 8/16/32 (RMSE, worst and median per-sample error) against RK4 x 192.

    python benchmarks/reference_check.py      # writes benchmarks/results/mnist/reference_check.json
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from lazysi.numeric import bench, covlazy
from lazysi.numeric.metrics import pathwise_rmse
from lazysi.numeric.zoo import load_model

OUT = Path(__file__).resolve().parent / "results" / "mnist"


def per_sample(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (x.to(torch.float64) - ref.to(torch.float64)).pow(2).reshape(x.shape[0], -1).mean(1).sqrt()


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    provider, card = load_model("mnist")
    shape, idx = tuple(card["data_shape"]), list(range(128))
    ctx = bench._model_ctx("mnist", provider, card, None)
    ref48, _ = bench.cached_reference(provider, "mnist", idx, 0, shape, OUT, card)
    ref192, _ = bench.cached_reference(provider, "mnist", idx, 0, shape, OUT, card, steps=192)
    e = per_sample(ref48, ref192)
    result = {"reference_rk4x48_vs_rk4x192": {"rmse": pathwise_rmse(ref48, ref192), "max_per_sample": float(e.max()),
                                             "samples_above_0.01": int((e > 0.01).sum())},
              "rescored": [], "grids": []}
    print(result["reference_rk4x48_vs_rk4x192"], flush=True)
    for k in (16, 32):
        for s in ("euler", "lazy-cov-pc", "lazy-cov-pcd", "dpm++2m", "unipc"):
            x, _ = bench.sample_any(provider, s, k, idx, 0, shape, ctx)
            row = {"sampler": s, "nfe": k, "rmse_ref48": pathwise_rmse(x, ref48), "rmse_ref192": pathwise_rmse(x, ref192)}
            result["rescored"].append(row)
            print(row, flush=True)
    for k in (8, 16, 32):
        for g in ("vp", "uniform"):
            for s in ("lazy-cov-pc", "lazy-cov-pcd"):
                x, _ = covlazy.generate_cov(provider, s, k, idx, 0, shape, ctx["approx"], grid=g, sigma=ctx["sigma"])
                e = per_sample(x, ref192)
                row = {"sampler": s, "nfe": k, "grid": g, "rmse_ref192": pathwise_rmse(x, ref192),
                       "worst": float(e.max()), "median": float(e.median())}
                result["grids"].append(row)
                print(row, flush=True)
    result["training_steps"] = card.get("training_steps")
    result["model_fingerprint"] = bench.model_fingerprint(card)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (OUT / "reference_check.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT / 'reference_check.json'} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
