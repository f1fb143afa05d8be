"""Few-step sampling benchmark: quality vs NFE, our samplers against the peers (``lazysi bench``).

Every sampler starts from the same per-sample noise ``Z`` (``(seed, i)``), t = 0 noise -> t = 1 data,
on the same model object in the same process. A sampler at a given NFE runs
``NFE / evals_per_step`` steps (skipped where that is not an integer, e.g. Heun at odd NFE).

Metrics (:mod:`lazysi.numeric.metrics`): pathwise RMSE to a reference solution of the training
schedule's probability-flow ODE from the same noise (RK4, :data:`REF_STEPS` uniform steps; its own
error is estimated against RK4 with half the steps and recorded); classifier-FID against the
held-out digits (with its real-vs-real floor); sliced W2 against exact samples (``mnist-gmm``).
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import covlazy
from .lazy import SAMPLERS, generate
from .metrics import classifier_fid, fid_floor, mixture_samples, pathwise_rmse, sliced_w2
from .peers import PEERS, generate_peer, peer_available
from .zoo import load_model, mean_vector

__all__ = ["RESULTS_DIR", "REF_STEPS", "DEFAULT_NFE", "DEFAULT_SAMPLERS", "ODE_SAMPLERS", "cached_reference",
           "sample_any", "evals_per_step", "run_bench"]

RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
REF_STEPS = 48
DEFAULT_NFE = (1, 2, 3, 4, 6, 8, 12, 16, 32)
DEFAULT_SAMPLERS = ("euler", "heun", "lazy-ode", "lazy-heun", "lazy-cov", "lazy-cov2",
                    "fm-euler", "dpm++2m", "unipc", "fm-midpoint")
#: deterministic samplers (pathwise RMSE is meaningful)
ODE_SAMPLERS = {"euler", "heun", "midpoint", "rk4", "lazy-ode", "lazy-heun", "lazy-cov", "lazy-cov2", *PEERS}


def evals_per_step(name: str) -> int:
    if name in SAMPLERS:
        return SAMPLERS[name].evals
    if name in covlazy.COV_SAMPLERS:
        return 1
    if name in PEERS:
        return PEERS[name].evals_per_step
    raise ValueError(f"unknown sampler {name!r}")


def sample_any(provider, name: str, nfe: int, indices: Sequence[int], seed: int, shape: Sequence[int],
               ctx: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """Samples of any benchmark sampler at ``nfe`` evaluations (``ctx``: ``sigma``, ``mu``, ``grid``,
    ``approx``, ``cov_grid``); returns ``(x, counted NFE)``."""
    e = evals_per_step(name)
    if nfe % e:
        raise ValueError(f"{name} uses {e} evaluations per step; NFE {nfe} is not a multiple")
    if name in PEERS:
        return generate_peer(provider, name, nfe, indices, seed, shape)
    if name in covlazy.COV_SAMPLERS:
        return covlazy.generate_cov(provider, name, nfe, indices, seed, shape, ctx["approx"],
                                    grid=ctx.get("cov_grid", "vp"), sigma=ctx["sigma"])
    return generate(provider, name, nfe // e, indices, seed, shape, sigma=ctx["sigma"], mu=ctx["mu"],
                    grid=ctx.get("grid", "uniform"))


def cached_reference(provider, model: str, indices: Sequence[int], seed: int, shape: Sequence[int],
                     out: Path, steps: int = REF_STEPS) -> tuple[torch.Tensor, dict[str, Any]]:
    """RK4 with ``steps`` uniform steps on the training schedule from the per-sample noise (cached in
    ``out``), and an error estimate ``max|rk4(steps) - rk4(steps/2)| / 15`` on the first 32 rows."""
    idx = [int(i) for i in indices]
    path = Path(out) / f"reference_{model}_seed{seed}_n{len(idx)}_rk4x{steps}.npz"
    if path.is_file():
        data = np.load(path)
        if data["indices"].tolist() == idx:
            return torch.from_numpy(data["x"]), json.loads(str(data["info"]))
    t0 = time.perf_counter()
    x, nfe = generate(provider, "rk4", steps, idx, seed, shape)
    sub = idx[:32]
    half, _ = generate(provider, "rk4", steps // 2, sub, seed, shape)
    info = {"solver": "rk4", "steps": steps, "nfe": nfe,
            "error_estimate_max": float((x[: len(sub)] - half).abs().max()) / 15.0,
            "error_estimate_rmse": pathwise_rmse(x[: len(sub)], half) / 15.0,
            "seconds": round(time.perf_counter() - t0, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x.numpy(), indices=np.array(idx), info=json.dumps(info))
    return x, info
