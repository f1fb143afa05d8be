"""``lazysi sample``: files written, record contents, batch-size invariance, clear errors."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from lazysi.cli import main
from lazysi.numeric.models.zoo import WEIGHTS_DIR


def _png_size(path) -> tuple[int, int, int]:
    """(width, height, colour type) from a PNG's IHDR, checking signature and CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR" and length == 13
    body = data[16:16 + 13]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF
    w, h, depth, colour = struct.unpack(">IIBB", body[:10])
    assert depth == 8
    return w, h, colour


def _sample(tmp_path, name, *extra) -> tuple[np.ndarray, dict]:
    out = tmp_path / name
    assert main(["sample", *extra, "--out", str(out), "--no-progress"]) == 0
    x = np.load(out / "samples.npz")["x"]
    return x, json.loads((out / "run.json").read_text())


def test_mnist_gmm_files_record_and_batch_invariance(tmp_path):
    args = ["--model", "mnist-gmm", "--sampler", "lazy-ode", "--steps", "2", "--n", "12", "--seed", "3"]
    a, rec = _sample(tmp_path, "a", *args, "--batch", "5")
    b, _ = _sample(tmp_path, "b", *args, "--batch", "12")
    assert a.shape == (12, 1, 28, 28) and a.dtype == np.float32
    assert np.array_equal(a, b)  # bit-identical across batch sizes
    w, h, colour = _png_size(tmp_path / "a" / "samples.png")
    assert (colour, w, h) == (0, 4 * 114 + 2, 3 * 114 + 2)  # 4 columns x 3 rows of 28 px upscaled 4x + 2 px padding
    assert rec["nfe"] == 2 and rec["seconds"] > 0
    assert rec["options"]["sampler"] == "lazy-ode" and rec["options"]["batch"] == 5
    # default sigma: the settings file's spectrum rule (benchmarks/sigma_study.py), not the card's RMS
    assert rec["options"]["sigma"] == pytest.approx(json.loads((WEIGHTS_DIR / "mnist_gmm.lazy.json").read_text())["sigma"])
    assert rec["options"]["sigma_source"].startswith("lazy settings file")
    assert len(rec["model_card"]["sha256"]) == 64 and rec["seeds"]["seed"] == 3
    assert "torch" in rec["packages"]
    c, _ = _sample(tmp_path, "c", *args[:-1], "4", "--batch", "12")
    assert not np.array_equal(a, c)  # a different seed gives different samples


def test_gaussian_sde_scatter_and_float32(tmp_path):
    x, rec = _sample(tmp_path, "g", "--model", "gaussian", "--sampler", "lazy-sde", "--steps", "1", "--n", "50",
                     "--dtype", "float32", "--grid", "uniform")
    assert x.shape == (50, 8) and np.isfinite(x).all()
    assert _png_size(tmp_path / "g" / "samples.png") == (256, 256, 0)
    assert rec["options"]["dtype"] == "float32"


@pytest.mark.skipif(not (WEIGHTS_DIR / "mnist_flow.safetensors").is_file(), reason="mnist weights not trained yet")
def test_mnist_unet_batch_invariance(tmp_path):
    args = ["--model", "mnist", "--sampler", "lazy-ode", "--steps", "1", "--n", "6", "--seed", "0"]
    a, rec = _sample(tmp_path, "a", *args, "--batch", "2")
    b, _ = _sample(tmp_path, "b", *args, "--batch", "6")
    assert a.shape == (6, 1, 28, 28) and np.array_equal(a, b)
    assert rec["model_card"]["summary"]["prediction"] == "velocity"


@pytest.mark.parametrize("bad, message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--mu", "middle"], "--mu must be a number"),
    (["--sigma", "-1"], "--sigma must be positive"),
    (["--grid", "vp"], "--grid vp is not a grid of lazy-ode"),
])
def test_bad_options_exit_2(tmp_path, capsys, bad, message):
    steps = [] if bad[0] == "--steps" else ["--steps", "2"]
    argv = ["sample", "--model", "gaussian", "--sampler", "lazy-ode", "--n", "2", "--out", str(tmp_path / "x"),
            "--no-progress", *steps, *bad]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_model_exit_2(tmp_path, capsys):
    assert main(["sample", "--model", str(tmp_path / "none"), "--sampler", "euler", "--steps", "1",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cov_sampler_grid_default_vp_and_uniform_selectable(tmp_path):
    """The covariance-aware samplers run on their vp grid by default and on the uniform-in-t grid
    with ``--grid uniform`` (until stop 12 'uniform' was silently mapped to vp); both equal the
    library's ``generate_cov`` on that grid."""
    import torch

    from lazysi.numeric.models.model import Model
    from lazysi.numeric.sampling.generate import generate

    args = ["--model", "gaussian-full", "--sampler", "lazy-cov-pcd", "--steps", "3", "--n", "4", "--seed", "1"]
    d, rec_d = _sample(tmp_path, "d", *args)
    u, rec_u = _sample(tmp_path, "u", *args, "--grid", "uniform")
    assert rec_d["options"]["grid"] == "vp" and rec_u["options"]["grid"] == "uniform"
    model = Model.load("gaussian-full")
    for x, grid in ((d, "vp"), (u, "uniform")):
        ref, _ = generate("lazy-cov-pcd", model.provider, 3, range(4), 1, model.shape, setup=model.setup(), grid=grid)
        assert np.array_equal(x, ref.to(torch.float32).numpy())
    assert not np.array_equal(d, u)


def test_nfe_budget_runs_on_the_auto_grid_and_records_it(tmp_path, capsys):
    """``--nfe-budget N``: the steps whose NFE is N, on the auto grid (the candidate grid whose pilot
    run ends closest to the pilot teacher) built once, recorded in run.json; the samples equal the
    library's run on the recorded times."""
    import torch

    from lazysi.numeric.models.model import Model
    from lazysi.numeric.sampling.generate import generate

    x, rec = _sample(tmp_path, "b", "--model", "gaussian-full", "--sampler", "ipndm", "--nfe-budget", "5", "--n", "6")
    opts = rec["options"]
    assert rec["nfe"] == 5 and opts["grid"] == "auto" and opts["steps"] == 5 and len(opts["grid_times"]) == 6
    pilot = opts["pilot"]
    assert pilot["rows"] == 32 and set(pilot["pilot_rmse"]) == {"uniform", "dp"}
    assert pilot["pilot_rmse"][pilot["chosen"]] == min(pilot["pilot_rmse"].values())
    model = Model.load("gaussian-full")
    ref, _ = generate("ipndm", model.provider, 5, range(6), 0, model.shape, setup=model.setup(), grid="auto")
    assert np.array_equal(x, ref.to(torch.float32).numpy())
    alt, _ = generate("ipndm", model.provider, 5, range(6), 0, model.shape, setup=model.setup(),
                      grid=torch.tensor(opts["grid_times"], dtype=torch.float64))
    assert np.array_equal(x, alt.to(torch.float32).numpy())


@pytest.mark.parametrize("argv, message", [
    ([], "give one of --steps, --nfe-budget, --adaptive"),
    (["--steps", "2", "--nfe-budget", "2"], "give one of --steps, --nfe-budget, --adaptive"),
    (["--adaptive"], "--adaptive and --tol go together"),
    (["--adaptive", "--tol", "0.01"], "--adaptive needs a free error estimate, which euler has not"),
    (["--adaptive", "--tol", "-1", "--sampler2", "lazy-cov-pc"], "--tol must be positive"),
    (["--nfe-budget", "3", "--sampler2", "midpoint"], "cannot spend exactly 3 evaluations"),
    (["--nfe-budget", "3", "--sampler2", "lazy-ode"], "which lazy-ode does not take"),
    (["--nfe-budget", "3", "--grid", "uniform"], "chooses the grid; drop --grid uniform"),
])
def test_nfe_budget_errors(tmp_path, capsys, argv, message):
    sampler = "euler"
    if "--sampler2" in argv:
        i = argv.index("--sampler2")
        sampler = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    full = ["sample", "--model", "gaussian", "--sampler", sampler, "--n", "2", "--out", str(tmp_path / "x"), "--no-progress", *argv]
    assert main(full) == 2
    assert message in capsys.readouterr().err


def test_budget_and_adaptive_of_a_predictor_corrector(tmp_path):
    """lazy-cov-pc: ``--nfe-budget N`` runs on the auto grid (its candidates include vp, gauss, dp and
    ctrl), ``--adaptive --tol`` on the accepted times of the step-size control; both recorded, both
    equal to the library's run on the recorded times."""
    import torch

    from lazysi.numeric.models.model import Model
    from lazysi.numeric.sampling.generate import generate

    model = Model.load("mnist-gmm")
    for name, flags in (("b", ["--nfe-budget", "5"]), ("a", ["--adaptive", "--tol", "0.05"])):
        x, rec = _sample(tmp_path, name, "--model", "mnist-gmm", "--sampler", "lazy-cov-pc", *flags, "--n", "3")
        opts = rec["options"]
        times = torch.tensor(opts["grid_times"], dtype=torch.float64)
        assert opts["grid"] == ("auto" if name == "b" else "adaptive")
        assert rec["nfe"] == times.numel() - 1 == opts["steps"]
        if name == "b":
            assert rec["nfe"] == 5 and set(opts["pilot"]["pilot_rmse"]) == {"vp", "gauss", "dp", "ctrl"}
        else:
            assert opts["pilot"]["solver"] == "exp-pc" and opts["pilot"]["tol"] == 0.05
            assert opts["pilot"]["max_estimate"] <= 0.05 or opts["pilot"]["forced"] > 0
        ref, _ = generate("lazy-cov-pc", model.provider, opts["steps"], range(3), 0, model.shape,
                          setup=model.setup(), grid=times)
        assert np.array_equal(x, ref.to(torch.float32).numpy())
