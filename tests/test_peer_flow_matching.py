"""Peer check: our linear -> cosine (vp) conversion vs flow_matching's ScheduleTransformedModel.

flow_matching's convention is ``x_t = alpha_t X_1 + sigma_t X_0`` with t = 0 noise, t = 1 data:
their (alpha, sigma) are our (beta, alpha). CondOTScheduler is our ``linear``; CosineScheduler
(``alpha = sin(pi t/2), sigma = cos(pi t/2)``) is our ``vp`` with sigma = 1. Both sides transform
the SAME velocity field: the exact velocity of a bimodal mixture under the linear schedule.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("flow_matching")
from flow_matching.path.scheduler import CondOTScheduler, CosineScheduler, ScheduleTransformedModel  # noqa: E402

from lazysi.numeric.fields.convert import convert  # noqa: E402
from lazysi.numeric.fields.gaussian import MixtureProvider  # noqa: E402
from lazysi.numeric.fields.schedule import NumericSchedule  # noqa: E402
from lazysi.symbolic.families import family  # noqa: E402

torch.set_num_threads(1)
W, M, V = (torch.tensor(z, dtype=torch.float64) for z in ([0.3, 0.7], [[-1.0], [1.5]], [0.2, 0.5]))


class LinearVelocity(nn.Module):
    """``v(x, t)`` = the exact linear-schedule velocity ``b = -eta_Z + eta_X`` of the mixture."""

    def __init__(self):
        super().__init__()
        self.provider = MixtureProvider(NumericSchedule(family("linear")), W, M, V)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.provider.velocity(t.reshape(-1), x)


def _theirs_and_ours(r: torch.Tensor, x: torch.Tensor):
    model = LinearVelocity()
    theirs = ScheduleTransformedModel(velocity_model=model, original_scheduler=CondOTScheduler(), new_scheduler=CosineScheduler())
    ours = convert(model.provider, family("vp"))
    with torch.no_grad():
        return theirs(x=x, t=r.reshape(-1, 1)), ours.velocity(r, x)


def test_agrees_with_flow_matching_where_theirs_is_accurate():
    """Theirs stays finite up to r = 1 in float64, but loses accuracy like ~1e-16/(1-r)^2 (measured:
    3e-7 at 1-1e-5, 3e-5 at 1-1e-6, 67 at 1-1e-9, 4e16 at r = 1); we compare on r <= 1 - 1e-5."""
    g = torch.Generator().manual_seed(0)
    r = torch.cat([torch.tensor([0.0, 1e-8, 1 - 1e-5], dtype=torch.float64), torch.rand(200, generator=g, dtype=torch.float64) * (1 - 1e-5)])
    x = 2 * torch.randn(r.numel(), 1, generator=g, dtype=torch.float64)
    theirs, ours = _theirs_and_ours(r, x)
    assert torch.isfinite(theirs).all() and torch.isfinite(ours).all()
    assert torch.allclose(theirs, ours, rtol=1e-6, atol=1e-6), (theirs - ours).abs().max()


def test_ours_is_right_at_the_data_end_where_theirs_is_not():
    r = torch.tensor([1.0, 1 - 1e-9], dtype=torch.float64)
    x = torch.tensor([[0.4], [0.4]], dtype=torch.float64)
    theirs, ours = _theirs_and_ours(r, x)
    exact = MixtureProvider(NumericSchedule(family("vp")), W, M, V).velocity(r, x)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, exact, rtol=1e-10, atol=1e-12)
    # theirs: 0/0-type cancellation in s_r = sigma_r / sigma_t and dt_r near r = 1
    bad = ~torch.isfinite(theirs) | ((theirs - exact).abs() > 1.0)
    assert bad.all(), theirs
