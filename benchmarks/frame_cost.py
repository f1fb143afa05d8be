"""What a sampler costs besides the model (issue 16, item 6).

1. Per registered sampler: wall time per step with a stand-in model that costs almost nothing
   (``eta_X = a x``, ``eta_Z = b x``: O(D) work), as a fraction of one evaluation of the embedded
   U-Net at the same batch (64 samples of 1x28x28), measured side by side in one process.
2. How the covariance-aware frame's overhead grows with the dimension, full vs low-rank (rank 64)
   Gaussian approximation, D = 784, 3,072, 12,288, 65,536 (the full frame needs a D x D basis:
   65,536^2 float64 is 34 GB, reported as infeasible).

Command: ``python benchmarks/frame_cost.py`` (writes benchmarks/results/frame_cost.json)
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from lazysi.numeric.fields.approx import GaussianApprox
from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.registry import SAMPLERS
from lazysi.symbolic.families import family

OUT = Path(__file__).resolve().parent / "results" / "frame_cost.json"
BATCH = 64
STEPS = 8


class StandIn(FieldProvider):
    """A linear stand-in for a network: O(D) per call (what remains is the sampler's own cost)."""

    def __init__(self):
        self.schedule = NumericSchedule(family("linear"))

    def fields(self, t, x):
        return 0.5 * x, 0.3 * x


def _time(fn, repeat: int = 3) -> float:
    fn()  # warm-up (kernels, caches)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _approx(dim: int, kind: str) -> GaussianApprox:
    g = torch.Generator().manual_seed(0)
    if kind == "lowrank":
        q, _ = torch.linalg.qr(torch.randn(dim, 64, generator=g, dtype=torch.float64))
        var = torch.linspace(4.0, 0.1, 64, dtype=torch.float64)
        return GaussianApprox("lowrank", torch.zeros(dim, dtype=torch.float64), var, q.contiguous(), 0.05, (dim,))
    # timing only: a dense D x D "basis" costs what an orthonormal one costs (a QR of 12,288^2 would
    # take longer than the measurement); the samples are not looked at
    q = torch.randn(dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    return GaussianApprox("full", torch.zeros(dim, dtype=torch.float64), torch.linspace(4.0, 0.01, dim, dtype=torch.float64),
                          q, 0.0, (dim,))


def main() -> None:
    torch.set_num_threads(1)
    unet = Model.load("mnist")
    x = torch.randn(BATCH, 1, 28, 28, dtype=torch.float64)
    t = torch.tensor(0.4, dtype=torch.float64)
    t_unet = _time(lambda: unet.provider.fields(t, x))
    stand = StandIn()
    setup = unet.setup()  # the MNIST Gaussian approximation (full, D = 784), sigma, mean
    idx = list(range(BATCH))
    rows = []
    for name, spec in SAMPLERS.items():
        if spec.adaptive or spec.min_steps > 1 or (spec.package is not None and not spec.method.available()):
            continue
        s = setup if spec.frame.gaussian else SamplingSetup(sigma=setup.sigma, mu=setup.mu)
        sec = _time(lambda: generate(spec, stand, STEPS, idx, 0, unet.shape, setup=s))
        per_step = sec / STEPS
        rows.append({"sampler": name, "seconds_per_step": per_step, "nfe_per_step": spec.nfe(STEPS) / STEPS,
                     "fraction_of_one_unet_eval": per_step / t_unet})
        print(f"{name:16s} {per_step * 1e3:8.2f} ms/step = {100 * per_step / t_unet:6.2f} % of one U-Net evaluation", flush=True)
    scaling = []
    for dim in (784, 3072, 12288, 65536):
        if dim >= 12288:
            idx_d = idx[:8]  # one block of 8 rows: the per-step cost scales linearly with the batch
        else:
            idx_d = idx
        for kind in ("full", "lowrank"):
            if kind == "full" and dim * dim * 8 > 4e9:
                scaling.append({"dim": dim, "kind": kind, "seconds_per_step": None,
                                "note": f"infeasible: the basis alone is {dim * dim * 8 / 1e9:.0f} GB in float64"})
                print(f"D {dim:6d} {kind:8s} infeasible", flush=True)
                continue
            ap = _approx(dim, kind)
            s = SamplingSetup(approx=ap)
            sec = _time(lambda: generate("lazy-cov-pc", stand, STEPS, idx_d, 0, (dim,), setup=s), repeat=1)
            base = _time(lambda: generate("euler", stand, STEPS, idx_d, 0, (dim,)), repeat=1)
            scaling.append({"dim": dim, "kind": kind, "batch": len(idx_d), "seconds_per_step": sec / STEPS,
                            "euler_seconds_per_step": base / STEPS})
            print(f"D {dim:6d} {kind:8s} lazy-cov-pc {sec / STEPS * 1e3:9.2f} ms/step (Euler {base / STEPS * 1e3:7.2f})", flush=True)
    result = {"batch": BATCH, "steps": STEPS, "threads": 1, "unet_eval_seconds": t_unet, "samplers": rows,
              "dimension_scaling": scaling, "command": "python benchmarks/frame_cost.py"}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
