"""Few-step sampling benchmark: quality vs NFE, our samplers against the peers (``lazysi bench``).

Every sampler starts from the same per-sample noise ``Z`` (``(seed, i)``), t = 0 noise -> t = 1 data,
on the same model object in the same process. A sampler at a given NFE runs
the step count whose counted NFE is exactly that NFE (:meth:`~lazysi.numeric.sampling.registry.SamplerSpec.steps_for`;
skipped where there is none, e.g. the midpoint rule at odd NFE).

Metrics (:mod:`lazysi.numeric.evaluation.metrics`): pathwise RMSE to a reference solution of the training
schedule's probability-flow ODE from the same noise (RK4 on uniform steps, doubled from
:data:`REF_STEPS` until the RMS change over all samples is at most :data:`REF_TOL`; see
:func:`cached_reference`); classifier-FID against the
held-out digits (with its real-vs-real floor); sliced W2 against exact samples (``mnist-gmm``).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lazysi.numeric.evaluation.metrics import (classifier_features, fid_floor, fid_from_features, heldout_features,
                                               mixture_samples, pathwise_rmse, sliced_w2)
from lazysi.numeric.io.png import image_grid, write_png
from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.pilot import pilot_record
from lazysi.numeric.sampling.registry import resolve

__all__ = ["RESULTS_DIR", "REF_STEPS", "REF_TOL", "REF_MAX_STEPS", "DEFAULT_NFE", "DEFAULT_SAMPLERS", "cached_reference",
           "model_fingerprint", "model_setup", "sample_at_nfe", "run_bench"]

RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
#: reference: RK4 doubled from REF_STEPS steps until the RMS change is <= REF_TOL (at most REF_MAX_STEPS)
REF_STEPS = 48
REF_TOL = 1e-3
REF_MAX_STEPS = 768
DEFAULT_NFE = (1, 2, 3, 4, 6, 8, 12, 16, 32)
DEFAULT_SAMPLERS = ("euler", "heun", "lazy-ode", "lazy-heun", "lazy-cov", "lazy-cov2", "lazy-cov-pc",
                    "lazy-cov-pcd", "lazy-cov-pcd@uniform", "fm-euler", "dpm++2m", "unipc", "fm-midpoint")


def model_setup(model: str | Model, sigma: float | None = None, rule: str = "settings") -> tuple[Model, SamplingSetup, dict[str, Any]]:
    """A benchmark's model, its sampling setup (``sigma`` argument > the sigma ``rule``'s value:
    the model's ``.lazy.json`` > the card's RMS; per-coordinate data mean; full Gaussian
    approximation) and a record of both."""
    m = model if isinstance(model, Model) else Model.load(model)
    value, source = m.sigma(sigma, rule)
    setup = m.setup(sigma=value)
    return m, setup, {"sigma": value, "sigma_source": source, "approx": setup.approx.summary}


def _setup_for(name: str, m: Model, setups: dict[str, SamplingSetup], sigma: float | None) -> SamplingSetup:
    """The setup of sampler ``name``: its frame's sigma rule (cached per rule)."""
    rule = resolve(name).frame.sigma_rule
    if rule not in setups:
        setups[rule] = model_setup(m, sigma, rule)[1]
    return setups[rule]


def sample_at_nfe(name: str, model: Model, nfe: int, indices: Sequence[int], seed: int,
                  setup: SamplingSetup) -> tuple[torch.Tensor, int]:
    """Samples of any registered sampler (``NAME`` or ``NAME@GRID``) at exactly ``nfe`` model
    evaluations; returns ``(x, counted NFE)``. Raises when no step count gives that NFE."""
    spec = resolve(name)
    steps = spec.steps_for(nfe)
    if steps is None:
        raise ValueError(f"{name} cannot run at NFE {nfe} (its NFE for n steps: {[spec.nfe(n) for n in (1, 2, 3, 4)]}...)")
    return generate(spec, model.provider, steps, indices, seed, model.shape, setup=setup)


def model_fingerprint(card: dict[str, Any]) -> str:
    """sha256 over the sha256s of the files a model was loaded from (``card["loaded_from"]``; the
    built-in Gaussians, loaded from code, give the hash of their card): what a cached result of
    the model is keyed by, so that retrained weights never meet a stale reference."""
    files = card.get("loaded_from") or {}
    payload = sorted(files.values()) if files else json.dumps(card, sort_keys=True, default=str)
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def cached_reference(provider, model: str, indices: Sequence[int], seed: int, shape: Sequence[int],
                     out: Path, card: dict[str, Any], steps: int = REF_STEPS, tol: float = REF_TOL,
                     max_steps: int = REF_MAX_STEPS, log=lambda s: print(s, file=sys.stderr)) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reference solution of the training schedule's probability-flow ODE from the per-sample noise:
    RK4 on uniform grids of ``steps``, ``2 steps``, ``4 steps``, ... until the RMS (over *all* rows and
    coordinates) of the change between two successive solutions is at most ``tol``; the finer one is
    returned. That change is at least ``err(coarse) - err(fine)``, so it bounds the returned
    solution's error whenever halving the step at least halves the error (RK4's does, from second
    to fourth order, in the measured runs); and by the triangle inequality any benchmark RMSE
    measured against the reference is off by at most the reference's own RMS error. No Richardson factor
    1/15 and no subsample: trajectories near a split between digits are neither asymptotic nor
    common. If ``max_steps`` is reached first, the finest solution is returned with
    ``"converged": False`` and a warning is logged.

    Cached in ``out`` under the model's :func:`model_fingerprint`, the indices, ``seed``, ``steps``,
    ``tol`` and ``max_steps``; a file for other weights or other indices is recomputed and overwritten."""
    if steps < 1 or max_steps < 2 * steps or not tol > 0:
        raise ValueError(f"reference needs steps >= 1, max_steps >= 2 steps and tol > 0; got steps={steps}, "
                         f"max_steps={max_steps}, tol={tol}")
    idx = [int(i) for i in indices]
    fp = model_fingerprint(card)
    path = Path(out) / f"reference_{model}_seed{seed}_n{len(idx)}_rk4from{steps}_tol{tol:g}_max{max_steps}.npz"
    if path.is_file():
        data = np.load(path)
        if data["indices"].tolist() == idx and "model" in data.files and str(data["model"]) == fp:
            return torch.from_numpy(data["x"]), json.loads(str(data["info"]))
    t0 = time.perf_counter()
    coarse, total = generate("rk4", provider, steps, idx, seed, shape)
    history = []
    n = steps
    while True:
        n *= 2
        fine, nfe = generate("rk4", provider, n, idx, seed, shape)
        total += nfe
        per_sample = (fine - coarse).reshape(len(idx), -1).pow(2).mean(1).sqrt()
        change = float(per_sample.pow(2).mean().sqrt())
        history.append({"steps": n, "rms_change": change, "max_sample_change": float(per_sample.max()),
                        "samples_above_10tol": int((per_sample > 10 * tol).sum())})
        log(f"[reference] RK4 x {n}: RMS change {change:.2e} vs x {n // 2} (tol {tol:g})")
        converged = change <= tol
        if converged or 2 * n > max_steps:
            break
        coarse = fine
    if not converged:
        log(f"[reference] WARNING: RK4 did not reach RMS change <= {tol:g} by {n} steps "
            f"(last change {change:.2e}); benchmark entries below ~{change:.1e} are not resolved")
    info = {"solver": "rk4", "steps": n, "nfe": nfe, "total_nfe": total, "tol": tol, "converged": converged,
            "error_estimate_rmse": change, "error_estimate_max_sample": history[-1]["max_sample_change"],
            "doublings": history, "seconds": round(time.perf_counter() - t0, 1), "model_fingerprint": fp}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=fine.numpy(), indices=np.array(idx), info=json.dumps(info), model=np.array(fp))
    return fine, info


def _plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(results["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, m in zip(axes[0], models):
        rows = results["models"][m]["rows"]
        colours = plt.get_cmap("tab20").colors
        markers = "osD^v<>pPX*hH8d"
        for i, name in enumerate(dict.fromkeys(r["sampler"] for r in rows)):  # a colour and a marker each
            pts = sorted((r["nfe"], r["rmse"]) for r in rows if r["sampler"] == name and r.get("rmse") is not None)
            if pts:
                ax.plot(*zip(*pts), marker=markers[i % len(markers)], color=colours[i % len(colours)], label=name,
                        linestyle="--" if resolve(name).origin == "peer" else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("NFE")
        ax.set_ylabel("pathwise RMSE to reference")
        ax.set_title(m)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _metric_table(rows: list[dict], nfes: list[int], names: list[str], key: str) -> list[str]:
    """Markdown rows: one line per sampler, one column per NFE, ``key`` formatted to 4 decimals."""
    out = ["| sampler | " + " | ".join(f"NFE {k}" for k in nfes) + " |", "|---|" + "---|" * len(nfes)]
    for name in names:
        cells = []
        for k in nfes:
            r = next((r for r in rows if r["sampler"] == name and r["nfe"] == k), None)
            cells.append("—" if r is None or r.get(key) is None else f"{r[key]:.4f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def _markdown(results: dict) -> str:
    out = []
    for m, res in results["models"].items():
        rows = res["rows"]
        nfes = sorted({r["nfe"] for r in rows})
        names = list(dict.fromkeys(r["sampler"] for r in rows))
        out.append(f"### {m}: pathwise RMSE to the reference (n = {res['n_rmse']}; lower is better)\n")
        out += _metric_table(rows, nfes, names, "rmse")
        if any(r.get("sw2") is not None for r in rows):
            out.append(f"\n### {m}: sliced W2 to {res['n_exact']} exact samples (n = {res['n_rmse']}; floor {res['sw2_floor']:.4f})\n")
            out += _metric_table(rows, nfes, names, "sw2")
        fid = res.get("fid", [])
        if fid:
            out.append(f"\n### {m}: classifier-FID vs 1,000 held-out digits (n = {res['n_fid']}; real-vs-real floor {res['fid_floor']:.2f})\n")
            exact = "fid_exact" in fid[0]
            out.append("| sampler | NFE | FID |" + (f" FID to {res['n_exact']} exact samples (floor {res['fid_exact_floor']:.2f}) |" if exact else ""))
            out.append("|---|---|---|" + ("---|" if exact else ""))
            for r in fid:
                out.append(f"| {r['sampler']} | {r['nfe']} | {r['fid']:.2f} |" + (f" {r['fid_exact']:.2f} |" if exact else ""))
        if res.get("pilots"):
            teachers = [p for p in res["pilots"] if p["grid"] == "dp"]
            controls = [p for p in res["pilots"] if p["grid"] != "dp"]
            out.append(f"\npilot runs (noise stream 'pilot', disjoint from the benchmark's; bench.json has each): teacher "
                       f"{json.dumps(teachers)}; {len(controls)} step-size control runs, "
                       f"{sum(p['model_calls'] for p in controls)} model calls of the pilot rows in all")
        out.append(f"\nreference: {json.dumps(res['reference'])}; sigma = {res['sigma']:.4f} ({res['sigma_source']}); "
                   f"{res['seconds']} s\n")
    return "\n".join(out) + "\n"


def run_bench(models: Sequence[str] = ("mnist-gmm",), nfes: Sequence[int] = DEFAULT_NFE,
              samplers: Sequence[str] = DEFAULT_SAMPLERS, *, n_rmse: int = 256, n_fid: int = 2000,
              fid_points: Sequence[tuple[str, int]] = (), n_exact: int = 2000, seed: int = 0,
              sigma: float | None = None, out: Path = RESULTS_DIR, grid_nfe: int = 4,
              log=lambda s: print(s, file=sys.stderr)) -> dict[str, Any]:
    """Run the benchmark; writes ``bench.json``, ``bench.md``, ``bench_rmse.png`` (matplotlib) and
    ``grid_nfe<k>_<model>.png`` into ``out`` and returns the results."""
    for name in samplers:  # unknown names and missing packages raise before any work or folder
        spec = resolve(name)
        if spec.package is not None:
            spec.method.require()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"nfes": list(nfes), "samplers": list(samplers), "seed": seed, "models": {}}
    for model in models:
        t0 = time.perf_counter()
        m, setup, setup_info = model_setup(model, sigma)
        setups = {"settings": setup}
        setup_info["sigma_rms_frames"] = m.sigma(sigma, "rms")[0]
        provider, card, shape = m.provider, m.card, m.shape
        idx = list(range(n_rmse))
        ref, ref_info = cached_reference(provider, model, idx, seed, shape, out, card, log=log)
        log(f"[{model}] reference ready ({ref_info})")
        exact = None
        if model == "mnist-gmm":
            exact = mixture_samples(provider.mixture, n_exact, seed=12345)
            sw_floor = sliced_w2(mixture_samples(provider.mixture, n_rmse, seed=54321), exact)
        rows, grids = [], {}
        for name in samplers:
            for k in nfes:
                if resolve(name).steps_for(k) is None:
                    continue
                ts = time.perf_counter()
                x, calls = sample_at_nfe(name, m, k, idx, seed, _setup_for(name, m, setups, sigma))
                row = {"sampler": name, "nfe": k, "counted_nfe": calls, "seconds": round(time.perf_counter() - ts, 2),
                       "rmse": pathwise_rmse(x, ref) if resolve(name).kind == "ode" else None}
                if exact is not None:
                    row["sw2"] = sliced_w2(x, exact)
                rows.append(row)
                if k == grid_nfe:
                    grids[name] = x[:16].to(torch.float32).numpy()
                log(f"[{model}] {name} NFE {k}: rmse {row['rmse']}, sw2 {row.get('sw2')} ({row['seconds']} s)")
        fid_rows = []
        exact_features = exact_floor = None
        if len(shape) == 3 and fid_points and exact is not None:
            # the model's own law: FID to its exact samples (a perfect sampler of the mixture reaches
            # the exact-vs-exact floor; FID to real digits instead rewards denoising)
            exact_features = classifier_features(exact)
            exact_floor = fid_from_features(classifier_features(mixture_samples(provider.mixture, n_fid, seed=777)),
                                            exact_features)
        if len(shape) == 3 and fid_points:
            fidx = list(range(n_fid))
            for name, k in fid_points:
                if name not in samplers or resolve(name).steps_for(k) is None:
                    continue
                x, _ = sample_at_nfe(name, m, k, fidx, seed, _setup_for(name, m, setups, sigma))
                feats = classifier_features(x)
                row = {"sampler": name, "nfe": k, "fid": fid_from_features(feats, heldout_features())}
                if exact_features is not None:
                    row["fid_exact"] = fid_from_features(feats, exact_features)
                fid_rows.append(row)
                log(f"[{model}] FID {name} NFE {k}: {row['fid']:.3f}" + (f", to exact samples {row['fid_exact']:.3f}"
                                                                         if "fid_exact" in row else ""))
        res = {"rows": rows, "fid": fid_rows, "n_rmse": n_rmse, "n_fid": n_fid, "reference": ref_info,
               **setup_info, "grids": {name: resolve(name).grid or "own" for name in samplers},
               "pilots": pilot_record(provider)}
        if fid_rows:
            res["fid_floor"] = fid_floor(n_fid)
        if exact_floor is not None:
            res["fid_exact_floor"] = exact_floor
        if exact is not None:
            res.update({"n_exact": n_exact, "sw2_floor": sw_floor})
        if grids and len(shape) == 3:
            names = list(grids)
            rows_img = [image_grid(grids[nm][:16]) for nm in names]
            h = max(r.shape[0] for r in rows_img)
            pad = np.full((h, 6), 255, dtype=np.uint8)
            strip = np.concatenate(sum(([np.pad(r, ((0, h - r.shape[0]), (0, 0))), pad] for r in rows_img), [])[:-1], 1)
            write_png(out / f"grid_nfe{grid_nfe}_{model}.png", strip)
            res["grid_image"] = {"file": f"grid_nfe{grid_nfe}_{model}.png", "order_left_to_right": names}
        res["seconds"] = round(time.perf_counter() - t0, 1)
        results["models"][model] = res
    (out / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "bench.md").write_text(_markdown(results))
    results["plot"] = _plot(results, out / "bench_rmse.png")
    return results
