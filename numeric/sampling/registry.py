"""The sampler registry: one table of every sampler, ours and the peers.

Each :class:`SamplerSpec` states the sampler's frame (:mod:`~lazysi.numeric.sampling.frames`), its
method (a step solver of :mod:`~lazysi.numeric.sampling.solvers` or a peer of
:mod:`~lazysi.numeric.sampling.peers`), its kind (ODE or SDE), its evaluations as a function of
the steps, its default grid and the optional package it needs. Every consumer (``lazysi sample``,
``lazysi bench``, the sharded path, the benchmark scripts, the docs' sampler table) reads this table;
no code outside it branches on a sampler's name. A name ``NAME@GRID`` (e.g.
``lazy-cov-pcd@uniform``) is the sampler ``NAME`` on another of its frame's grids
(:func:`resolve`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from lazysi.symbolic.schedule import Schedule

from lazysi.numeric.sampling.frames import FRAMES, Frame, target_frame
from lazysi.numeric.sampling.methods import Method, StepMethod
from lazysi.numeric.sampling.peers import PEERS

__all__ = ["SamplerSpec", "SAMPLERS", "REFERENCE_STEPS", "register", "resolve", "base_spec", "retarget", "sampler_table"]

#: the ``reference`` sampler runs RK4 with at least this many uniform steps
REFERENCE_STEPS = 256


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler. ``grid``: the default grid (None: the method's own grid); ``min_steps``: the run
    uses ``max(steps, min_steps)`` steps (the reference); ``fixed_grid``: no other grid accepted;
    ``origin``: ``paper`` (the lazy samplers of the paper), ``lazysi`` (ours beyond it),
    ``baseline`` or ``peer``."""

    name: str
    frame: Frame
    method: Method
    grid: str | None
    description: str
    origin: str
    min_steps: int = 1
    fixed_grid: bool = False

    @property
    def kind(self) -> str:
        """``"ode"`` or ``"sde"``."""
        return self.method.kind

    @property
    def package(self) -> str | None:
        """The optional package this sampler needs (None: the plain install suffices)."""
        return getattr(self.method, "package", None)

    @property
    def extra(self) -> str | None:
        return getattr(self.method, "extra", None) if self.package else None

    @property
    def grids(self) -> tuple[str, ...]:
        """The grid names this sampler accepts (empty: its method's own grid only; a method with its
        own grid that also runs on explicit times accepts the frame's pilot grids)."""
        if self.grid is None:
            return self.frame.pilot_grids if getattr(self.method, "explicit_grid", False) else ()
        if self.fixed_grid:
            return (self.grid,)
        return (*self.frame.grids, *(("ctrl",) if self.controllable else ()))

    @property
    def controllable(self) -> bool:
        """Whether the sampler has a free error estimate for step-size control (``--adaptive``, the
        ``ctrl`` grid): a predictor-corrector of a frame with pilot grids that starts at the noise."""
        solver = getattr(self.method, "solver", None)
        return (solver is not None and solver.estimate is not None and bool(self.frame.pilot_grids)
                and self.frame.start == "noise")

    def run_steps(self, steps: int) -> int:
        """The number of steps actually run for ``steps`` requested."""
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        return max(steps, self.min_steps)

    @property
    def adaptive(self) -> bool:
        """Error-controlled: the NFE is counted per run, not a function of the steps."""
        return bool(getattr(self.method, "adaptive", False))

    def nfe(self, steps: int) -> int | None:
        """Model evaluations per sample for ``steps`` requested (None: adaptive)."""
        return None if self.adaptive else self.method.evals(self.run_steps(steps))

    def steps_for(self, nfe: int) -> int | None:
        """The step count whose NFE is exactly ``nfe`` (None if there is none, or adaptive)."""
        if self.adaptive:
            return None
        for steps in range(1, nfe + 1):
            if self.nfe(steps) == nfe:
                return steps
        return None


SAMPLERS: dict[str, SamplerSpec] = {}


def register(spec: SamplerSpec) -> SamplerSpec:
    """Add a sampler to the registry (names are unique)."""
    if spec.name in SAMPLERS or "@" in spec.name:
        raise ValueError(f"sampler name {spec.name!r} is taken or contains '@'")
    SAMPLERS[spec.name] = spec
    return spec


def resolve(name: str | SamplerSpec) -> SamplerSpec:
    """A spec from a registered name or ``NAME@GRID``; unknown names, grids the sampler does not
    know, and a grid on a sampler with its own grid raise ``ValueError``."""
    if isinstance(name, SamplerSpec):
        return name
    base, at, grid = name.partition("@")
    if base not in SAMPLERS:
        raise ValueError(f"unknown sampler {base!r}; known: {', '.join(SAMPLERS)}")
    spec = SAMPLERS[base]
    if not at:
        return spec
    if not grid:
        raise ValueError(f"sampler {name!r}: empty grid after '@'")
    if spec.grid is None and grid not in spec.grids:
        also = f" or the pilot grids ({', '.join(spec.grids)})" if spec.grids else ""
        raise ValueError(f"sampler {name!r}: {base} runs on its own grid{also}; '@{grid}' is not one")
    if grid not in spec.grids:
        raise ValueError(f"sampler {name!r}: unknown grid {grid!r} for {base}; known: {', '.join(spec.grids)}")
    return replace(spec, name=name, grid=grid)


def base_spec(spec: SamplerSpec) -> SamplerSpec:
    """The registered sampler behind ``NAME@GRID`` (with its default grid); ``spec`` itself when it
    is not a registered name's variant."""
    return SAMPLERS.get(spec.name.partition("@")[0], spec)


def retarget(spec: SamplerSpec, target: Schedule) -> SamplerSpec:
    """``spec`` with its frame moved to the schedule ``target`` (``lazysi sample --target``): the same
    method on the model converted to ``target`` (C4/C5; an SDE sampler keeps ``eps = nu eps*``, whose
    ratio the conversion preserves, C6). Samplers with their own grid (the peers) cannot move."""
    if spec.grid is None or spec.fixed_grid:
        raise ValueError(f"{spec.name} cannot run on another schedule (it runs on its own grid)")
    frame = target_frame(spec.frame, target)
    grid = spec.grid if spec.grid in frame.grids else "uniform"
    return replace(spec, name=f"{spec.name}@target", frame=frame, grid=grid)


def sampler_table(specs: Mapping[str, SamplerSpec] | None = None) -> str:
    """The Markdown table of the registry (docs/samplers.md is this text; a test checks it)."""
    rows = ["| sampler | kind | frame | method | NFE (n steps) | default grid | needs | origin | what it does |",
            "|---|---|---|---|---|---|---|---|---|"]
    for spec in (specs or SAMPLERS).values():
        nfe = "adaptive (counted)" if spec.adaptive else ", ".join(f"{spec.nfe(n)}" for n in (1, 2, 4, 8)) + " (n = 1, 2, 4, 8)"
        extra = f"`lazysi[{spec.extra}]` ({spec.package})" if spec.package else "-"
        rows.append(f"| `{spec.name}` | {spec.kind.upper()} | {spec.frame.name} | {spec.method.name} | {nfe} "
                    f"| {spec.grid or 'own'} | {extra} | {spec.origin} | {spec.description} |")
    return "\n".join(rows) + "\n"


def _m(name: str) -> StepMethod:
    return StepMethod.of(name)


_T, _VP, _PM, _G, _GPM = FRAMES["train"], FRAMES["lazy-vp"], FRAMES["lazy-pm"], FRAMES["gaussian"], FRAMES["gaussian-pm"]
for _spec in (
    SamplerSpec("lazy-ode", _VP, _m("euler"), "uniform", "Euler on the lazy VP ODE (centred, scale sigma)", "paper"),
    SamplerSpec("lazy-heun", _VP, _m("heun-edm"), "uniform", "Heun (EDM: Euler last step) on the lazy VP ODE (centred, scale sigma)", "lazysi"),
    SamplerSpec("lazy-ab2", _VP, _m("ab2"), "uniform", "Adams-Bashforth 2 (variable step) on the lazy VP ODE", "lazysi"),
    SamplerSpec("lazy-sde", _PM, _m("em"), "uniform", "Euler-Maruyama on the point-mass eps*-SDE (start at the point)", "paper"),
    SamplerSpec("lazy-cov", _G, _m("exp-euler"), "vp", "exponential Euler in the eigenbasis of a Gaussian approximation (exact Gaussian flow)", "lazysi"),
    SamplerSpec("lazy-cov2", _G, _m("exp-ab2"), "vp", "2-step exponential Adams-Bashforth in the eigenbasis of a Gaussian approximation", "lazysi"),
    SamplerSpec("lazy-cov-pc", _G, _m("exp-pc"), "vp", "exponential AB2 predictor + 3-point exponential corrector (UniPC-style, same NFE) "
                "in the eigenbasis of a Gaussian approximation; first-order last step below 15 steps", "lazysi"),
    SamplerSpec("lazy-cov-pcd", _G, _m("exp-pc-denoise"), "vp", "lazy-cov-pc whose last step returns the data prediction eta_X (denoised, no extra NFE)", "lazysi"),
    SamplerSpec("lazy-cov3", _G, _m("exp-ab3"), "vp", "3-step exponential Adams-Bashforth (residual quadratic through the last three "
                "evaluations) in the eigenbasis of a Gaussian approximation; warm start through every evaluation so far from "
                "the run's start; last step per sample at the order that best predicted the latest evaluation (back-test, no extra NFE)", "lazysi"),
    SamplerSpec("lazy-cov-pc4", _G, _m("exp-pc4"), "vp", "exponential AB3 predictor + 4-point (cubic) exponential corrector "
                "(UniPC-style, one evaluation per step) in the eigenbasis of a Gaussian approximation; warm start from the "
                "run's start; last step the predictor, per sample at the order that best predicted the latest evaluation "
                "(back-test, no extra NFE)", "lazysi"),
    SamplerSpec("lazy-cov-pc4d", _G, _m("exp-pc4-denoise"), "vp", "lazy-cov-pc4 whose last step returns the data prediction "
                "eta_X (denoised, no extra NFE)", "lazysi"),
    SamplerSpec("lazy-cov-sde", _GPM, _m("exp-sde1"), "uniform", "point-mass eps*-SDE (eps = nu eps*) with its Gaussian part "
                "exact per eigendirection, noise included; residual frozen over the step", "lazysi"),
    SamplerSpec("lazy-cov-sde2", _GPM, _m("exp-sde2"), "uniform", "lazy-cov-sde with the residual linear through the last two "
                "evaluations (stochastic Adams, one evaluation per step)", "lazysi"),
    SamplerSpec("lazy-cov-sde2d", _GPM, _m("exp-sde2-denoise"), "uniform", "lazy-cov-sde2 whose last step returns the model's "
                "data prediction eta_X (no noise into the final step; no extra evaluation)", "lazysi"),
    SamplerSpec("lazy-cov-sde3", _GPM, _m("exp-sde3"), "uniform", "lazy-cov-sde with the residual quadratic through the last three "
                "evaluations (stochastic Adams, one evaluation per step)", "lazysi"),
    SamplerSpec("euler", _T, _m("euler"), "uniform", "Euler on the training schedule's ODE", "baseline"),
    SamplerSpec("heun", _T, _m("heun-edm"), "uniform", "Heun (EDM: Euler last step) on the training schedule's ODE", "baseline"),
    SamplerSpec("midpoint", _T, _m("midpoint"), "uniform", "midpoint on the training schedule's ODE", "baseline"),
    SamplerSpec("rk4", _T, _m("rk4"), "uniform", "RK4 on the training schedule's ODE", "baseline"),
    SamplerSpec("em", _T, _m("em"), "uniform", "Euler-Maruyama with eps* on the training schedule (first step on the ODE: eps* is infinite at t = 0)", "baseline"),
    SamplerSpec("reference", _T, _m("rk4"), "uniform", f"RK4, max(steps, {REFERENCE_STEPS}) uniform steps", "baseline",
                min_steps=REFERENCE_STEPS, fixed_grid=True),
    *(SamplerSpec(p.name, _T, p, None if p.own_grid else "uniform", p.settings, "peer") for p in PEERS.values()),
):
    register(_spec)


if __name__ == "__main__":  # python -m lazysi.numeric.sampling.registry > docs/samplers.md
    print("# Samplers\n\nGenerated from the sampler registry (`lazysi.SAMPLERS`, "
          "`lazysi/numeric/sampling/registry.py`); a test checks that this table is the registry's.\n"
          "`NAME@GRID` runs a sampler on another grid of its frame. Origins: `paper` — the paper's lazy samplers; "
          "`lazysi` — ours beyond the paper (the covariance-aware frame); `baseline` — standard solvers on the "
          "training schedule; `peer` — other packages' samplers on the same model.\n\n"
          "Grids built from a pilot run of the model (32 samples of the noise stream `pilot`, which no run draws; "
          "`numeric/sampling/pilot.py`), for the samplers in the training schedule's time — ours in the `gaussian` "
          "frame, the baselines and the peers alike (diffusers' schedulers take the times as sigmas): `dp` — the "
          "steps that minimise the frame's first-order one-step error along RK4 teacher trajectories, by dynamic "
          "programming (GITS); `ctrl` — the predictor-correctors' (`lazy-cov-pc*`) step-size control at the "
          "tolerance that gives the asked number of steps; `auto` — of the sampler's grids (its default, `vp`, "
          "`gauss`, `dp`, `ctrl`) the one whose pilot run ends closest to the teacher. `lazysi sample --nfe-budget N` "
          "runs on `auto`; `--adaptive --tol TOL` on the accepted times of the step-size control.\n")
    print(sampler_table())
