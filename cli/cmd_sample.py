"""``lazysi sample``: draw samples from a pretrained model with a lazy sampler or a baseline.

Examples::

    lazysi sample --model mnist --sampler lazy-ode --steps 4 --n 64 --seed 0 --out runs/lazy4
    lazysi sample --model mnist-gmm --sampler lazy-sde --steps 8 --n 256 --batch 64 --out runs/sde8
    lazysi sample --model gaussian --sampler lazy-ode --steps 1 --n 1000 --out runs/g
    lazysi sample --model path/to/stem --sampler heun --steps 16 --grid lambda --out runs/h
    torchrun --nproc_per_node 2 -m lazysi sample --model mnist --sampler lazy-ode --steps 4 \
        --num-samples 10000 --shard-size 500 --out runs/big   # sharded; add --resume to continue

With ``--shard-size`` (or under torchrun) samples go to atomic ``shard-XXXXX.npz`` files plus a
manifest, split across ranks by index; the result is bit-identical for any world size and batch
size, ``--resume`` keeps verified shards, and for MNIST models streaming classifier-feature
statistics (``stats.npz``) are written for a one-pass classifier-FID (see docs/distributed.md).

Writes ``samples.npz`` (array ``x``, shape (n, ...), float32, data space), ``samples.png`` (an
image grid; a scatter plot of the first two coordinates for vector data) and ``run.json`` (the
resolved options, package versions, model card sha256, seeds, NFE and time). Sample i depends
only on (seed, i) and the options, never on ``--batch``. Library calls:
:func:`lazysi.numeric.sampling.lazy.sample` (this loop), :func:`lazysi.numeric.sampling.lazy.generate` (explicit indices).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lazysi.cli import UsageError

__all__ = ["add_parser", "run", "write_png", "image_grid", "scatter_image"]


def add_parser(sub) -> argparse.ArgumentParser:
    from lazysi.numeric.sampling.lazy import GRIDS, SAMPLERS

    p = sub.add_parser("sample", help="sample a pretrained model (lazy samplers and baselines)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="mnist | mnist-gmm | gaussian | gaussian-full | PATH")
    from lazysi.numeric.sampling.covlazy import COV_SAMPLERS

    p.add_argument("--sampler", required=True, choices=list(SAMPLERS) + list(COV_SAMPLERS), help="sampler name")
    p.add_argument("--steps", type=int, required=True, help="number of steps (run.json records the resulting NFE)")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=64,
                   help="number of samples (under torchrun write --num-samples: torchrun itself takes --n* as abbreviations)")
    p.add_argument("--seed", type=int, default=0, help="base seed (sample i uses (seed, i))")
    p.add_argument("--batch", type=int, default=64, help="samples per model call")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sigma", type=float, default=None, help="lazy data scale (default: the model's .lazy.json settings file, else the card's data_rms_centred)")
    p.add_argument("--mu", default="data", help="centring mean: a number, or 'data' (per-coordinate data mean)")
    p.add_argument("--grid", default=None, choices=[*GRIDS, "vp"],
                   help="time grid (default: 'vp' for the covariance-aware lazy-cov* samplers, the lazy vp(sigma) "
                        "schedule's uniform grid; 'uniform' in t for the others; 'vp' exists only for lazy-cov*)")
    p.add_argument("--shift", type=float, default=3.0, help="shift of the 'shifted' grid")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"), help="dtype of the sampler state")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from lazysi.numeric.io.shards import add_shard_arguments

    add_shard_arguments(p)
    return p


# ----------------------------------------------------------------------------- PNG

def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write an 8-bit greyscale ``(H, W)`` or RGB ``(H, W, 3)`` array as PNG (zlib + struct)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"need uint8 (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def image_grid(x: np.ndarray, pad: int = 2) -> np.ndarray:
    """``(n, C, H, W)`` images in [-1, 1] (C = 1 or 3) -> one uint8 grid, ``ceil(sqrt(n))`` columns."""
    n, c, h, w = x.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    img = np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img[i].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def scatter_image(x: np.ndarray, size: int = 256) -> np.ndarray:
    """Scatter plot of the first two coordinates of ``(n, D)`` vectors (D >= 1) as a uint8 image."""
    pts = x.reshape(x.shape[0], -1)
    pts = np.concatenate([pts, np.zeros_like(pts[:, :1])], 1)[:, :2] if pts.shape[1] == 1 else pts[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    ij = np.clip(((pts - lo) / span * (size - 9) + 4).astype(int), 0, size - 1)
    img = np.full((size, size), 255, dtype=np.uint8)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            img[np.clip(size - 1 - ij[:, 1] + dy, 0, size - 1), np.clip(ij[:, 0] + dx, 0, size - 1)] = 0
    return img


# ----------------------------------------------------------------------------- run

def _mu(value: str, name: str, provider, card) -> torch.Tensor:
    from lazysi.numeric.models.zoo import mean_vector

    if value == "data":
        return mean_vector(name, provider, card)
    try:
        mu = float(value)
    except ValueError:
        raise UsageError(f"--mu must be a number or 'data', got {value!r}") from None
    if not math.isfinite(mu):
        raise UsageError(f"--mu must be finite, got {value!r}")
    return torch.tensor(mu, dtype=torch.float64)


def _resolve_grid(args: argparse.Namespace) -> str:
    """``--grid`` resolved for the sampler: the covariance-aware samplers default to ``vp``, the others
    to ``uniform``; ``vp`` is only defined for the former."""
    from lazysi.numeric.sampling.covlazy import COV_SAMPLERS
    from lazysi.numeric.sampling.lazy import GRIDS

    cov = args.sampler in COV_SAMPLERS
    if args.grid is None:
        return "vp" if cov else "uniform"
    if args.grid == "vp" and not cov:
        raise UsageError(f"--grid vp is the covariance-aware samplers' grid ({', '.join(COV_SAMPLERS)}); "
                         f"{args.sampler} takes one of {', '.join(GRIDS)}")
    return args.grid


def run(args: argparse.Namespace) -> int:
    from lazysi.numeric.sampling.lazy import SAMPLERS, sample, sample_batched
    from lazysi.numeric.io.record import package_versions, run_record
    from lazysi.numeric.models.zoo import load_model

    for flag in ("steps", "n", "batch"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but CUDA is not available")
    try:
        provider, card = load_model(args.model)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    from lazysi.numeric.sampling.covlazy import resolve_sigma

    sigma, sigma_source = resolve_sigma(args.model, card, args.sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise UsageError(f"--sigma must be positive and finite, got {sigma}")
    mu = _mu(args.mu, args.model, provider, card)
    shape = tuple(int(s) for s in card["data_shape"])
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]

    args.grid = _resolve_grid(args)
    if args.shard_size is not None or args.resume or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _run_sharded(args, provider, card, shape, sigma, mu, dtype)

    from lazysi.numeric.sampling.covlazy import COV_SAMPLERS

    cov_fn = _cov_generator(args, provider, card, shape, sigma, dtype) if args.sampler in COV_SAMPLERS else None

    from tqdm import tqdm

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tqdm(total=args.n, desc=f"{args.sampler} x{args.steps}", unit="sample", file=sys.stderr,
              disable=args.no_progress) as bar:
        if cov_fn is not None:  # covariance-aware lazy samplers (lazysi.numeric.sampling.covlazy), per-sample seeded
            x, nfe = sample_batched(cov_fn, args.n, args.batch, progress=bar.update)
        else:
            x, nfe = sample(provider, args.sampler, args.steps, args.n, args.seed, shape, batch=args.batch, sigma=sigma,
                            mu=mu, grid=args.grid, shift=args.shift, dtype=dtype, device=args.device, progress=bar.update)
    seconds = time.perf_counter() - t0
    samples = x.numpy()
    np.savez(out / "samples.npz", x=samples)
    if len(shape) == 3 and shape[0] in (1, 3):
        write_png(out / "samples.png", image_grid(samples))
    else:
        write_png(out / "samples.png", scatter_image(samples))

    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}
    options.update({"sigma": sigma, "sigma_source": sigma_source, "mu": args.mu, "mu_mean_value": float(mu.mean()), "data_shape": list(shape)})
    card_files = {p: h for p, h in card.get("loaded_from", {}).items()}
    card_json = next((p for p in card_files if p.endswith(".json")), None)
    record = run_record(options, card_json, {"seed": args.seed, "indices": [0, args.n],
                                             "scheme": "per-sample sha256(seed:index:stream)"})
    record.update({
        "sampler": SAMPLERS[args.sampler].description if args.sampler in SAMPLERS else COV_SAMPLERS[args.sampler],
        "nfe": nfe,
        "seconds": round(seconds, 3),
        "model_files_sha256": card_files,
        "model_card": {**(record.get("model_card") or {}), "summary": {k: card.get(k) for k in (
            "class", "schedule", "prediction", "data_mean", "data_rms_centred", "training_steps") if k in card}},
    })
    record.setdefault("packages", package_versions())
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {args.n} samples to {out} (NFE {nfe}, {seconds:.2f}s)")
    return 0


def _classifier_features(card) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """128-d features of the committed MNIST classifier for 1x28x28 data (streaming FID stats)."""
    if [int(s) for s in card.get("data_shape", [])] != [1, 28, 28]:
        return None
    import lazysi.numeric as numeric_pkg
    from lazysi.numeric.models import load_checkpoint

    model, _ = load_checkpoint(Path(numeric_pkg.__file__).resolve().parent / "weights" / "mnist_classifier")

    def features(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.features(x.float().reshape(-1, 1, 28, 28)).double()

    return features


def _cov_generator(args, provider, card, shape, sigma, dtype) -> Callable[[list[int]], tuple[torch.Tensor, int]]:
    """``indices -> (samples, NFE)`` for a covariance-aware sampler (the Gaussian approximation is
    built once; ``args.grid`` is already resolved by :func:`_resolve_grid`)."""
    from lazysi.numeric.sampling.covlazy import approx_for_model, generate_cov

    approx = approx_for_model(args.model, provider, card)

    def fn(indices: list[int]) -> tuple[torch.Tensor, int]:
        return generate_cov(provider, args.sampler, args.steps, indices, args.seed, shape, approx, grid=args.grid,
                            sigma=sigma, shift=args.shift, dtype=dtype, device=args.device)

    return fn


def _run_sharded(args, provider, card, shape, sigma, mu, dtype) -> int:
    """Sharded (optionally multi-process) sampling through :func:`lazysi.numeric.io.shards.run_sharded`."""
    from lazysi.numeric.sampling.covlazy import COV_SAMPLERS
    from lazysi.numeric.io.shards import run_sharded
    from lazysi.numeric.sampling.lazy import generate

    if args.sampler in COV_SAMPLERS:
        cov_fn = _cov_generator(args, provider, card, shape, sigma, dtype)

        def generate_fn(indices: list[int]) -> torch.Tensor:
            return cov_fn(indices)[0].float().cpu()
    else:
        def generate_fn(indices: list[int]) -> torch.Tensor:
            x, _ = generate(provider, args.sampler, args.steps, indices, args.seed, shape, sigma=sigma, mu=mu,
                            grid=args.grid, shift=args.shift, dtype=dtype, device=args.device)
            return x.float().cpu()

    card_json = next((p for p in card.get("loaded_from", {}) if p.endswith(".json")), None)
    return run_sharded(args, generate_fn, features=_classifier_features(card), model_card_path=card_json)
