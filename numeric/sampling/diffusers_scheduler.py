"""A diffusers drop-in scheduler that samples flow-matching pipelines under the lazy VP schedule.

diffusers' flow-matching convention (SD3, FLUX; an adapter convention, see MATH.md): latents
``x_sigma = (1 - sigma) X + sigma Z`` with ``sigma = 1`` pure noise, the transformer receives
``timestep = num_train_timesteps * sigma`` and predicts ``v = Z - X``. In lazysi's convention this
is the linear source schedule A (``alpha = 1 - t, beta = t``, t = 0 noise, t = 1 data) at
``t = 1 - sigma``, with velocity ``b_A = -v``.

The sampling schedule B is the deterministic lazy (variance-preserving) schedule of MATH.md C9
with data scale ``data_sigma``: ``alpha_B = cos(pi s/2)``, ``beta_B = sin(pi s/2)/data_sigma``,
time ``s`` from 0 (noise) to 1 (data). The conversion A -> B (C4: ``tau(s)``, ``c(s)``,
``tau'(s)``, ``c'(s)/c(s)``) is derived symbolically by :mod:`lazysi.symbolic.conversion` and
generated as torch code by :mod:`lazysi.numeric.fields.convert`; nothing is typed here.

Where the state lives: **the pipeline's latents stay in the source (diffusers) coordinates**
``x_A`` at source time ``tau(s_k)``, because the pipeline passes them straight to the transformer
with ``timesteps[k] = num_train_timesteps * (1 - tau(s_k))``. Each :meth:`step` converts to the
lazy frame ``x_B = c(s_k) x_A``, makes one explicit Euler step of the lazy ODE

    x_B <- x_B + h * b_B(s_k, x_B),   b_B(s, x) = (c'/c) x + c tau' b_A(tau, x / c),   h = s_{k+1} - s_k,

and converts back, ``x_A <- x_B / c(s_{k+1})``. The two scalar coefficients of this affine map
(``prev = a_k sample + g_k model_output``) are computed once per grid in float64 by
:meth:`set_timesteps`. The step is a pure function of ``(model_output, timestep, sample)``: the
step index is looked up from ``timestep`` (no hidden counter). The grid is uniform in ``s``:
``s_k = k / N``, k = 0..N. At ``s = 0``: ``tau = 0``, ``c = 1`` (the latents are the initial noise,
``init_noise_sigma = 1``). The last step ends at ``s = 1``, where ``tau = 1`` and
``c = 1 / data_sigma`` (finite, non-zero), so the final latents are the data-coordinate sample
``x_A(1) = data_sigma * x_B(1)``; the network is only evaluated at ``s_k < 1``, every coefficient
is finite.

Shift handling (no double shift): ``shift``, ``use_dynamic_shifting``, ``base_shift``,
``max_shift``... of the pipeline's FlowMatch config are *not* parameters of this scheduler:
``from_config`` logs them as unused and reaches no parameter with them (diffusers still carries
them in ``scheduler.config`` for round trips, so SD3's pipeline may compute a ``mu`` from
``use_dynamic_shifting``; it is ignored, below). A shift is a warp of the source
schedule's time grid; the lazy schedule fixes its own time parametrisation, so applying it on top
would be a second warp. A ``mu`` passed by a pipeline (FLUX's dynamic shifting) is accepted and
ignored for the same reason; custom ``sigmas`` (FLUX passes a default linspace) only set the
number of steps, ``len(sigmas)``, and are otherwise ignored with a warning; custom ``timesteps``
are not supported (diffusers' ``retrieve_timesteps`` then raises its clear error).

Not supported: image-to-image (``scale_noise``), stochastic sampling, centring by a data mean
(MATH.md C14; diffusers' VAEs already centre latents with ``shift_factor``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import torch

try:
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.schedulers.scheduling_utils import SchedulerMixin
    from diffusers.utils import BaseOutput
except ModuleNotFoundError as exc:  # diffusers is an optional extra
    raise ModuleNotFoundError(
        "lazysi.numeric.sampling.diffusers_scheduler needs diffusers: pip install 'lazysi[diffusers]' (or 'diffusers>=0.30')"
    ) from exc

__all__ = ["LazyFlowMatchScheduler", "LazyFlowMatchSchedulerOutput", "lazy_conversion"]

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def lazy_conversion(data_sigma: float):
    """The generated conversion linear -> lazy VP(data_sigma) (:class:`NumericConversion`)."""
    from lazysi.numeric.fields.convert import NumericConversion
    from lazysi.symbolic.families import family

    return NumericConversion(family("linear"), family("vp", sigma=data_sigma))


@dataclass
class LazyFlowMatchSchedulerOutput(BaseOutput):
    """``prev_sample``: the latents at the next grid time, in the pipeline's (source) coordinates."""

    prev_sample: torch.Tensor


class LazyFlowMatchScheduler(SchedulerMixin, ConfigMixin):
    """Euler in the lazy VP frame for flow-matching (``v = noise - data``) transformers.

    Create it from a pipeline's scheduler config:
    ``pipe.scheduler = LazyFlowMatchScheduler.from_config(pipe.scheduler.config, data_sigma=0.9)``.

    Args:
        num_train_timesteps: ``timestep = num_train_timesteps * sigma`` (1000 for SD3/FLUX).
        data_sigma: RMS of the (centred) latents the model was trained on; the lazy schedule is
            ``alpha = cos(pi s/2)``, ``beta = sin(pi s/2)/data_sigma``.
    """

    config_name = "scheduler_config.json"
    _compatibles: list[str] = []
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, data_sigma: float = 1.0):
        if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, int) or num_train_timesteps <= 0:
            raise ValueError(f"num_train_timesteps must be a positive integer, got {num_train_timesteps!r}")
        if isinstance(data_sigma, bool) or not isinstance(data_sigma, (int, float)) or not math.isfinite(data_sigma) or data_sigma <= 0:
            raise ValueError(f"data_sigma must be a positive finite number, got {data_sigma!r}")
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps: torch.Tensor | None = None
        self.sigmas: torch.Tensor | None = None
        self.s_grid: torch.Tensor | None = None
        self.tau: torch.Tensor | None = None
        self._coef_sample: torch.Tensor | None = None
        self._coef_output: torch.Tensor | None = None
        self._begin_index: int | None = None

    # ---------------------------------------------------------------- grid
    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
        mu: float | None = None,
    ) -> None:
        """Build the uniform lazy grid ``s_k = k/N`` and the pipeline's ``timesteps``.

        ``timesteps[k] = num_train_timesteps * (1 - tau(s_k))``, k = 0..N-1 (strictly
        decreasing, starting at ``num_train_timesteps``); ``sigmas[k] = 1 - tau(s_k)``,
        k = 0..N (ending at 0). ``mu`` is ignored (see the module docstring); ``sigmas`` only
        gives N when ``num_inference_steps`` is None."""
        if sigmas is not None:
            logger.warning("LazyFlowMatchScheduler: custom sigmas are ignored (the lazy grid is uniform in s); "
                           "only their number, %d, is used as the number of steps", len(sigmas))
            if num_inference_steps is None:
                num_inference_steps = len(sigmas)
        del mu  # dynamic shifting is a source-time warp; see the module docstring
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {n!r}")
        conv = lazy_conversion(float(self.config.data_sigma))
        s = torch.arange(n + 1, dtype=torch.float64) / n
        tau, c = conv.tau(s), conv.c(s)
        tau_dot, cdoc = conv.tau_dot(s), conv.c_dot_over_c(s)
        h = s[1:] - s[:-1]
        # x_B = c0 x_A; x_B += h ((c'/c)(s0) x_B + c0 tau'(s0) b_A), b_A = -v; x_A = x_B / c1.
        coef_sample = c[:-1] * (1.0 + h * cdoc[:-1]) / c[1:]
        coef_output = -h * c[:-1] * tau_dot[:-1] / c[1:]
        for name, value in (("tau", tau), ("c", c), ("tau'", tau_dot), ("c'/c", cdoc[:-1]), ("step coefficients", coef_sample), ("step coefficients", coef_output)):
            if not torch.isfinite(value).all():
                raise FloatingPointError(f"non-finite {name} on the lazy grid with {n} steps (data_sigma={self.config.data_sigma})")
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.num_inference_steps = n
        self.s_grid = s
        self.tau = tau
        self.sigmas = (1.0 - tau).to(device=device, dtype=dtype)
        self.timesteps = (self.config.num_train_timesteps * (1.0 - tau[:-1])).to(device=device, dtype=dtype)
        self._coef_sample, self._coef_output = coef_sample, coef_output
        self._begin_index = None

    # ---------------------------------------------------------------- diffusers contract
    @property
    def step_index(self) -> None:
        """Always None: :meth:`step` finds the index from ``timestep`` (no hidden counter)."""
        return None

    @property
    def begin_index(self) -> int | None:
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Recorded for pipelines that call it; the step index always comes from ``timestep``."""
        self._begin_index = begin_index

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """Identity: the transformer takes the source-coordinate latents as they are."""
        return sample

    def index_for_timestep(self, timestep: float | torch.Tensor) -> int:
        """The grid index k with ``timesteps[k] == timestep`` (to float32 rounding)."""
        if self.timesteps is None:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step()")
        tv = torch.as_tensor(timestep, dtype=torch.float64).reshape(-1)
        if tv.numel() != 1 and not bool((tv == tv[0]).all()):
            raise ValueError("per-sample timesteps are not supported: all entries of timestep must be equal")
        value = float(tv[0])
        ts = self.timesteps.detach().to("cpu", torch.float64)
        k = int(torch.argmin((ts - value).abs()))
        if abs(float(ts[k]) - value) > 1e-6 * self.config.num_train_timesteps:
            raise ValueError(f"timestep {value} is not on this scheduler's grid (nearest {float(ts[k])} at index {k}); "
                             "pass the values of scheduler.timesteps")
        return k

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> LazyFlowMatchSchedulerOutput | tuple[torch.Tensor]:
        """One Euler step of the lazy ODE from grid time ``s_k`` (found from ``timestep``) to
        ``s_{k+1}``: ``prev = a_k sample + g_k model_output`` with ``a_k = c_k (1 + h (c'/c)_k) / c_{k+1}``,
        ``g_k = -h c_k tau'_k / c_{k+1}`` (``model_output`` is diffusers' ``v = noise - data``).
        Computed in float64 for float64 samples, else float32, and returned in ``sample``'s dtype.
        ``generator`` is accepted for signature compatibility and unused (the step is deterministic)."""
        del generator
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output shape {tuple(model_output.shape)} differs from sample shape {tuple(sample.shape)}")
        k = self.index_for_timestep(timestep)
        work = torch.float64 if sample.dtype == torch.float64 else torch.float32
        a = self._coef_sample[k].item()
        g = self._coef_output[k].item()
        prev = a * sample.to(work) + g * model_output.to(work)
        if not torch.isfinite(prev).all():
            raise FloatingPointError(f"non-finite latents after step {k} (s = {float(self.s_grid[k]):.6g} -> {float(self.s_grid[k + 1]):.6g})")
        prev = prev.to(sample.dtype)
        if not return_dict:
            return (prev,)
        return LazyFlowMatchSchedulerOutput(prev_sample=prev)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
