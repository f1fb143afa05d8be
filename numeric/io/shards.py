"""Sharded, resumable, multi-process sampling (torchrun / ``torch.distributed``).

A run produces ``n`` samples with indices ``0 .. n-1``. Shard ``k`` holds the indices
``[k * shard_size, min((k + 1) * shard_size, n))``; shard ``k`` is produced by rank
``k % world_size``. Sample ``i`` must depend only on ``i`` (and the run's fixed options: seed,
model, sampler), which :mod:`lazysi.numeric.sampling.seeding` guarantees for the noise; then every shard
file is **byte-identical for any world size and any batch size** (the ``.npz`` files are written
with fixed zip timestamps, so equal arrays give equal bytes and equal sha256).

Files in ``out_dir``::

    shard-00000.npz        arrays ``indices`` (int64, (m,)) and ``samples`` ((m, ...))
    shard-00000.json       sidecar: sha256 and size of the .npz, index range, run fingerprint
    manifest.json          written by rank 0 after all ranks finished: every shard + its sha256
    stats.npz              optional streaming feature statistics (count, sum, sum of outer products)

Every file is written atomically: temporary file in the same folder, flush, fsync, ``os.replace``,
fsync of the folder. A shard counts as *complete* when its sidecar exists and the .npz matches
the sidecar's sha256 and index range. A killed run therefore loses at most the shards that were
in flight; ``resume=True`` verifies and skips the complete shards and regenerates the rest
(missing, truncated, corrupted or unverifiable ones), so the final folder is identical to the
folder of an uninterrupted run.

Streaming statistics: with ``stats=feature_fn`` each rank accumulates, in float64, the count, the
sum and the sum of outer products of ``feature_fn(samples)`` over its shards (recomputing the
features of shards skipped on resume from their stored samples); the three sums are reduced
across ranks with ``all_reduce``, so mean and covariance for a Fréchet distance (FID) need no
second pass over the images. (The reduced sums are equal across world sizes up to float64
summation order, not bit for bit.)

Distributed setup: if ``torch.distributed`` is initialised, its default group is used; otherwise
:func:`init_from_env` initialises it from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``...) with backend ``gloo`` on CPU and ``nccl`` on CUDA. Without those variables
the run is a single process. ``out_dir`` must be visible to every rank (a shared file system).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from lazysi.numeric.evaluation.fid import FeatureStats
from lazysi.numeric.io.atomic import atomic_write_bytes, atomic_write_json, encode_npz
from lazysi.numeric.io.record import file_sha256

__all__ = [
    "FORMAT_VERSION",
    "ShardError",
    "ShardSpec",
    "ShardRunResult",
    "plan_shards",
    "init_from_env",
    "rank_world",
    "sample_to_shards",
    "verify_shard",
    "load_shards",
    "load_stats",
]

FORMAT_VERSION = 1


class ShardError(RuntimeError):
    """A shard folder is inconsistent (names the file and the problem)."""


# ----------------------------------------------------------------------------------------------
# Plan
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` holds sample indices ``[start, stop)``."""

    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    @property
    def npz(self) -> str:
        return f"{self.name}.npz"

    @property
    def sidecar(self) -> str:
        return f"{self.name}.json"

    @property
    def indices(self) -> list[int]:
        return list(range(self.start, self.stop))


def plan_shards(n: int, shard_size: int) -> list[ShardSpec]:
    """The fixed shard layout of ``n`` samples: shard k = ``[k*shard_size, min((k+1)*shard_size, n))``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of samples) must be a positive integer, got {n!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    count = math.ceil(n / shard_size)
    if count > 99999:
        raise ValueError(f"{count} shards exceed the 5-digit shard names; use a larger shard_size")
    return [ShardSpec(k, k * shard_size, min((k + 1) * shard_size, n)) for k in range(count)]


# ----------------------------------------------------------------------------------------------
# Distributed helpers
# ----------------------------------------------------------------------------------------------
def init_from_env(device: str | torch.device = "cpu") -> bool:
    """Initialise ``torch.distributed`` from torchrun's environment if it is set and the default
    group is not yet initialised. Backend: ``nccl`` for a CUDA ``device``, else ``gloo``.
    Returns True when a multi-process group is active."""
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    device = torch.device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def rank_world(group: Any = None) -> tuple[int, int]:
    """``(rank, world size)`` in ``group`` (the default group), ``(0, 1)`` without torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def _barrier(group: Any) -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=group)


def _all_max(value: int, group: Any) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return int(t.item())


def _all_ok(ok: bool, group: Any) -> bool:
    """True when ``ok`` holds on every rank (so a failing rank does not leave others waiting)."""
    if not (dist.is_available() and dist.is_initialized()):
        return ok
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.SUM, group=group)
    return int(flag.item()) == 0


# ----------------------------------------------------------------------------------------------
# Shards
# ----------------------------------------------------------------------------------------------
def verify_shard(out_dir: str | os.PathLike, spec: ShardSpec, fingerprint: str | None = None) -> str | None:
    """Why shard ``spec`` in ``out_dir`` is not complete, or None if it is.

    Complete means: the sidecar exists and parses, names this index range (and ``fingerprint``
    when given), and the .npz has the sidecar's sha256 and size."""
    out = Path(out_dir)
    side, npz = out / spec.sidecar, out / spec.npz
    if not side.exists():
        return f"{spec.sidecar} missing"
    if not npz.exists():
        return f"{spec.npz} missing"
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        return f"{spec.sidecar} unreadable ({exc})"
    if not isinstance(meta, dict):
        return f"{spec.sidecar} is not a JSON object"
    if (meta.get("start"), meta.get("stop")) != (spec.start, spec.stop):
        return f"{spec.sidecar} holds indices [{meta.get('start')}, {meta.get('stop')}), expected [{spec.start}, {spec.stop})"
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        return f"{spec.sidecar} belongs to a different run (fingerprint {meta.get('fingerprint')!r}, expected {fingerprint!r})"
    size = npz.stat().st_size
    if size != meta.get("bytes"):
        return f"{spec.npz} has {size} bytes, sidecar says {meta.get('bytes')}"
    digest = file_sha256(npz)
    if digest != meta.get("sha256"):
        return f"{spec.npz} sha256 {digest[:12]}... does not match the sidecar's {str(meta.get('sha256'))[:12]}..."
    return None


def _to_numpy(samples: torch.Tensor, count: int) -> np.ndarray:
    if not isinstance(samples, torch.Tensor):
        raise TypeError(f"the sample function must return a torch.Tensor, got {type(samples).__name__}")
    if samples.ndim < 1 or samples.shape[0] != count:
        raise ValueError(f"the sample function returned shape {tuple(samples.shape)} for {count} indices; the first dimension must be {count}")
    if samples.dtype in (torch.bfloat16,) or samples.is_complex():
        raise TypeError(f"samples of dtype {samples.dtype} cannot be stored in .npz; convert to float32/float64/uint8 first")
    return samples.detach().to("cpu").contiguous().numpy()


def _read_shard_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return z["indices"], z["samples"]


def _clean_temporaries(out: Path, specs: Sequence[ShardSpec]) -> None:
    """Remove temporary files left by a killed writer for these shards."""
    names = {s.npz for s in specs} | {s.sidecar for s in specs}
    for p in out.glob(".shard-*.tmp"):
        m = re.match(r"^\.(shard-\d{5}\.(?:npz|json))\.", p.name)
        if m and m.group(1) in names:
            try:
                p.unlink()
            except FileNotFoundError:
                pass


@dataclass
class ShardRunResult:
    """What one rank did, and (on every rank) the run-wide manifest and statistics."""

    rank: int
    world_size: int
    generated: list[int]
    skipped: list[int]
    invalid: dict[int, str]  # shard -> why it was regenerated on resume
    manifest: dict[str, Any]
    stats: FeatureStats | None


def sample_to_shards(
    fn: Callable[[list[int]], torch.Tensor],
    n: int,
    out_dir: str | os.PathLike,
    *,
    shard_size: int,
    batch: int,
    resume: bool = False,
    stats: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fingerprint: str = "",
    metadata: Mapping[str, Any] | None = None,
    group: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShardRunResult:
    """Produce samples ``0 .. n-1`` as shards in ``out_dir`` on all ranks of ``group``.

    Args:
        fn: ``fn(indices) -> Tensor`` of shape ``(len(indices), ...)``; row j must depend only on
            ``indices[j]`` (per-sample seeding), never on the batch it is computed in.
        n: number of samples. shard_size: samples per shard (the last may be shorter).
        batch: largest list of indices passed to ``fn`` at once (batches never cross a shard).
        resume: keep complete shards (verified against their sidecar sha256) and regenerate the
            others. Without ``resume``, a folder that already has shard files is refused.
        stats: optional ``feature_fn(samples) -> (m, d)`` for streaming statistics; the result's
            ``stats`` then holds the run-wide float64 sums (all-reduced) and rank 0 writes
            ``stats.npz``.
        fingerprint: a string identifying the run's options (e.g. a hash of the resolved
            options); shards of another run are rejected on resume with an error.
        metadata: JSON-serialisable extras stored in the manifest.
        group: process group (default: the default group when initialised, else single process).
        progress: called as ``progress(done_shards, my_shards)`` after each shard.

    Rank ``r`` of ``W`` handles shards ``k`` with ``k % W == r``. After a barrier, rank 0 writes
    ``manifest.json`` (atomically) from the sidecars; every rank then returns it.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not isinstance(fingerprint, str):
        raise TypeError(f"fingerprint must be a string, got {type(fingerprint).__name__}")
    specs = plan_shards(n, shard_size)
    rank, world = rank_world(group)
    out = Path(out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        existing = sorted(p.name for p in out.glob("shard-*.*"))
        problem = None
        if existing and not resume:
            problem = f"{out} already holds shard files ({existing[0]}, ...); pass resume=True (--resume) or use an empty folder"
        manifest_path = out / "manifest.json"
        if problem is None and resume and manifest_path.exists():
            try:
                old = json.loads(manifest_path.read_text())
                if (old.get("n"), old.get("shard_size"), old.get("fingerprint")) != (n, shard_size, fingerprint):
                    problem = (f"{manifest_path} is from a different run (n={old.get('n')}, shard_size={old.get('shard_size')}, "
                               f"fingerprint={old.get('fingerprint')!r}); expected n={n}, shard_size={shard_size}, fingerprint={fingerprint!r}")
            except (OSError, ValueError) as exc:
                problem = f"{manifest_path} is unreadable ({exc})"
    else:
        problem = None
    if not _all_ok(problem is None, group):
        raise ShardError(problem or "rank 0 refused the output folder (see its error)")
    _barrier(group)  # the folder exists for everyone

    mine = [s for s in specs if s.index % world == rank]
    _clean_temporaries(out, mine)
    feats: FeatureStats | None = None
    generated: list[int] = []
    skipped: list[int] = []
    invalid: dict[int, str] = {}
    error: BaseException | None = None
    try:
        for done, spec in enumerate(mine, start=1):
            why = verify_shard(out, spec, fingerprint) if resume else "not resuming"
            if why is None:
                skipped.append(spec.index)
                if stats is not None:
                    _, samples_np = _read_shard_arrays(out / spec.npz)
                    feats = _accumulate(feats, stats, torch.from_numpy(samples_np))
            else:
                if resume and ((out / spec.sidecar).exists() or (out / spec.npz).exists()):
                    invalid[spec.index] = why
                for p in (out / spec.sidecar, out / spec.npz):  # sidecar first: never a stale "complete"
                    if p.exists():
                        p.unlink()
                samples = _generate(fn, spec, batch)
                if stats is not None:
                    feats = _accumulate(feats, stats, torch.from_numpy(samples))
                data = encode_npz({"indices": np.arange(spec.start, spec.stop, dtype=np.int64), "samples": samples})
                atomic_write_bytes(out / spec.npz, data)
                atomic_write_json(out / spec.sidecar, {
                    "format": FORMAT_VERSION,
                    "shard": spec.index,
                    "start": spec.start,
                    "stop": spec.stop,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                    "fingerprint": fingerprint,
                    "shape": list(samples.shape[1:]),
                    "dtype": str(samples.dtype),
                })
                generated.append(spec.index)
            if progress is not None:
                progress(done, len(mine))
    except BaseException as exc:  # let the other ranks leave the collective below, then re-raise
        error = exc
    if not _all_ok(error is None, group):
        if error is not None:
            raise error
        raise ShardError("another rank failed while sampling (see its error)")

    if stats is not None:
        dim = _all_max(feats.dim if feats is not None else 0, group)
        if feats is None:  # this rank had no shards: contribute zeros of the agreed size
            feats = FeatureStats(dim)
        elif feats.dim != dim:
            raise ShardError(f"feature dimension {feats.dim} on rank {rank} differs from {dim} on another rank")
        feats.all_reduce(group)
    _barrier(group)
    problem = None
    if rank == 0:
        try:
            manifest = _build_manifest(out, specs, n, shard_size, fingerprint, metadata, feats)
            if feats is not None:
                stats_bytes = encode_npz(feats.to_arrays())
                atomic_write_bytes(out / "stats.npz", stats_bytes)
                manifest["stats"] = {"file": "stats.npz", "sha256": hashlib.sha256(stats_bytes).hexdigest(), "dim": feats.dim, "count": feats.count}
            atomic_write_json(out / "manifest.json", manifest)
        except (ShardError, OSError) as exc:
            problem = str(exc)
    if not _all_ok(problem is None, group):
        raise ShardError(problem or "rank 0 could not write the manifest (see its error)")
    manifest = json.loads((out / "manifest.json").read_text())
    return ShardRunResult(rank, world, generated, skipped, invalid, manifest, feats)


def _generate(fn: Callable[[list[int]], torch.Tensor], spec: ShardSpec, batch: int) -> np.ndarray:
    parts: list[np.ndarray] = []
    for lo in range(spec.start, spec.stop, batch):
        idx = list(range(lo, min(lo + batch, spec.stop)))
        with torch.no_grad():
            arr = _to_numpy(fn(idx), len(idx))
        if parts and (arr.shape[1:] != parts[0].shape[1:] or arr.dtype != parts[0].dtype):
            raise ValueError(f"the sample function changed its output from {parts[0].shape[1:]}/{parts[0].dtype} to {arr.shape[1:]}/{arr.dtype}")
        parts.append(arr)
    return np.concatenate(parts, axis=0)


def _accumulate(feats: FeatureStats | None, stats: Callable[[torch.Tensor], torch.Tensor], samples: torch.Tensor) -> FeatureStats:
    with torch.no_grad():
        f = stats(samples)
    if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != samples.shape[0]:
        raise ValueError(f"the feature function must return a (m, d) tensor for m={samples.shape[0]} samples, got {getattr(f, 'shape', type(f))}")
    if feats is None:
        feats = FeatureStats(int(f.shape[1]))
    feats.update(f)
    return feats


def _build_manifest(out: Path, specs: Sequence[ShardSpec], n: int, shard_size: int, fingerprint: str,
                    metadata: Mapping[str, Any] | None, feats: FeatureStats | None) -> dict[str, Any]:
    shards = []
    shape, dtype = None, None
    for spec in specs:
        why = verify_shard(out, spec, fingerprint)
        if why is not None:
            raise ShardError(f"shard {spec.index} is not complete after all ranks finished: {why}")
        meta = json.loads((out / spec.sidecar).read_text())
        if shape is None:
            shape, dtype = meta.get("shape"), meta.get("dtype")
        elif (meta.get("shape"), meta.get("dtype")) != (shape, dtype):
            raise ShardError(f"{spec.npz} holds samples {meta.get('shape')}/{meta.get('dtype')}, other shards {shape}/{dtype}")
        shards.append({"shard": spec.index, "file": spec.npz, "start": spec.start, "stop": spec.stop,
                       "sha256": meta["sha256"], "bytes": meta["bytes"]})
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "n": n,
        "shard_size": shard_size,
        "fingerprint": fingerprint,
        "sample_shape": shape,
        "dtype": dtype,
        "shards": shards,
        "complete": True,
    }
    if metadata:
        manifest["metadata"] = json.loads(json.dumps(dict(metadata), sort_keys=True, default=str))
    return manifest


def load_shards(out_dir: str | os.PathLike, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, samples)`` of a finished run, in index order, after checking the manifest's
    sha256 of every shard (``verify=True``)."""
    out = Path(out_dir)
    path = out / "manifest.json"
    if not path.exists():
        raise ShardError(f"{path} missing: the run did not finish (use resume to complete it)")
    manifest = json.loads(path.read_text())
    idx, smp = [], []
    for entry in manifest["shards"]:
        p = out / entry["file"]
        if verify:
            if not p.exists():
                raise ShardError(f"{p} missing")
            digest = file_sha256(p)
            if digest != entry["sha256"]:
                raise ShardError(f"{p} sha256 {digest[:12]}... does not match the manifest's {entry['sha256'][:12]}...")
        i, s = _read_shard_arrays(p)
        if i.shape[0] != entry["stop"] - entry["start"] or (i.size and (i[0], i[-1]) != (entry["start"], entry["stop"] - 1)):
            raise ShardError(f"{p} holds indices that do not match the manifest range [{entry['start']}, {entry['stop']})")
        idx.append(i)
        smp.append(s)
    return np.concatenate(idx), np.concatenate(smp)


def load_stats(out_dir: str | os.PathLike) -> FeatureStats:
    """The streaming statistics written by a finished run (sha256 checked against the manifest)."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest.get("stats")
    if entry is None:
        raise ShardError(f"{out} has no feature statistics (the run had no feature function)")
    p = out / entry["file"]
    if file_sha256(p) != entry["sha256"]:
        raise ShardError(f"{p} does not match the manifest's sha256")
    with np.load(p, allow_pickle=False) as z:
        fs = FeatureStats(int(z["sum"].shape[0]), int(z["count"]), torch.from_numpy(z["sum"].copy()), torch.from_numpy(z["outer"].copy()))
    return fs


