"""The benchmark reference on the embedded ``mnist`` U-Net, and what the quality floor's sampler
is worth against it.

* The bench's reference (:func:`lazysi.numeric.evaluation.bench.cached_reference`: RK4 doubled from x 48
  until the RMS change over all 128 samples is <= 1e-3; the same cache file ``lazysi bench``
  uses) with its doubling history.
* The fixed RK4 x 48 reference used until stop 11: its error against that reference (overall,
  worst sample, samples above 0.01) — why the reference became adaptive.
* ``rk4 x 8`` (NFE 32, the sampler of the quality floor in BENCHMARKS.md, standing in for the
  ``reference`` sampler there): its pathwise error against the reference, and whether the
  committed classifier's calibrated "confidence >= 0.9" decision is the same for both on each of
  the 128 samples.
* The per-sample error distribution at NFE 16 and 32 of lazy-cov-pcd / lazy-cov-pc on the uniform
  grid, UniPC and DPM-Solver++ (median, 90th percentile, the three worst samples and the RMSE
  without them): where the NFE-32 loss to UniPC comes from; and, for the samples that dominate it
  (55, 8, 70, 12), the error of lazy-cov-pcd@uniform, UniPC and Euler at NFE 16–128 (is it
  convergence, or luck on a near-chaotic trajectory?).
* lazy-cov-pcd at NFE 4 and 8 on vp(sigma) grids for sigma from 0.5 to 6 (``sigma`` only places
  the grid of the covariance-aware samplers): is the NFE-4 shortfall against Euler at NFE 16 a
  matter of the grid's sigma?

    python benchmarks/reference_check.py      # writes benchmarks/results/mnist/reference_check.json
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from dataclasses import replace

from lazysi.numeric.evaluation import bench
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.evaluation.metrics import classifier_probabilities, pathwise_rmse

OUT = Path(__file__).resolve().parent / "results" / "mnist"


def per_sample(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (x.to(torch.float64) - ref.to(torch.float64)).pow(2).reshape(x.shape[0], -1).mean(1).sqrt()


def error_summary(x: torch.Tensor, ref: torch.Tensor) -> dict:
    e = per_sample(x, ref)
    return {"rmse": pathwise_rmse(x, ref), "max_per_sample": float(e.max()), "median_per_sample": float(e.median()),
            "samples_above_0.01": int((e > 0.01).sum()), "worst_samples": e.argsort(descending=True)[:5].tolist()}


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    model, setup, _ = bench.model_setup("mnist")
    provider, card = model.provider, model.card
    shape, idx = tuple(card["data_shape"]), list(range(128))
    ref, info = bench.cached_reference(provider, "mnist", idx, 0, shape, OUT, card)
    result = {"reference": info}
    x48, _ = generate("rk4", provider, 48, idx, 0, shape)
    result["fixed_rk4x48_vs_reference"] = error_summary(x48, ref)
    print(result["fixed_rk4x48_vs_reference"], flush=True)
    x8, _ = generate("rk4", provider, 8, idx, 0, shape)
    conf8, conf_ref = classifier_probabilities(x8).max(1).values, classifier_probabilities(ref).max(1).values
    result["rk4x8_vs_reference"] = {
        **error_summary(x8, ref),
        "share_confident_rk4x8": float((conf8 >= 0.9).double().mean()),
        "share_confident_reference": float((conf_ref >= 0.9).double().mean()),
        "same_decision": int(((conf8 >= 0.9) == (conf_ref >= 0.9)).sum()), "n": len(idx)}
    print(result["rk4x8_vs_reference"], flush=True)
    result["per_sample_errors"] = []
    for k in (16, 32):
        for name in ("lazy-cov-pcd@uniform", "lazy-cov-pc@uniform", "unipc", "dpm++2m"):
            x, _ = bench.sample_at_nfe(name, model, k, idx, 0, setup)
            e = per_sample(x, ref)
            worst = e.sort(descending=True)
            row = {"sampler": name, "nfe": k, "rmse": pathwise_rmse(x, ref), "median": float(e.median()),
                   "p90": float(e.quantile(0.9)),
                   "worst3": [[int(i), float(v)] for v, i in zip(worst.values[:3], worst.indices[:3])],
                   "rmse_without_worst3": float(worst.values[3:].pow(2).mean().sqrt())}
            result["per_sample_errors"].append(row)
            print(row, flush=True)
    hard = [55, 8, 70, 12]
    result["hard_samples"] = {"indices": hard, "rows": []}
    for k in (16, 32, 48, 64, 96, 128):
        for name in ("lazy-cov-pcd@uniform", "unipc", "euler"):
            x, _ = bench.sample_at_nfe(name, model, k, hard, 0, setup)
            row = {"sampler": name, "nfe": k, "errors": per_sample(x, ref[hard]).tolist()}
            result["hard_samples"]["rows"].append(row)
            print(row, flush=True)
    result["grid_sigma_sweep"] = []
    for k in (4, 8):
        for sg in (0.5, 1.0, 1.5, setup.sigma, 2.5, 3.0, 4.0, 6.0):
            x, _ = generate("lazy-cov-pcd", provider, k, idx, 0, shape, setup=replace(setup, sigma=sg), grid="vp")
            row = {"sampler": "lazy-cov-pcd", "nfe": k, "grid_sigma": sg, "rmse": pathwise_rmse(x, ref)}
            result["grid_sigma_sweep"].append(row)
            print(row, flush=True)
    result["training_steps"] = card.get("training_steps")
    result["model_fingerprint"] = bench.model_fingerprint(card)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (OUT / "reference_check.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT / 'reference_check.json'} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
