"""A sampling run into a folder: resumable shards, then one output contract for every run.

Every run of ``lazysi sample`` — one process or many (torchrun), with or without an explicit
shard size — goes through :func:`run_to_folder`:

1. the samples ``0 .. n-1`` are produced as atomic, checksummed shard files
   (:func:`lazysi.numeric.io.shards.sample_to_shards`), split across ranks by index, so a killed
   run loses at most the shards in flight and ``resume`` continues it;
2. once every shard is verified, rank 0 assembles ``samples.npz`` (array ``x``, float32, data
   space), ``samples.png`` (an image grid upscaled for reading, or a scatter plot for vectors) and
   ``run.json`` (resolved options, package versions, model-card hash, seeds, counted NFE, intra-op
   threads, timing). Every file is written atomically with normal permissions. The shards stay
   for resume.

The run's identity (a sha256 of the options that change samples, :data:`NON_IDENTITY_OPTIONS`
left out) is stored in the manifest; resuming with other options is refused.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lazysi.numeric.io.atomic import atomic_write_bytes, encode_npz
from lazysi.numeric.io.png import encode_png, sample_image
from lazysi.numeric.io.record import fingerprint_options, run_record, write_record
from lazysi.numeric.io.shards import init_from_env, load_shards, plan_shards, rank_world, sample_to_shards, verify_shard

__all__ = ["NON_IDENTITY_OPTIONS", "DEFAULT_SHARD_SIZE", "RunInterrupted", "RunResult", "run_to_folder", "completed_samples"]

#: options that do not change any sample (left out of the run identity, so a resume may change them)
NON_IDENTITY_OPTIONS = ("resume", "out", "batch", "func", "command", "progress", "quiet", "verbose", "_run", "no_progress",
                        "debug")
#: shard size when none is given: small enough that an interrupted run keeps most of its work
DEFAULT_SHARD_SIZE = 256


class RunInterrupted(Exception):
    """The run was interrupted (Ctrl-C); ``kept`` samples of ``n`` are in complete shards."""

    def __init__(self, out: Path, kept: int, n: int):
        super().__init__(f"interrupted: {kept} of {n} samples kept in complete shards in {out}")
        self.out, self.kept, self.n = out, kept, n


@dataclass(frozen=True)
class RunResult:
    rank: int
    world_size: int
    record: dict[str, Any]


def completed_samples(out: Path, n: int, shard_size: int) -> int:
    """How many of the ``n`` samples lie in verified shard files in ``out``."""
    return sum(spec.stop - spec.start for spec in plan_shards(n, shard_size) if verify_shard(out, spec) is None)


def run_to_folder(
    generate_fn: Callable[[list[int]], tuple[torch.Tensor, int]],
    n: int,
    out: str | os.PathLike,
    *,
    batch: int,
    seed: int,
    options: Mapping[str, Any],
    shard_size: int | None = None,
    resume: bool = False,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    model_card_path: str | os.PathLike | None = None,
    record_extra: Mapping[str, Any] | None = None,
    model_summary: Mapping[str, Any] | None = None,
    device: str = "cpu",
    image_scale: int = 4,
    image_label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Produce samples ``0 .. n-1`` with ``generate_fn(indices) -> (samples, counted NFE)`` into ``out``
    (see the module doc). ``options``: the resolved options (recorded; the identity is their
    sha256 without :data:`NON_IDENTITY_OPTIONS`). Raises :class:`RunInterrupted` on Ctrl-C after the
    complete shards are safe, :class:`~lazysi.numeric.io.shards.ShardError` for a folder of
    another run or of a run that is already there (pass ``resume``)."""
    out = Path(out)
    init_from_env(device)
    size = shard_size or min(n, DEFAULT_SHARD_SIZE)
    opts = {**dict(options), "shard_size": size}
    fp = fingerprint_options(opts, exclude=NON_IDENTITY_OPTIONS)
    rank, world = rank_world()
    record = run_record(opts, model_card_path=model_card_path, seeds={"seed": seed, "indices": [0, int(n)],
                                                                       "scheme": "per-sample sha256(seed:index:stream)"})
    record.update(dict(record_extra or {}))
    if model_summary is not None:
        record["model_card"] = {**(record.get("model_card") or {}), "summary": dict(model_summary)}
    record.update(world_size=world, fingerprint=fp, finished=False)
    counted: list[int] = []

    def samples_only(indices: list[int]) -> torch.Tensor:
        x, nfe = generate_fn(indices)
        counted.append(int(nfe))
        return x.detach().to("cpu", torch.float32)

    t0 = time.perf_counter()
    try:
        result = sample_to_shards(samples_only, int(n), out, shard_size=size, batch=int(batch), resume=resume,
                                  stats=features, fingerprint=fp, metadata={"options": {k: v for k, v in opts.items()
                                                                                        if k not in NON_IDENTITY_OPTIONS}},
                                  progress=progress)
    except KeyboardInterrupt:
        raise RunInterrupted(out, completed_samples(out, int(n), size), int(n)) from None
    seconds = time.perf_counter() - t0
    if rank == 0:
        _, x = load_shards(out)
        atomic_write_bytes(out / "samples.npz", encode_npz({"x": x}))
        atomic_write_bytes(out / "samples.png", encode_png(sample_image(x, scale=image_scale, label=image_label)))
        if len(set(counted)) > 1:
            raise RuntimeError(f"the NFE per sample changed between batches: {sorted(set(counted))}")
        if counted:
            record["nfe"] = counted[0]
        record.update(finished=True, nfe_counted=bool(counted), seconds=round(seconds, 3),
                      generated_on_rank0=result.generated, kept=result.skipped,
                      regenerated={str(k): v for k, v in result.invalid.items()},
                      files={"samples": "samples.npz", "image": "samples.png", "manifest": "manifest.json"})
        write_record(out, record)
    return RunResult(rank, world, record)
