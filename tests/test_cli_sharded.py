"""`lazysi sample` sharded: 1 process vs `torchrun --nproc_per_node 2 -m lazysi sample` (gloo)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from lazysi.cli import main

ARGS = ["sample", "--model", "gaussian", "--sampler", "lazy-sde", "--steps", "2", "--num-samples", "10",
        "--shard-size", "4", "--no-progress", "--threads", "1"]  # equal intra-op threads: bit-identity is promised


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                    reason="torchrun not on PATH")
def test_one_vs_two_processes_bit_identical(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(ARGS + ["--batch", "3", "--out", str(one)]) == 0
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "lazysi", *ARGS,
                           "--batch", "2", "--out", str(two)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shards = sorted(p.name for p in one.glob("shard-*.npz"))
    assert shards == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert shards == sorted(p.name for p in two.glob("shard-*.npz"))
    for name in shards + ["manifest.json"]:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    # resume in the 2-process folder with another batch size regenerates nothing
    assert main(ARGS + ["--batch", "5", "--out", str(two), "--resume"]) == 0
    for name in shards:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_sharded_covariance_aware_sampler_matches_unsharded(tmp_path):
    """lazy-cov-pc through the sharded path gives the samples of the plain path (same
    per-sample noise, same solver), shard by shard."""
    import numpy as np

    common = ["sample", "--model", "mnist-gmm", "--sampler", "lazy-cov-pc", "--steps", "3", "--no-progress"]
    assert main(common + ["--n", "6", "--batch", "6", "--out", str(tmp_path / "plain")]) == 0
    assert main(common + ["--num-samples", "6", "--shard-size", "4", "--batch", "3", "--out", str(tmp_path / "sharded")]) == 0
    plain = np.load(tmp_path / "plain" / "samples.npz")["x"]
    parts = [np.load(tmp_path / "sharded" / f"shard-0000{i}.npz") for i in range(2)]
    assert [p["indices"].tolist() for p in parts] == [[0, 1, 2, 3], [4, 5]]
    assert np.array_equal(np.concatenate([p["samples"] for p in parts]), plain)
