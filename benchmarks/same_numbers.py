"""Same numbers before and after a change of the sampling layer: sample every registered sampler on
``mnist-gmm`` and ``mnist`` (12 samples, seed 9173, 1, 2 and 4 steps, one batch) and save the
arrays; with ``--compare DIR`` report every array that differs from DIR's (bit for bit).

Commands (issue 14's check)::

    python benchmarks/same_numbers.py --out /tmp/after --compare /tmp/before

``/tmp/before`` was written by the same loop on the code before the move (the old API:
``lazy.generate`` / ``covlazy.generate_cov`` / ``peers.generate_peer`` with the same arguments).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.registry import SAMPLERS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path, default=None)
    ap.add_argument("--models", nargs="+", default=["mnist-gmm", "mnist"])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"same": [], "different": [], "missing_before": [], "skipped": []}
    for name in args.models:
        model = Model.load(name)
        setup = model.setup()
        for steps in (1, 2, 4):
            for sampler, spec in SAMPLERS.items():
                if sampler == "reference" and name == "mnist":
                    continue
                if spec.package is not None and not spec.method.available():
                    report["skipped"].append(f"{name}_{sampler}_{steps}")
                    continue
                x, nfe = generate(spec, model.provider, steps, list(range(12)), 9173, model.shape, setup=setup)
                key = f"{name}_{sampler}_{steps}"
                arr = x.detach().double().numpy()
                np.save(args.out / f"{key}.npy", arr)
                if args.compare is not None:
                    old = args.compare / f"{key}.npy"
                    if not old.exists():
                        report["missing_before"].append(key)
                    elif np.array_equal(np.load(old), arr):
                        report["same"].append(key)
                    else:
                        report["different"].append({"key": key, "max_abs_diff": float(np.abs(np.load(old) - arr).max())})
                print(key, nfe, flush=True)
    (args.out / "same_numbers.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: (len(v) if k == "same" else v) for k, v in report.items()}, indent=1))


if __name__ == "__main__":
    main()
