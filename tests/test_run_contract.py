"""One output contract for every ``lazysi sample`` run (issue 18): plain or sharded, the folder
ends with samples.npz (key ``x``), samples.png and run.json; a rerun without --resume is a
one-line usage error; Ctrl-C keeps the complete shards, says so in one line with the command that
continues, and --resume then ends with exactly the samples of an uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lazysi.cli import main

BASE = ["sample", "--model", "gaussian", "--sampler", "lazy-ode", "--steps", "2", "--n", "10", "--no-progress",
        "--threads", "1"]


@pytest.mark.parametrize("extra", [[], ["--shard-size", "4"]])
def test_every_run_writes_the_contract(tmp_path, extra):
    out = tmp_path / "run"
    assert main(BASE + extra + ["--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"samples.npz", "samples.png", "run.json", "manifest.json"} <= names
    with np.load(out / "samples.npz") as z:
        assert list(z.files) == ["x"] and z["x"].shape == (10, 8)
    rec = json.loads((out / "run.json").read_text())
    assert rec["finished"] is True and rec["nfe"] == 2 and rec["options"]["threads"] == 1


def test_rerun_without_resume_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(BASE + ["--out", str(out)]) == 0
    capsys.readouterr()
    assert main(BASE + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and err.count("\n") == 1 and "Traceback" not in err


def test_ctrl_c_keeps_complete_shards_and_resume_finishes_identically(tmp_path, capsys, monkeypatch):
    ref = tmp_path / "ref"
    assert main(BASE + ["--shard-size", "4", "--out", str(ref)]) == 0
    from lazysi.numeric.sampling import generate as gen

    real = gen.generate
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # during the second shard
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    import lazysi.cmd_sample as cmd

    out = tmp_path / "cut"
    monkeypatch.setattr("lazysi.numeric.sampling.generate.generate", interrupted)
    capsys.readouterr()
    assert main(BASE + ["--shard-size", "4", "--batch", "4", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 of 10 samples kept" in err and "--resume" in err and "Traceback" not in err
    assert not (out / "samples.npz").exists()
    monkeypatch.setattr("lazysi.numeric.sampling.generate.generate", real)
    assert main(BASE + ["--shard-size", "4", "--batch", "4", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["kept"] == [0]
    with np.load(ref / "samples.npz") as a, np.load(out / "samples.npz") as b:
        assert np.array_equal(a["x"], b["x"])
    assert cmd is not None
