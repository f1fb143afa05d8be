"""``lazysi sample``: draw samples from a pretrained model with any registered sampler.

Examples::

    lazysi sample --model mnist --sampler lazy-ode --steps 4 --n 64 --seed 0 --out runs/lazy4
    lazysi sample --model mnist --sampler lazy-cov-pcd --steps 4 --n 64 --out runs/pcd4
    lazysi sample --model mnist-gmm --sampler lazy-sde --steps 8 --n 256 --batch 64 --out runs/sde8
    lazysi sample --model gaussian --sampler lazy-ode --steps 1 --n 1000 --out runs/g
    lazysi sample --model mnist --sampler unipc --steps 8 --out runs/unipc8       # a peer (pip install 'lazysi[bench]')
    lazysi sample --model path/to/stem --sampler heun --steps 16 --grid lambda --out runs/h
    lazysi sample --model mnist --sampler lazy-cov-pc --nfe-budget 6 --out runs/b6   # steps placed by a pilot run
    lazysi sample --model mnist --sampler lazy-cov-pc --adaptive --tol 0.003 --out runs/a   # step-size control
    torchrun --nproc_per_node 2 -m lazysi sample --model mnist --sampler lazy-ode --steps 4 \\
        --num-samples 10000 --shard-size 500 --out runs/big   # add --resume to continue

Every run writes atomic, checksummed ``shard-XXXXX.npz`` files plus a manifest (split across ranks
by index under torchrun), then ``samples.npz`` (array ``x``, shape (n, ...), float32, data space),
``samples.png`` (an image grid upscaled 4x; a scatter plot of the first two coordinates for vector
data) and ``run.json`` (resolved options, package versions, model card sha256, seeds, counted NFE,
threads, time). Ctrl-C keeps the complete shards and prints the command that continues
(``--resume``). For MNIST models streaming classifier-feature statistics (``stats.npz``) are
written for a one-pass classifier-FID (docs/distributed.md).

Sample i depends only on (seed, i), the options and the intra-op thread count: the samples are
bit-identical for any ``--batch``, ``--shard-size`` and world size at equal ``--threads`` (torchrun
starts ranks with 1 thread, a plain run uses all cores: pass ``--threads 1`` to reproduce a
torchrun run in one process). Library call: :func:`lazysi.sample`.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from lazysi.cli import UsageError

__all__ = ["add_parser", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    from lazysi.numeric.sampling.registry import SAMPLERS

    p = sub.add_parser("sample", help="sample a pretrained model with any registered sampler",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="mnist | mnist-gmm | gaussian | gaussian-full | PATH")
    p.add_argument("--sampler", required=True, metavar="NAME[@GRID]",
                   help="one of: " + ", ".join(SAMPLERS) + " (NAME@GRID: on another grid of its frame)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (run.json records the counted NFE)")
    p.add_argument("--nfe-budget", type=int, default=None, metavar="N",
                   help="instead of --steps: spend exactly N model evaluations per sample on the auto grid: of the "
                        "sampler's grids (default, vp, gauss, dp, ctrl) the one whose pilot run ends closest to the pilot "
                        "teacher (docs/samplers.md)")
    p.add_argument("--adaptive", action="store_true",
                   help="instead of --steps: step-size control with the sampler's free error estimate on a pilot "
                        "run (lazy-cov-pc*; --tol); every sample then runs on the accepted times")
    p.add_argument("--tol", type=float, default=None, help="--adaptive: tolerance on the estimated local error (RMS)")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=64,
                   help="number of samples (under torchrun write --num-samples: torchrun itself takes --n* as abbreviations)")
    p.add_argument("--seed", type=int, default=0, help="base seed (sample i uses (seed, i))")
    p.add_argument("--batch", type=int, default=64, help="samples per model call")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sigma", type=float, default=None, help="lazy data scale (default: the model's .lazy.json settings file, else the card's data_rms_centred)")
    p.add_argument("--mu", default="data", help="centring mean: a number, or 'data' (per-coordinate data mean)")
    p.add_argument("--grid", default=None,
                   help="time grid (default: the sampler's, see docs/samplers.md): uniform, lambda, edm, shifted; "
                        "vp, gauss for the covariance-aware lazy-cov* samplers; from a pilot run of the model: dp "
                        "(dynamic programming on teacher trajectories) and auto for the samplers in the training "
                        "schedule's time, peers included, ctrl (step-size control) for lazy-cov-pc*")
    p.add_argument("--shift", type=float, default=3.0, help="shift of the 'shifted' grid")
    p.add_argument("--target", default=None, metavar="SCHEDULE",
                   help="sample under another schedule, converted from the model's (C4/C5): 'alpha=EXPR,beta=EXPR', "
                        "a FILE from 'lazysi derive --emit-torch', or a family name with --param (see docs/own-schedule.md)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the --target expressions or family (repeatable)")
    p.add_argument("--approx", default="full", choices=("full", "lowrank", "diag"),
                   help="the covariance-aware samplers' Gaussian approximation (lowrank: top --rank eigendirections "
                        "plus an isotropic rest; cheaper for large D, see BENCHMARKS.md 'What the frame costs')")
    p.add_argument("--rank", type=int, default=64, help="rank of --approx lowrank")
    p.add_argument("--nu", type=float, default=1.0, help="SDE samplers: diffusion eps = nu eps* (nu = 1: the optimal SDE)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"), help="dtype of the sampler state")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for sampling (default: torch's: all cores, 1 under torchrun); recorded")
    p.add_argument("--shard-size", type=int, default=None, metavar="K",
                   help="samples per shard file (default: min(n, 256))")
    p.add_argument("--resume", action="store_true",
                   help="continue a run in --out: keep shards whose sha256 verifies, regenerate the rest")
    p.add_argument("--label", action="store_true", help="a label row under the PNG grid (sampler, steps, NFE, seed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from lazysi.numeric.evaluation.metrics import classifier_features
    from lazysi.numeric.io.outdir import check_output_dir
    from lazysi.numeric.io.runs import RunInterrupted, run_to_folder
    from lazysi.numeric.io.shards import ShardError
    from lazysi.numeric.models.model import Model
    from lazysi.numeric.sampling.frames import PILOT_GRIDS
    from lazysi.numeric.sampling.generate import generate
    from lazysi.numeric.sampling.registry import resolve, retarget

    if [args.steps is not None, args.nfe_budget is not None, args.adaptive].count(True) != 1:
        raise UsageError("give one of --steps, --nfe-budget, --adaptive")
    if args.adaptive != (args.tol is not None):
        raise UsageError("--adaptive and --tol go together")
    if args.tol is not None and not (args.tol > 0 and math.isfinite(args.tol)):
        raise UsageError(f"--tol must be positive and finite, got {args.tol}")
    for flag in ("steps", "nfe_budget", "n", "batch"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.shard_size is not None and args.shard_size < 1:
        raise UsageError(f"--shard-size must be >= 1, got {args.shard_size}")
    if not (args.nu >= 0 and math.isfinite(args.nu)):
        raise UsageError(f"--nu must be >= 0 and finite, got {args.nu}")
    try:
        spec = resolve(args.sampler)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.target is not None:
        from lazysi.symbolic.target import resolve_target

        params = {}
        for item in args.param:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise UsageError(f"--param: expected NAME=VALUE, got {item!r}")
            params[name.strip()] = value.strip()
        target = resolve_target(args.target, params)  # TargetError / ScheduleError: one line, exit 2
        try:
            spec = retarget(spec, target)
        except ValueError as exc:
            raise UsageError(f"--target: {exc}") from None
    elif args.param:
        raise UsageError("--param sets parameters of --target; there is no --target")
    if args.nfe_budget is not None or args.adaptive:
        flag = "--nfe-budget" if args.nfe_budget is not None else "--adaptive"
        if args.grid is not None:
            raise UsageError(f"{flag} chooses the grid; drop --grid {args.grid}")
    if args.adaptive and not spec.controllable:
        raise UsageError(f"--adaptive needs a free error estimate, which {spec.name} has not "
                         "(the predictor-correctors lazy-cov-pc, lazy-cov-pcd, lazy-cov-pc4, lazy-cov-pc4d have one)")
    if args.nfe_budget is not None:
        if "auto" not in spec.grids:
            raise UsageError(f"--nfe-budget places the steps by the auto pilot grid, which {spec.name} does not "
                             f"take (its grids: {', '.join(spec.grids) or 'its own only'})")
        args.steps = spec.steps_for(args.nfe_budget)
        if args.steps is None:
            raise UsageError(f"{spec.name} cannot spend exactly {args.nfe_budget} evaluations "
                             f"(its NFE for n steps: {', '.join(str(spec.nfe(n)) for n in (1, 2, 3, 4))}, ...)")
        args.grid = "auto"
    if args.grid is not None and args.grid not in spec.grids:
        raise UsageError(f"--grid {args.grid} is not a grid of {spec.name}; it takes "
                         + (", ".join(spec.grids) if spec.grids else "no grid (it runs on its own)"))
    if spec.package is not None:
        spec.method.require()  # MissingExtraError names the extra (exit 2)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but CUDA is not available")
    check_output_dir(args.out)  # a folder of another run is refused by the shard layer (ShardError, below)
    try:
        model = Model.load(args.model)
        sigma, sigma_source = model.sigma(args.sigma, spec.frame.sigma_rule)
        if not (sigma > 0 and math.isfinite(sigma)):
            raise UsageError(f"--sigma must be positive and finite, got {sigma}")
        if args.mu != "data":
            try:
                float(args.mu)
            except ValueError:
                raise UsageError(f"--mu must be a number or 'data', got {args.mu!r}") from None
        setup = model.setup(sigma=sigma, mu=args.mu, frame=spec.frame, shift=args.shift, nu=args.nu,
                            approx_kind=args.approx, rank=args.rank)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    threads = args.threads if args.threads is not None else torch.get_num_threads()
    grid, pilot = args.grid, None
    kind = "adaptive" if args.adaptive else (args.grid or spec.grid)
    if kind in PILOT_GRIDS or args.adaptive:  # built once here (every rank the same), recorded, passed as times
        from lazysi.numeric.sampling.generate import intra_op_threads
        from lazysi.numeric.sampling.pilot import adaptive_grid_for, pilot_grid

        print(f"lazysi sample: building the {kind} grid from a pilot run of the model ...", file=sys.stderr)
        with intra_op_threads(threads):
            if args.adaptive:
                grid, pilot = adaptive_grid_for(spec, model.provider, setup, model.shape, args.tol)
                args.steps = grid.numel() - 1
            else:
                grid, pilot = pilot_grid(kind, spec, model.provider, setup, spec.run_steps(args.steps), model.shape)

    def generate_fn(indices: list[int]):
        return generate(spec, model.provider, args.steps, indices, args.seed, model.shape, setup=setup, grid=grid,
                        dtype=dtype, device=args.device, threads=threads)

    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}
    options.update({"grid": args.grid or spec.grid, "sigma": sigma, "sigma_source": sigma_source, "threads": threads,
                    "mu_mean_value": float(setup.mu_tensor.mean()), "data_shape": list(model.shape)})
    card_json = next((p for p in model.card.get("loaded_from", {}) if p.endswith(".json")), None)
    if pilot is not None:
        options.update({"grid": kind, "grid_times": None if grid is None else grid.tolist(), "pilot": pilot})
    extra = {"sampler": spec.description, "sampler_kind": spec.kind, "nfe": spec.nfe(args.steps),
             "nfe_declared": spec.nfe(args.steps), "model_files_sha256": dict(model.card.get("loaded_from", {}))}
    summary = {k: model.card.get(k) for k in ("class", "schedule", "prediction", "data_mean", "data_rms_centred",
                                              "training_steps") if k in model.card}
    features = classifier_features if list(model.shape) == [1, 28, 28] else None

    from tqdm import tqdm

    try:
        with tqdm(total=1, desc=f"{spec.name} x{args.steps}", unit="shard", file=sys.stderr, disable=args.no_progress) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            result = run_to_folder(generate_fn, args.n, args.out, batch=args.batch, seed=args.seed, options=options,
                                   shard_size=args.shard_size, resume=args.resume, features=features,
                                   model_card_path=card_json, record_extra=extra, model_summary=summary, device=args.device, progress=progress,
                                   image_label=(f"{args.model} {spec.name} {args.steps} steps nfe {spec.nfe(args.steps)} "
                                                f"seed {args.seed}") if args.label else None)
    except RunInterrupted as exc:
        again = ["lazysi", *[a for a in getattr(args, "_argv", sys.argv[1:]) if a != "--resume"], "--resume"]
        print(f"lazysi sample: {exc}; continue with: {shlex.join(again)}", file=sys.stderr)
        return 130
    except ShardError as exc:
        raise UsageError(str(exc)) from None
    if result.rank == 0:
        rec = result.record
        print(f"wrote {args.n} samples to {args.out} (samples.npz, samples.png, run.json; NFE {rec['nfe']}, "
              f"{rec['seconds']:.2f}s, world size {result.world_size}, threads {threads}, kept {len(rec['kept'])} shards)")
    return 0
