"""Reproducibility records: content, atomic writing, and the sharded-run CLI hook writing one."""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from lazysi.numeric.io.runs import run_to_folder
from lazysi.numeric.io.shards import load_shards
from lazysi.numeric.io.record import fingerprint_options, read_record, run_record, write_record
from lazysi.numeric.sampling.seeding import per_sample_normal


def test_record_contents(tmp_path):
    card = tmp_path / "card.json"
    card.write_text('{"name": "toy"}')
    opts = {"n": 10, "out": tmp_path / "o", "steps": 4, "dtype": torch.float64, "grid": (0.0, 1.0)}
    rec = run_record(opts, model_card_path=card, seeds={"seed": 7})
    assert rec["model_card"]["sha256"] == hashlib.sha256(card.read_bytes()).hexdigest()
    assert rec["options"] == {"n": 10, "out": str(tmp_path / "o"), "steps": 4, "dtype": "torch.float64", "grid": [0.0, 1.0]}
    assert rec["seeds"] == {"seed": 7}
    assert rec["packages"]["torch"] == importlib.metadata.version("torch")
    assert rec["packages"]["sympy"] == importlib.metadata.version("sympy")
    assert rec["packages"]["numpy"] == np.__version__
    assert rec["torch"]["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()
    assert rec["torch"]["num_threads"] == torch.get_num_threads()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    if head.returncode == 0:
        assert rec["git"]["commit"] == head.stdout.strip()
    json.dumps(rec)  # JSON-serialisable
    with pytest.raises(FileNotFoundError, match="model card"):
        run_record(opts, model_card_path=tmp_path / "missing.json")
    with pytest.raises(TypeError, match="mapping"):
        run_record([("n", 1)])  # type: ignore[arg-type]


def test_write_record_atomic_roundtrip(tmp_path):
    rec = run_record({"n": 3}, seeds=1)
    path = write_record(tmp_path / "out", rec)
    assert path.name == "run.json" and read_record(tmp_path / "out") == json.loads(json.dumps(rec))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "run.json"]  # no temporaries left


def test_fingerprint_sensitive_to_options_not_to_excluded_keys():
    a = fingerprint_options({"n": 10, "seed": 0, "resume": False}, exclude=("resume",))
    assert a == fingerprint_options({"seed": 0, "n": 10, "resume": True}, exclude=("resume",))
    assert a != fingerprint_options({"n": 10, "seed": 1, "resume": False}, exclude=("resume",))


def test_run_to_folder_record_manifest_and_resume(tmp_path):
    """Every sample run ends with samples.npz (key x), samples.png and run.json; the manifest's
    identity leaves out the batch size; a resume with other options is refused, one with another
    batch size keeps every shard."""
    out = tmp_path / "run"

    def gen(seed):
        return lambda idx: (per_sample_normal(seed, idx, (2,)).to(torch.float32), 1)

    def options(seed, batch):
        return {"n": 5, "seed": seed, "batch": batch, "out": str(out)}

    res = run_to_folder(gen(3), 5, out, batch=2, seed=3, options=options(3, 2), shard_size=2)
    idx, samples = load_shards(out)
    expected = per_sample_normal(3, list(range(5)), (2,)).to(torch.float32).numpy()
    assert np.array_equal(samples, expected) and np.array_equal(np.load(out / "samples.npz")["x"], expected)
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = read_record(out)
    assert rec == res.record
    assert rec["options"]["n"] == 5 and rec["options"]["shard_size"] == 2 and rec["seeds"]["seed"] == 3
    assert rec["world_size"] == 1 and rec["finished"] is True and rec["options"]["batch"] == 2 and rec["nfe"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert "batch" not in manifest["metadata"]["options"] and manifest["metadata"]["options"]["seed"] == 3
    # Resume with other options is refused; with the same options it keeps every shard.
    with pytest.raises(Exception, match="different run"):
        run_to_folder(gen(4), 5, out, batch=2, seed=4, options=options(4, 2), shard_size=2, resume=True)
    run_to_folder(gen(3), 5, out, batch=1, seed=3, options=options(3, 1), shard_size=2, resume=True)
    assert json.loads((out / "manifest.json").read_text()) == manifest  # resume (other batch) -> same manifest
    assert read_record(out)["kept"] == [0, 1, 2]
    assert os.path.exists(out / "manifest.json")
    mode = (out / "samples.npz").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # normal permissions, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
