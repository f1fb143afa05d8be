"""Diagnostics behind the "honestly" paragraphs of BENCHMARKS.md (few-step sampling, issue 7).

1. ``mnist`` U-Net, NFE 4, 64 samples: pathwise error to the cached RK4 x 48 reference split into
   background (reference pixel < -0.9) and foreground, and the share of pixels outside
   [-1.05, 1.05], per sampler -- why the lazy samplers that integrate to t = 1 lose FID.
2. ``mnist`` U-Net, lazy-cov-pc NFE 4: RMSE (n = 128) and classifier-FID (n = 2,000) versus the
   variance floor of the Gaussian approximation.
3. ``mnist-gmm``, lazy-cov-pc: RMSE (n = 256) versus the time grid at NFE 4 and 8.

Needs the references that ``python benchmarks/nfe.py [mnist-gmm|mnist]`` caches (recomputed when
absent). Writes ``benchmarks/results/lazy_diagnostics.json`` and prints the tables.

    python benchmarks/lazy_diagnostics.py
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from dataclasses import replace

from lazysi.numeric.evaluation import bench, metrics
from lazysi.numeric.models.moments import approx_for_model
from lazysi.numeric.sampling.generate import generate

OUT = Path(__file__).resolve().parent / "results"


def _reference(model: str, provider, card, n: int, out: Path) -> torch.Tensor:
    ref, _ = bench.cached_reference(provider, model, list(range(n)), 0, tuple(card["data_shape"]), out, card)
    return ref.to(torch.float64)


def background_split(model, setup) -> list[dict]:
    provider, card = model.provider, model.card
    ref = _reference("mnist", provider, card, 128, OUT / "mnist")[:64]
    bg = ref < -0.9
    rows = []
    for name in ("euler", "unipc", "dpm++2m", "lazy-cov", "lazy-cov-pc", "lazy-cov-pcd", "lazy-ode"):
        x, _ = bench.sample_at_nfe(name, model, 4, list(range(64)), 0, setup)
        e = x.to(torch.float64) - ref
        rows.append({"sampler": name, "rmse": float(e.pow(2).mean().sqrt()),
                     "background_rmse": float(e[bg].pow(2).mean().sqrt()),
                     "foreground_rmse": float(e[~bg].pow(2).mean().sqrt()),
                     "out_of_range": float((x.abs() > 1.05).to(torch.float64).mean())})
        print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else str(v) for k, v in rows[-1].items()), flush=True)
    return rows


def floor_sweep(model, setup) -> list[dict]:
    provider, card = model.provider, model.card
    ref = _reference("mnist", provider, card, 128, OUT / "mnist")
    shape = tuple(card["data_shape"])
    rows = []
    for floor in (1e-6, 1e-4, 1e-3, 1e-2, 5e-2):
        floored = replace(setup, approx=approx_for_model("mnist", provider, card, "full", floor=floor))
        x, _ = generate("lazy-cov-pc", provider, 4, list(range(128)), 0, shape, setup=floored)
        xf, _ = generate("lazy-cov-pc", provider, 4, list(range(2000)), 0, shape, setup=floored)
        rows.append({"floor": floor, "rmse": metrics.pathwise_rmse(x, ref),
                     "fid": metrics.classifier_fid(xf)})
        print(f"floor {floor:g}: rmse {rows[-1]['rmse']:.4f} FID {rows[-1]['fid']:.2f}", flush=True)
    return rows


def grid_sweep() -> list[dict]:
    model, setup, _ = bench.model_setup("mnist-gmm")
    provider, card = model.provider, model.card
    ref = _reference("mnist-gmm", provider, card, 256, OUT)
    rows = []
    for nfe in (4, 8):
        for grid, sigma in (("vp", 1.3), ("vp", setup.sigma), ("vp", 2.5), ("vp", 3.0), ("uniform", None),
                            ("shifted", None), ("lambda", None)):
            x, _ = generate("lazy-cov-pc", provider, nfe, list(range(256)), 0, model.shape,
                            setup=replace(setup, sigma=sigma or 1.0), grid=grid)
            rows.append({"nfe": nfe, "grid": grid, "sigma": sigma, "rmse": metrics.pathwise_rmse(x, ref)})
            print(f"NFE {nfe} grid {grid} sigma {sigma}: rmse {rows[-1]['rmse']:.4f}", flush=True)
    return rows


def main() -> int:
    t0 = time.perf_counter()
    model, setup, _ = bench.model_setup("mnist")
    res = {"background_split_mnist_nfe4": background_split(model, setup),
           "variance_floor_mnist_lazy_cov_pc_nfe4": floor_sweep(model, setup),
           "grid_mnist_gmm_lazy_cov_pc": grid_sweep(),
           "command": "python benchmarks/lazy_diagnostics.py"}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    OUT.mkdir(exist_ok=True)
    (OUT / "lazy_diagnostics.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {OUT / 'lazy_diagnostics.json'} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
