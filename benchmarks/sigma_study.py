"""Choice of sigma, mu and the time grid for the lazy VP Euler sampler (issue 7, item 6).

Measured on ``mnist-gmm`` (exact fields, no network error): pathwise RMSE to a fine RK4 reference
from the same noise, at NFE 4 and 8, versus sigma and versus the time grid. Two principled sigmas
are computed from the spectrum ``d_j`` of the Gaussian approximation ``N(mu, Sigma)`` of the data
(exact mixture moments), both from GENERATED kernels of the lazy schedule ``vp(sigma)``
(``alpha = cos(pi s/2)``, ``beta = sin(pi s/2)/sigma``; the field gains ``g_X(s, d), g_Z(s, d)``
derived in :mod:`lazysi.symbolic.fields`), so the lazy-frame Gaussian velocity per eigen-direction
is ``k(s, d) w`` with ``k = alpha_dot g_Z + beta_dot g_X``:

* ``sigma_energy``: minimises the residual drift energy of the Gaussian approximation in data
  units, ``E(sigma) = sigma^2 sum_j int_0^1 k(s, d_j)^2 v(s, d_j) ds`` (``v = alpha^2 + beta^2 d``:
  ``E[w^2]``), trapezoid rule on 801 points. ``k = 0`` in every direction iff all ``d_j = sigma^2``.
* ``sigma_gauss(N)``: minimises the exact pathwise error of N-step lazy Euler on the Gaussian
  approximation itself: per direction Euler multiplies ``w`` by ``P_j = prod_i (1 + h_i k(s_i, d_j))``
  where the exact flow gives ``sqrt(d_j)/sigma``, so the predicted RMSE per pixel is
  ``sqrt(mean_j (sigma P_j - sqrt(d_j))^2)`` (the mean is exact under centring).

Grids: ``uniform`` (in s), ``lambda``, ``edm`` (lazysi.numeric.sampling.grids.named_grid), and ``gauss-opt``:
the interior points minimising the same predicted Gaussian error (Adam on a softmax
parametrisation; differentiable because the kernels are torch code).

Writes ``benchmarks/results/sigma_study.json`` / ``.md`` and the settings file
``numeric/weights/mnist_gmm.lazy.json`` (chosen sigma, mu rule, grid, spectrum summary) read by
``lazysi bench``. Run: ``python benchmarks/sigma_study.py [--n 256] [--quick]``; for a model
whose sampling is too slow for a sweep (the U-Net ``mnist``), ``--rules-only mnist`` writes its
settings file from the spectrum rules alone.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from lazysi.numeric.models.moments import approx_for_model, lazy_settings_path
from lazysi.numeric.evaluation.bench import RESULTS_DIR, cached_reference
from lazysi.numeric.fields.gaussian import GaussianFieldKernels
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.sampling.frames import lazy_provider
from lazysi.numeric.sampling.grids import named_grid as make_grid
from lazysi.numeric.evaluation.metrics import pathwise_rmse
from lazysi.numeric.sampling.solvers import integrate, provider_ode
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.numeric.models.zoo import load_model, mean_vector
from lazysi.symbolic.families import family

SIGMAS = (0.52, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


def _vp_slope(sigma: float):
    sch = NumericSchedule(family("vp", sigma=sigma))
    kern = GaussianFieldKernels(sch)

    def k(s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        s2 = s[:, None] + torch.zeros_like(d)[None]
        return sch.alpha_dot(s2) * kern("gain_z", s2, d[None]) + sch.beta_dot(s2) * kern("gain_x", s2, d[None])

    def v(s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return sch.alpha(s)[:, None] ** 2 + sch.beta(s)[:, None] ** 2 * d[None]

    return sch, k, v


def drift_energy(sigma: float, d: torch.Tensor, points: int = 801) -> float:
    _, k, v = _vp_slope(sigma)
    s = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    dens = sigma**2 * (k(s, d) ** 2 * v(s, d)).sum(1)
    return float(torch.trapezoid(dens, s))


def predicted_rmse(sigma: float, d: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    _, k, _ = _vp_slope(sigma)
    h = grid[1:] - grid[:-1]
    p = torch.prod(1.0 + h[:, None] * k(grid[:-1], d), dim=0)
    return ((sigma * p - d.sqrt()) ** 2).mean().sqrt()


def argmin_log(fn, lo: float = 0.2, hi: float = 10.0, points: int = 30) -> float:
    xs = torch.logspace(math.log10(lo), math.log10(hi), points, dtype=torch.float64).tolist()
    vals = [fn(x) for x in xs]
    i = min(range(len(xs)), key=vals.__getitem__)
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
    for _ in range(16):  # golden section on [a, b] in log space
        la, lb = math.log(a), math.log(b)
        m1, m2 = la + 0.382 * (lb - la), la + 0.618 * (lb - la)
        if fn(math.exp(m1)) < fn(math.exp(m2)):
            b = math.exp(m2)
        else:
            a = math.exp(m1)
    return math.sqrt(a * b)


def gauss_opt_grid(sigma: float, d: torch.Tensor, steps: int, iters: int = 300) -> torch.Tensor:
    theta = torch.zeros(steps, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.05)
    for _ in range(iters):
        grid = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.softmax(theta, 0), 0)])
        loss = predicted_rmse(sigma, d, grid)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        grid = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.softmax(theta, 0), 0)])
        grid[-1] = 1.0
    return grid.detach()


def lazy_euler(provider, sigma: float, mu: torch.Tensor, grid: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    field = lazy_provider(provider, "vp", sigma, mu)
    return sigma * integrate("euler", provider_ode(field), grid, x0) + mu


def spectrum_rules(d: torch.Tensor) -> dict:
    """The principled sigmas of the module doc, from the spectrum ``d`` alone."""
    out = {"sigma_rms": math.sqrt(float(d.sum()) / d.numel()), "sigma_energy": argmin_log(lambda s: drift_energy(s, d))}
    for steps in (4, 8):
        g = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
        out[f"sigma_gauss_{steps}"] = argmin_log(lambda s: float(predicted_rmse(s, d, g)))
    return out


def rules_only(model: str, write: bool = True) -> int:
    """Settings file for ``model`` from the spectrum of its data's Gaussian approximation (for
    the U-Net ``mnist``: the 5,000 training digits' moments), without any sampling: sigma =
    sigma_gauss_4, the rule chosen on mnist-gmm where it could be measured."""
    provider, card = load_model(model)
    mu = mean_vector(model, provider, card)
    approx = approx_for_model(model, provider, card, "full", floor=1e-12)
    rules = spectrum_rules(approx.variances)
    settings = {
        "model": model,
        "sigma": rules["sigma_gauss_4"],
        "sigma_rule": "sigma_gauss_4: minimises the predicted NFE-4 lazy-Euler pathwise error of the Gaussian approximation",
        **rules,
        "mu": "data",
        "mu_rule": "per-pixel mean of the model's data (lazysi.numeric.models.zoo.mean_vector)",
        "mu_mean_value": float(mu.mean()),
        "grid": "uniform",
        "spectrum": approx.summary,
        "written_by": f"python benchmarks/sigma_study.py --rules-only {model}",
    }
    print(json.dumps({k: settings[k] for k in ("sigma_rms", "sigma_energy", "sigma_gauss_4", "sigma_gauss_8")}))
    if write:
        path = lazy_settings_path(model)
        path.write_text(json.dumps(settings, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="samples for the pathwise RMSE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="16 samples, fewer sigmas (smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-write-settings", action="store_true")
    ap.add_argument("--rules-only", metavar="MODEL",
                    help="only compute the spectrum rules (no sampling) for MODEL (e.g. mnist) and write its settings file")
    args = ap.parse_args(argv)
    if args.rules_only:
        return rules_only(args.rules_only, write=not args.no_write_settings)
    n = 16 if args.quick else args.n
    sigmas = (0.52, 2.0) if args.quick else SIGMAS
    t_start = time.perf_counter()
    provider, card = load_model("mnist-gmm")
    shape = tuple(card["data_shape"])
    mu = mean_vector("mnist-gmm", provider, card)
    approx = approx_for_model("mnist-gmm", provider, card, "full", floor=1e-12)
    d = approx.variances
    res: dict = {"model": "mnist-gmm", "n": n, "seed": args.seed, "spectrum": approx.summary, **spectrum_rules(d)}
    rms = res["sigma_rms"]
    res["energy"] = {f"{s:.3g}": drift_energy(s, d) for s in sorted(set(sigmas) | {res["sigma_energy"], rms})}
    print(json.dumps({k: res[k] for k in ("sigma_rms", "sigma_energy", "sigma_gauss_4", "sigma_gauss_8")}), file=sys.stderr)

    idx = list(range(n))
    ref, ref_info = cached_reference(provider, "mnist-gmm", idx, args.seed, shape, args.out, card)
    x0 = per_sample_normal(args.seed, idx, shape)
    sig_list = sorted(set(sigmas) | {round(res["sigma_energy"], 3), round(res["sigma_gauss_4"], 3), round(res["sigma_gauss_8"], 3)})
    rows = []
    for steps in (4, 8):
        for s in sig_list:
            grid = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
            err = pathwise_rmse(lazy_euler(provider, s, mu, grid, x0), ref)
            pred = float(predicted_rmse(s, d, grid))
            rows.append({"nfe": steps, "sigma": s, "grid": "uniform", "rmse": err, "predicted_gauss_rmse": pred})
            print(f"NFE {steps} sigma {s:.3f}: rmse {err:.4f} (Gaussian-approx prediction {pred:.4f})", file=sys.stderr)
    best = {steps: min((r for r in rows if r["nfe"] == steps), key=lambda r: r["rmse"])["sigma"] for steps in (4, 8)}
    chosen = res["sigma_gauss_4"]
    for steps in (4, 8):
        sch = NumericSchedule(family("vp", sigma=chosen))
        for gname in ("uniform", "lambda", "edm", "gauss-opt"):
            grid = gauss_opt_grid(chosen, d, steps) if gname == "gauss-opt" else make_grid(gname, sch, steps)
            err = pathwise_rmse(lazy_euler(provider, chosen, mu, grid, x0), ref)
            rows.append({"nfe": steps, "sigma": chosen, "grid": gname, "rmse": err, "grid_points": grid.tolist(),
                         "predicted_gauss_rmse": float(predicted_rmse(chosen, d, grid))})
            print(f"NFE {steps} sigma {chosen:.3f} grid {gname}: rmse {err:.4f}", file=sys.stderr)
    res.update({"rows": rows, "best_measured_sigma": best, "chosen_sigma": chosen, "reference": ref_info,
                "seconds": round(time.perf_counter() - t_start, 1),
                "command": "python benchmarks/sigma_study.py" + (" --quick" if args.quick else f" --n {n}")})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sigma_study.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = ["| NFE | sigma | grid | pathwise RMSE | Gaussian-approx prediction |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nfe']} | {r['sigma']:.3f} | {r['grid']} | {r['rmse']:.4f} | {r['predicted_gauss_rmse']:.4f} |")
    (args.out / "sigma_study.md").write_text("\n".join(lines) + "\n")
    if not args.no_write_settings and not args.quick:
        grid_best = {steps: min((r for r in rows if r["nfe"] == steps and r["sigma"] == chosen), key=lambda r: r["rmse"])["grid"]
                     for steps in (4, 8)}
        settings = {
            "model": "mnist-gmm",
            "sigma": chosen,
            "sigma_rule": "sigma_gauss_4: minimises the predicted NFE-4 lazy-Euler pathwise error of the Gaussian approximation",
            "sigma_rms": rms,
            "sigma_energy": res["sigma_energy"],
            "sigma_gauss_4": res["sigma_gauss_4"],
            "sigma_gauss_8": res["sigma_gauss_8"],
            "best_measured_sigma": best,
            "mu": "data",
            "mu_rule": "exact per-pixel mixture mean (lazysi.numeric.models.zoo.mean_vector)",
            "mu_mean_value": float(mu.mean()),
            "grid": "uniform",
            "best_measured_grid": grid_best,
            "spectrum": approx.summary,
            "written_by": res["command"],
        }
        lazy_settings_path("mnist-gmm").write_text(json.dumps(settings, indent=1) + "\n")
    print(f"done in {res['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
