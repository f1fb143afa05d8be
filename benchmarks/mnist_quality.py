"""Quality floor of the embedded ``mnist`` model: the share of samples that the committed MNIST
classifier assigns a class with confidence >= 0.9, plus the class histogram and a PNG grid.
The same share on the classifier's 1,000 held-out real digits is reported alongside (the ceiling a
perfect generator would reach with this classifier).

Confidence is the *calibrated* softmax (logits / the card's NLL-fitted ``temperature``; see
``benchmarks/train_mnist_classifier.py``); the uncalibrated (T = 1) shares are reported too.
``--classifier STEM`` scores with another checkpoint and its card (e.g. an independently trained
classifier as a second opinion).

Commands (recorded in BENCHMARKS.md; any sampler of ``lazysi sample`` works):
    python benchmarks/mnist_quality.py --sampler rk4 --steps 8 --n 1000
    python benchmarks/mnist_quality.py --sampler lazy-cov-pcd --steps 4 --n 1000
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import lazysi.numeric as numeric_pkg
from lazysi.numeric.io.png import image_grid, write_png
from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.generate import sample
from lazysi.numeric.sampling.registry import resolve
from lazysi.numeric.models.data import load_mnist
from lazysi.numeric.evaluation.metrics import classifier_logits
from lazysi.numeric.models import load_checkpoint

OUT = Path(__file__).resolve().parent / "results"


def confidences(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Top probability of ``softmax(logits / temperature)`` and its class, per image."""
    return torch.softmax(logits / temperature, dim=1).max(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist",
                    help="'mnist' (embedded) or a checkpoint stem/PATH.safetensors with its JSON card, e.g. a "
                         "training run's intermediate checkpoint")
    ap.add_argument("--sampler", default="rk4")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--sigma", type=float, default=None,
                    help="lazy data scale (default: numeric/weights/mnist_flow.lazy.json, else the card's RMS)")
    ap.add_argument("--classifier", type=Path, default=None,
                    help="classifier checkpoint stem (default: the committed numeric/weights/mnist_classifier)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT, help="results folder (default benchmarks/results)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Model.load(args.model)
    provider, card = model.provider, model.card
    sigma, sigma_source = model.sigma(args.sigma)
    spec = resolve(args.sampler)
    setup = model.setup(sigma=sigma, gaussian=spec.frame.gaussian)
    t0 = time.perf_counter()
    x, nfe = sample(spec, provider, args.steps, args.n, args.seed, (1, 28, 28), batch=args.batch, setup=setup,
                    dtype=torch.float32)
    seconds = time.perf_counter() - t0
    clf_stem = args.classifier or Path(numeric_pkg.__file__).resolve().parent / "weights" / "mnist_classifier"
    clf, clf_card = load_checkpoint(clf_stem)
    clf.eval()
    temperature = float(clf_card.get("temperature", 1.0))
    logits = classifier_logits(x, clf)
    logits_real = classifier_logits(load_mnist("test"), clf)  # the classifier's held-out digits

    def shares(t: float) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        conf, label = confidences(logits, t)
        conf_real, _ = confidences(logits_real, t)
        return (float((conf >= args.threshold).double().mean()), float((conf_real >= args.threshold).double().mean()),
                conf, label)

    share, share_real, conf, label = shares(temperature)
    share_raw, share_real_raw, _, _ = shares(1.0)
    result = {
        "model": args.model, "sampler": args.sampler, "steps": args.steps, "nfe": nfe, "n": args.n, "seed": args.seed,
        "sigma": sigma, "sigma_source": sigma_source,
        "training_steps": card.get("training_steps"), "threshold": args.threshold,
        "classifier": str(clf_stem.relative_to(clf_stem.parents[2]) if args.classifier is None else clf_stem),
        "classifier_temperature": temperature,
        "share_confident": share, "share_confident_real_heldout": share_real,
        "share_relative_to_real": share / share_real,
        "share_confident_uncalibrated": share_raw, "share_confident_real_heldout_uncalibrated": share_real_raw,
        "class_histogram": np.bincount(label.numpy(), minlength=10).tolist(),
        "mean_confidence": float(conf.mean()), "seconds": round(seconds, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"mnist_quality_{args.sampler}_{args.steps}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_png(stem.with_suffix(".png"), image_grid(x[:64].numpy()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
