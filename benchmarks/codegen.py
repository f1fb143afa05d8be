"""Speed of the generated schedule kernels against hand-written torch, ``sympy.lambdify(...,
"torch")`` and ``sympytorch``, at batch sizes 1, 1e3, 1e6 (float64, CPU).

All methods are timed side by side in one run, round-robin (every round times each method once,
so drift of a shared machine hits them alike); the reported time is the median over rounds of
the per-call *thread CPU time* (``time.thread_time``, one torch thread), which other processes on
a loaded machine disturb far less than wall time. Before timing, every baseline is checked against the generated kernel at
interior points (so a wrong hand-written formula cannot win by doing less work).

    python benchmarks/codegen.py                # full run, writes benchmarks/results/codegen.json
    python benchmarks/codegen.py --quick        # fewer rounds (smoke test)
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import sympy as sp
import torch

from lazysi.numeric.fields.schedule import family_module_name
from lazysi.symbolic.families import family

RESULTS = Path(__file__).resolve().parent / "results" / "codegen.json"
PI = math.pi


# Hand-written torch baselines: what a careful person would type for the default parameters
# (no endpoint guards, no reflected forms). Checked against the generated kernels below.
def _hand_vp_alpha(t):
    return torch.cos(0.5 * PI * t)


def _hand_vp_x_coeff(t):
    x = 0.5 * PI * t
    tan = torch.tan(x)
    return -PI * tan - 0.5 * PI / tan


def _hand_pm_eps_over_alpha(t, sigma=1.0):
    return 0.5 * sigma * torch.rsqrt(t * (1.0 - t))


def _hand_sd3_lam(t, shift=3.0):
    return torch.log(t / (shift * (1.0 - t)))


def _hand_ddpm_alpha_dot(t, beta_min=0.1, beta_max=20.0):
    u = 1.0 - t
    g = u * (beta_min + 0.5 * (beta_max - beta_min) * u)
    gp = beta_min + (beta_max - beta_min) * u
    return -0.5 * gp * torch.exp(-g) * torch.rsqrt(-torch.expm1(-g))


def _hand_linear_eps(t):
    return (1.0 - t) / t


CASES: list[tuple[str, str, Callable]] = [
    ("linear", "eps_star", _hand_linear_eps),
    ("vp", "alpha", _hand_vp_alpha),
    ("vp", "x_coeff_optimal", _hand_vp_x_coeff),
    ("point-mass", "eps_star_over_alpha", _hand_pm_eps_over_alpha),
    ("sd3", "lam", _hand_sd3_lam),
    ("ddpm", "alpha_dot", _hand_ddpm_alpha_dot),
]
SIZES = (1, 1_000, 1_000_000)


def _methods(fam: str, kernel: str, hand: Callable) -> dict[str, Callable | str]:
    schedule = family(fam)
    mod = importlib.import_module(f"lazysi.numeric.generated.{family_module_name(fam)}")
    gen = getattr(mod, kernel)
    expr = schedule.bound.kernels()[kernel]
    out: dict[str, Callable | str] = {"generated": gen, "hand": hand}
    out["lambdify"] = sp.lambdify(schedule.t, expr, modules="torch")
    try:
        import sympytorch

        module = sympytorch.SymPyModule(expressions=[expr]).to(torch.float64)  # its constants default to float32
        tname = schedule.t.name
        out["sympytorch"] = lambda t, _m=module: _m(**{tname: t})[..., 0]
    except ImportError:
        out["sympytorch"] = "not installed (pip install sympytorch)"
    except Exception as exc:  # sympytorch does not support every sympy node
        out["sympytorch"] = f"unsupported: {type(exc).__name__}: {str(exc)[:60]}"
    return out


NEAR_ENDS = (1e-9, 1e-6, 1 - 1e-6, 1 - 1e-9)


def _check(name: str, methods: dict) -> dict[str, str]:
    """Each baseline agrees with the generated kernel on interior points (else it is flagged).
    Also notes its worst relative deviation from the generated kernel (verified against mpmath at
    50 digits by tests/test_kernels.py) within 1e-6 of the ends."""
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    ref = methods["generated"](t)
    notes = {}
    for key, f in methods.items():
        if key == "generated" or isinstance(f, str):
            continue
        try:
            got = f(t)
            if got.shape != ref.shape:
                got = got.reshape(ref.shape)
            if not torch.allclose(got, ref, rtol=1e-9, atol=1e-12):
                notes[key] = f"inaccurate: max diff {float((got - ref).abs().max()):.2e} from generated on [0.01, 0.99]"
            te = torch.tensor(NEAR_ENDS, dtype=torch.float64)
            g_end, r_end = f(te).reshape(-1), methods["generated"](te)
            rel = ((g_end - r_end).abs() / r_end.abs()).nan_to_num(nan=float("inf"))
            worst = float(rel.max())
            if worst > 1e-12:
                notes[key + " near ends"] = f"max rel. error {worst:.1e} within 1e-6 of t=0/1"
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            notes[key] = f"fails: {type(exc).__name__}: {str(exc)[:60]}"
    return notes


def _time(callables: dict[str, Callable], t: torch.Tensor, rounds: int, budget_s: float) -> dict[str, float]:
    """Median per-call seconds; ``inner`` calls per round sized so one round of one method ~ budget_s."""
    for f in callables.values():  # warm-up
        f(t)
    inner = {}
    for key, f in callables.items():
        start = time.thread_time()
        n = 0
        while time.thread_time() - start < budget_s / 4 or n < 1:
            f(t)
            n += 1
        per = (time.thread_time() - start) / n
        inner[key] = max(1, int(budget_s / max(per, 1e-9)))
    samples: dict[str, list[float]] = {k: [] for k in callables}
    for _ in range(rounds):
        for key, f in callables.items():
            n = inner[key]
            start = time.thread_time()
            for _ in range(n):
                f(t)
            samples[key].append((time.thread_time() - start) / n)
    return {k: statistics.median(v) for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 ms (smoke test)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds, budget = (3, 0.005) if args.quick else (args.rounds, 0.02)

    rows = []
    header = f"{'kernel':34s} {'batch':>8s} {'generated':>11s} {'hand':>11s} {'lambdify':>11s} {'sympytorch':>11s}   gen/hand  lambdify/gen  sympytorch/gen"
    print(header)
    print("-" * len(header))
    for fam, kernel, hand in CASES:
        methods = _methods(fam, kernel, hand)
        notes = _check(f"{fam}.{kernel}", methods)
        runnable = {k: f for k, f in methods.items() if not isinstance(f, str) and not str(notes.get(k, "")).startswith("fails")}
        for k, f in methods.items():
            if isinstance(f, str):
                notes[k] = f
        for size in SIZES:
            g = torch.Generator().manual_seed(0)
            t = torch.rand(size, dtype=torch.float64, generator=g) * 0.98 + 0.01
            times = _time(runnable, t, rounds, budget)
            gen = times["generated"]
            row = {
                "kernel": f"{fam}.{kernel}",
                "batch": size,
                "seconds": times,
                "ratio_generated_over_hand": gen / times["hand"] if "hand" in times else None,
                "ratio_lambdify_over_generated": times["lambdify"] / gen if "lambdify" in times else None,
                "ratio_sympytorch_over_generated": times["sympytorch"] / gen if "sympytorch" in times else None,
                "notes": notes,
            }
            rows.append(row)

            def fmt(key):
                return f"{times[key] * 1e6:9.1f}us" if key in times else f"{'n/a':>11s}"

            def ratio(v):
                return f"{v:8.2f}x" if v is not None else "      n/a"

            print(
                f"{row['kernel']:34s} {size:8d} {fmt('generated')} {fmt('hand')} {fmt('lambdify')} {fmt('sympytorch')}"
                f"  {ratio(row['ratio_generated_over_hand'])}  {ratio(row['ratio_lambdify_over_generated'])}"
                f"      {ratio(row['ratio_sympytorch_over_generated'])}"
            )
        for k, v in notes.items():
            print(f"    note: {k}: {v}")
    ratios = [r["ratio_generated_over_hand"] for r in rows if r["ratio_generated_over_hand"]]
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"\ngeometric mean generated/hand over {len(ratios)} (kernel, batch) pairs: {geo:.2f}x")
    try:
        import sympytorch

        st_version = getattr(sympytorch, "__version__", "installed")
    except ImportError:
        st_version = None
    out = {
        "command": "python benchmarks/codegen.py" + (" --quick" if args.quick else ""),
        "rounds": rounds,
        "round_budget_s": budget,
        "threads": args.threads,
        "clock": "time.thread_time (per-thread CPU time)",
        "dtype": "float64",
        "device": "cpu",
        "torch": torch.__version__,
        "sympy": sp.__version__,
        "sympytorch": st_version,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "geomean_generated_over_hand": geo,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
