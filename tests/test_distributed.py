"""Sharded sampling: 1 vs 2 processes bit-identical, SIGKILL + resume, checksum detection,
streaming statistics vs a two-pass computation, Fréchet distance vs scipy / closed forms.

This file doubles as the worker script run by the subprocess tests:
``python tests/test_distributed.py OUT N SHARD_SIZE BATCH SLEEP RESUME``
(under ``torchrun`` it joins the process group from the environment).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lazysi.numeric.evaluation.fid import FeatureStats, frechet_distance, sqrtm_psd
from lazysi.numeric.io.shards import (
    ShardError,
    init_from_env,
    load_shards,
    load_stats,
    plan_shards,
    sample_to_shards,
    verify_shard,
)
from lazysi.numeric.sampling.seeding import per_sample_normal

SEED = 1234
SHAPE = (3, 4)


def sample_fn(indices: list[int], sleep: float = 0.0) -> torch.Tensor:
    """Per-sample-seeded noise pushed through a fixed nonlinear map (elementwise + a per-row
    cumulative sum: each row depends only on its own index)."""
    if sleep:
        time.sleep(sleep)
    z = per_sample_normal(SEED, indices, SHAPE)
    return (torch.tanh(1.3 * z) + torch.sin(z).cumsum(-1)).to(torch.float32)


def feature_fn(samples: torch.Tensor) -> torch.Tensor:
    flat = samples.reshape(samples.shape[0], -1).to(torch.float64)
    return torch.cat([flat[:, :4], flat[:, :2] ** 2], dim=1)


def _file_hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*.npz"))}


def _worker_cmd(out: Path, n: int, shard: int, batch: int, sleep: float = 0.0, resume: bool = False) -> list[str]:
    return [str(a) for a in (__file__, out, n, shard, batch, sleep, int(resume))]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_plan_covers_range_once():
    specs = plan_shards(10, 4)
    assert [(s.start, s.stop) for s in specs] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards(10, 0)
    with pytest.raises(ValueError, match="n "):
        plan_shards(0, 3)


def test_one_vs_two_processes_bit_identical(tmp_path):
    n, shard = 11, 4
    single = tmp_path / "single"
    res = sample_to_shards(sample_fn, n, single, shard_size=shard, batch=3, stats=feature_fn, fingerprint="t")
    assert res.generated == [0, 1, 2] and res.world_size == 1
    # Two ranks (gloo via torchrun), different batch size: rank 0 gets shards 0, 2; rank 1 shard 1.
    double = tmp_path / "double"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *_worker_cmd(double, n, shard, 2)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("double.rank*.json"))]
    assert sorted(r["rank"] for r in reports) == [0, 1] and all(r["world"] == 2 for r in reports)
    assert sorted(sum((r["generated"] for r in reports), [])) == [0, 1, 2]
    # Bit-identical files and manifests.
    assert _file_hashes(single) == _file_hashes(double) and len(_file_hashes(single)) == 3
    m1 = json.loads((single / "manifest.json").read_text())
    m2 = json.loads((double / "manifest.json").read_text())
    assert m1["shards"] == m2["shards"]
    # And equal to the samples computed directly in one batch.
    idx, samples = load_shards(double)
    assert idx.tolist() == list(range(n))
    assert np.array_equal(samples, sample_fn(list(range(n))).numpy())
    # Streaming statistics (all_reduced over 2 ranks) vs a two-pass float64 computation.
    feats = feature_fn(torch.from_numpy(samples)).numpy()
    mu_ref, cov_ref = feats.mean(0), np.cov(feats, rowvar=False)
    for out in (single, double):
        st = load_stats(out)
        mu, cov = st.mean_cov()
        assert st.count == n
        np.testing.assert_allclose(mu.numpy(), mu_ref, rtol=0, atol=1e-13)
        np.testing.assert_allclose(cov.numpy(), cov_ref, rtol=0, atol=1e-13)
    assert all(r["stats_count"] == n for r in reports)  # every rank holds the reduced sums


def test_kill_and_resume(tmp_path):
    n, shard = 12, 3
    ref = tmp_path / "ref"
    sample_to_shards(sample_fn, n, ref, shard_size=shard, batch=2, fingerprint="t")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *_worker_cmd(out, n, shard, 2, sleep=0.25)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    deadline = time.time() + 60
    while not (out / "shard-00000.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "worker produced no shard in 60 s"
        time.sleep(0.02)
    time.sleep(0.3)  # now inside the next shard's batches
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    specs = plan_shards(n, shard)
    complete = [s.index for s in specs if verify_shard(out, s, "t") is None]
    assert 0 in complete and len(complete) < len(specs)  # killed mid-way, shard 0 survived intact
    # A stale temporary file of an in-flight write is cleaned up on resume.
    (out / ".shard-00003.npz.abc.tmp").write_bytes(b"partial")
    with pytest.raises(ShardError, match="resume"):
        sample_to_shards(sample_fn, n, out, shard_size=shard, batch=2, fingerprint="t")
    res = sample_to_shards(sample_fn, n, out, shard_size=shard, batch=4, resume=True, fingerprint="t")
    assert res.skipped == complete and sorted(res.skipped + res.generated) == [s.index for s in specs]
    assert _file_hashes(out) == _file_hashes(ref)
    assert json.loads((out / "manifest.json").read_text()) == json.loads((ref / "manifest.json").read_text())
    assert not list(out.glob(".*.tmp"))


def test_corrupted_shard_detected_and_regenerated(tmp_path):
    n, shard = 9, 3
    out = tmp_path / "run"
    sample_to_shards(sample_fn, n, out, shard_size=shard, batch=3, fingerprint="t")
    good = _file_hashes(out)
    raw = bytearray((out / "shard-00001.npz").read_bytes())
    raw[-20] ^= 0x01  # one flipped bit inside the sample data
    (out / "shard-00001.npz").write_bytes(bytes(raw))
    (out / "shard-00002.npz").write_bytes((out / "shard-00002.npz").read_bytes()[:50])  # truncated
    with pytest.raises(ShardError, match="sha256"):
        load_shards(out)
    res = sample_to_shards(sample_fn, n, out, shard_size=shard, batch=2, resume=True, fingerprint="t")
    assert res.skipped == [0] and res.generated == [1, 2]
    assert "sha256" in res.invalid[1] and "bytes" in res.invalid[2]
    assert _file_hashes(out) == good
    load_shards(out)
    # A resume with other options (fingerprint) is refused, naming the problem.
    with pytest.raises(ShardError, match="different run"):
        sample_to_shards(sample_fn, n, out, shard_size=shard, batch=2, resume=True, fingerprint="other")


def test_lazysi_generate_is_batch_invariant_in_shards(tmp_path):
    """lazysi's own sampler as the sample function: shards bit-identical for batch 1 and batch 3."""
    from lazysi.numeric.sampling.generate import generate
    from lazysi.numeric.fields.gaussian import GaussianProvider
    from lazysi.numeric.fields.schedule import NumericSchedule
    from lazysi.symbolic.families import family

    model = GaussianProvider(NumericSchedule(family("linear")), torch.zeros(2, 3, dtype=torch.float64), 0.7)

    def fn(idx: list[int]) -> torch.Tensor:
        return generate("lazy-ode", model, 2, idx, 5, (2, 3))[0]

    a = sample_to_shards(fn, 5, tmp_path / "a", shard_size=3, batch=1)
    b = sample_to_shards(fn, 5, tmp_path / "b", shard_size=3, batch=3)
    assert a.manifest["shards"] == b.manifest["shards"]
    assert _file_hashes(tmp_path / "a") == _file_hashes(tmp_path / "b")


def test_bad_sample_function_is_named(tmp_path):
    with pytest.raises(ValueError, match="first dimension must be 2"):
        sample_to_shards(lambda idx: torch.zeros(1, 3), 4, tmp_path / "a", shard_size=2, batch=2)


def _random_gaussians(d: int = 6):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    b = torch.randn(d, d, generator=g, dtype=torch.float64)
    c1, c2 = a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64), b @ b.T
    m1, m2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    return m1, c1, m2, c2


def test_frechet_distance_against_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    m1, c1, m2, c2 = _random_gaussians()
    cross = scipy_linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    ref = float(((m1 - m2) ** 2).sum() + torch.trace(c1) + torch.trace(c2)) - 2 * float(np.trace(cross))
    assert abs(frechet_distance(m1, c1, m2, c2) - ref) < 1e-9 * abs(ref)


def test_frechet_distance_against_mpmath_and_closed_forms():
    m1, c1, m2, c2 = _random_gaussians()
    # 50-digit reference: tr (C1 C2)^{1/2} = sum of square roots of the eigenvalues of C1 C2.
    import mpmath

    with mpmath.workdps(50):
        prod = mpmath.matrix(c1.tolist()) * mpmath.matrix(c2.tolist())
        eig = mpmath.eig(prod, left=False, right=False)
        cross = sum(mpmath.sqrt(mpmath.re(e)) for e in eig)
        ref = float(sum((mpmath.mpf(x) - mpmath.mpf(y)) ** 2 for x, y in zip(m1.tolist(), m2.tolist()))
                    + sum(mpmath.mpf(c1[i, i].item()) + mpmath.mpf(c2[i, i].item()) for i in range(6)) - 2 * cross)
    assert abs(frechet_distance(m1, c1, m2, c2) - ref) < 1e-9 * abs(ref)
    # Closed form for commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2.
    da, db = torch.tensor([1.0, 4.0, 0.0]), torch.tensor([9.0, 1.0, 2.0])
    fd = frechet_distance(torch.zeros(3), torch.diag(da), torch.ones(3), torch.diag(db))
    assert abs(fd - (3.0 + float(((da.sqrt() - db.sqrt()) ** 2).sum()))) < 1e-12
    assert abs(frechet_distance(m1, c1, m1, c1)) < 1e-10 * float(torch.trace(c1))
    s = sqrtm_psd(c1)
    assert torch.allclose(s @ s, c1, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="positive semi-definite"):
        sqrtm_psd(torch.diag(torch.tensor([1.0, -0.5])))


def test_feature_stats_merge_equals_single_pass():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(50, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0]) + 5
    parts = FeatureStats(3)
    for chunk in f.split(7):
        parts.update(chunk)
    mu, cov = parts.mean_cov()
    assert torch.allclose(mu, f.mean(0), rtol=0, atol=1e-12)
    assert torch.allclose(cov, torch.cov(f.T), rtol=0, atol=1e-11)
    with pytest.raises(ValueError, match="shape"):
        parts.update(torch.zeros(2, 4))


def _runnable_blocks(doc: str) -> list[str]:
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if b.startswith("# runnable example")]


def test_docs_distributed_example_runs(tmp_path, monkeypatch, capsys):
    blocks = _runnable_blocks("distributed.md")
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "docs/distributed.md", "exec"), {"__name__": "docs_example"})  # our own documentation
    assert capsys.readouterr().out.strip()


def _worker(argv: list[str]) -> None:
    out, n, shard, batch, sleep, resume = argv
    torch.set_num_threads(1)
    init_from_env("cpu")
    res = sample_to_shards(lambda idx: sample_fn(idx, float(sleep)), int(n), out, shard_size=int(shard),
                           batch=int(batch), resume=bool(int(resume)), stats=feature_fn, fingerprint="t")
    report = {"rank": res.rank, "world": res.world_size, "generated": res.generated,
              "skipped": res.skipped, "stats_count": res.stats.count}
    Path(f"{out}.rank{res.rank}.json").write_text(json.dumps(report))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _worker(sys.argv[1:])
