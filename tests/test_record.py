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

from lazysi.numeric.io.shards import add_shard_arguments, load_shards, run_sharded
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
    assert path.name == "record.json" and read_record(tmp_path / "out") == json.loads(json.dumps(rec))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "record.json"]  # no temporaries left


def test_fingerprint_sensitive_to_options_not_to_excluded_keys():
    a = fingerprint_options({"n": 10, "seed": 0, "resume": False}, exclude=("resume",))
    assert a == fingerprint_options({"seed": 0, "n": 10, "resume": True}, exclude=("resume",))
    assert a != fingerprint_options({"n": 10, "seed": 1, "resume": False}, exclude=("resume",))


def test_run_sharded_cli_hook(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int)
    parser.add_argument("--out")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    add_shard_arguments(parser)
    out = tmp_path / "run"

    def gen(seed):
        return lambda idx: per_sample_normal(seed, idx, (2,)).to(torch.float32)

    args = parser.parse_args(["--n", "5", "--out", str(out), "--shard-size", "2", "--seed", "3"])
    assert run_sharded(args, gen(args.seed)) == 0
    idx, samples = load_shards(out)
    assert np.array_equal(samples, per_sample_normal(3, list(range(5)), (2,)).to(torch.float32).numpy())
    rec = read_record(out)
    assert rec["options"]["n"] == 5 and rec["options"]["shard_size"] == 2 and rec["seeds"]["seed"] == 3
    assert rec["world_size"] == 1 and rec["finished"] is True and rec["options"]["batch"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert "batch" not in manifest["metadata"]["options"] and manifest["metadata"]["options"]["seed"] == 3
    # Resume with other options is refused; with the same options it keeps every shard.
    bad = parser.parse_args(["--n", "5", "--out", str(out), "--shard-size", "2", "--seed", "4", "--resume"])
    with pytest.raises(Exception, match="different run"):
        run_sharded(bad, gen(bad.seed))
    same = parser.parse_args(["--n", "5", "--out", str(out), "--shard-size", "2", "--seed", "3", "--resume", "--batch", "1"])
    assert run_sharded(same, gen(same.seed)) == 0
    assert "kept 3" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text()) == manifest  # resume (other batch) -> same manifest
    assert read_record(out)["kept"] == [0, 1, 2]
    assert os.path.exists(out / "manifest.json")
