"""``lazysi sample --target``: any valid target schedule, through the generated conversion (C4).

Oracles: the exact Gaussian flow map (one Euler step on the model's own lazy schedule is exact,
C13), a converged RK4 solution on the training schedule (the converted ODE has the same endpoints,
C4), and the measured order of the error as the steps double."""
from __future__ import annotations

import math

import pytest
import torch

from lazysi.cli import main
from lazysi.numeric.fields.gaussian import MixtureProvider
from lazysi.numeric.fields.schedule import NumericSchedule
from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.frames import SamplingSetup
from lazysi.numeric.sampling.generate import generate
from lazysi.numeric.sampling.registry import SAMPLERS, retarget
from lazysi.numeric.sampling.seeding import per_sample_normal
from lazysi.symbolic.families import family
from lazysi.symbolic.target import resolve_target

IDX = list(range(16))


def test_own_lazy_schedule_makes_one_euler_step_exact():
    """``gaussian`` is N(mu, s^2 I) on the linear schedule; its lazy schedule vp(s) as a --target
    makes one Euler step of the converted (centred) ODE exact. (MATH.md C15: no scalar schedule is
    lazy for the anisotropic gaussian-full, so the isotropic model is the one with a lazy target.)"""
    m = Model.load("gaussian")
    s = math.sqrt(float(m.card["cov"]))
    spec = retarget(SAMPLERS["euler"], resolve_target("vp", {"sigma": repr(s)}))
    x, nfe = generate(spec, m.provider, 1, IDX, 3, m.shape, setup=m.setup(sigma=s, gaussian=False))
    exact = m.mean + s * per_sample_normal(3, IDX, m.shape)
    assert nfe == 1 and float((x - exact).abs().max()) < 1e-12
    # control: the linear training schedule itself is not lazy (one Euler step misses)
    x_lin, _ = generate("euler", m.provider, 1, IDX, 3, m.shape)
    assert float((x_lin - exact).abs().max()) > 1e-2


def _mixture():
    sch = NumericSchedule(family("linear"))
    means = torch.tensor([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.5]], dtype=torch.float64)
    covs = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.4]], [[0.25, -0.1], [-0.1, 0.3]]], dtype=torch.float64)
    return MixtureProvider(sch, torch.tensor([0.3, 0.4, 0.3], dtype=torch.float64), means, covs)


@pytest.mark.parametrize("target, sampler, order", [
    ("alpha=cos(pi*t/2)**2,beta=sin(pi*t/2)**2", "euler", 1.0),
    ("alpha=1-t,beta=t*(2-t)", "euler", 1.0),
    ("alpha=cos(pi*t/2)**2,beta=sin(pi*t/2)**2", "heun", 2.0),
])
def test_any_target_has_the_training_endpoints_up_to_the_solver_order(target, sampler, order):
    prov = _mixture()
    ref, _ = generate("rk4", prov, 256, IDX, 11, (2,))
    spec = retarget(SAMPLERS[sampler], resolve_target(target))
    setup = SamplingSetup(mu=torch.tensor([0.0, 0.1], dtype=torch.float64))
    errs = []
    for n in (16, 32, 64):
        x, _ = generate(spec, prov, n, IDX, 11, (2,), setup=setup)
        errs.append(float((x - ref).norm() / ref.norm()))
    slope = math.log2(errs[-2] / errs[-1])
    assert errs[-1] < errs[0] and abs(slope - order) < 0.4, (errs, slope)


def test_cli_target_samples_and_invalid_targets_exit_2(tmp_path, capsys):
    base = ["sample", "--model", "gaussian", "--sampler", "euler", "--steps", "2", "--n", "4", "--no-progress"]
    assert main(base + ["--target", "alpha=cos(pi*t/2),beta=sin(pi*t/2)", "--out", str(tmp_path / "ok")]) == 0
    assert main(base + ["--target", "alpha=1-t,beta=t**2-t", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "beta" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "bad").exists()  # nothing created for a bad target
    assert main(base + ["--target", "nope-family", "--out", str(tmp_path / "x")]) == 2
    assert main(["sample", "--model", "gaussian", "--sampler", "unipc", "--steps", "2", "--n", "4", "--no-progress",
                 "--target", "vp", "--out", str(tmp_path / "p")]) == 2
    assert "own grid" in capsys.readouterr().err
