"""Emitted modules: a user's schedule (or conversion) as one checkable torch module.

``lazysi derive ... --emit-torch FILE`` and ``lazysi convert ... --emit-torch FILE`` write what
:func:`render_emitted` returns. Convention: ``I_t = alpha Z + beta X``, t = 0 base, t = 1 data;
a conversion maps the source schedule A (time t) to the target B (time s).

A schedule module holds

* the schedule kernels (``alpha, beta, alpha_dot, ..., eps_star, ...``: functions of ``t``);
* the Gaussian-data field coefficients per eigen-direction of variance ``d`` (C7:
  ``gain_x, gain_z, inv_var, var_ratio, velocity_gain``: functions of ``(t, *, d)``);
* the fields and drift for ``X ~ N(mean, cov)`` given as arguments: ``gaussian_fields``,
  ``gaussian_score``, ``gaussian_velocity`` and ``gaussian_drift(t, x, mean, cov, eps)`` =
  ``b + eps s`` (assembled in the eigenbasis of ``cov`` from the coefficients above).

A conversion module holds the source schedule's kernels and Gaussian coefficients, the conversion
maps in ``s`` (``tau, tau_dot, c, c_dot_over_c, eps_scale``, C4-C6) and the target diffusion
``eps_target(s)``, and the converted drift ``converted_drift(s, x, velocity_A, score_A)`` =
``(c'/c) x + c tau' b_A(tau, x/c) + eps_B score_A(tau, x/c) / c`` for any model under A
(``gaussian_converted_drift`` for Gaussian data).

The header records the source expressions, the parameters, the generator version and a hash,
and one ``# lazysi-spec: {...}`` JSON line from which :func:`regenerate` rebuilds the module
(the JSON is read with :mod:`json`, the expressions with :mod:`lazysi.symbolic.expr`, never
``eval``); :mod:`lazysi.proofs.module_check` compares the bytes and checks every function
against mpmath (``lazysi verify --module FILE``). The module is generated from the spec *as
read back*, so regenerating it is exact by construction.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import sympy as sp

from .codegen import module_digest, module_preamble, render_functions
from .expr import ExpressionError, param_symbol, parse_expression
from .fields import D, field_kernels, render_field_functions, velocity_gain
from .schedule import Param, Schedule, t

__all__ = [
    "SPEC_PREFIX",
    "CHECK_NOTE",
    "EmitError",
    "ScheduleSpec",
    "EmitSpec",
    "EmittedModule",
    "render_emitted",
    "read_spec",
    "regenerate",
    "schedule_spec",
    "conversion_spec",
    "FIELD_FUNCTIONS",
    "MAP_FUNCTIONS",
    "GLUE_FUNCTIONS",
]

SPEC_PREFIX = "# lazysi-spec: "
CHECK_NOTE = (
    "Check with `lazysi verify --module THIS_FILE`: it regenerates the file from the lazysi-spec line, "
    "compares it byte for byte and checks every function against mpmath (>= 30 digits)."
)
GENERATOR = "lazysi.symbolic.emit via lazysi.symbolic.codegen"
_NAME = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
FIELD_FUNCTIONS = ("gain_x", "gain_z", "inv_var", "var_ratio", "velocity_gain")
MAP_FUNCTIONS = ("tau", "tau_dot", "c", "c_dot_over_c", "eps_scale", "eps_target")


class EmitError(ValueError):
    """A module cannot be emitted or read back (names the reason: the spec line, a key, a value)."""


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise EmitError(f"{what} must be a non-empty string (at most 2000 characters)")
    return value


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule as strings: ``alpha(t)``, ``beta(t)``, parameter values and the data scale
    (sympy ``sstr`` forms, read back with :func:`~lazysi.symbolic.expr.parse_expression`)."""

    name: str
    alpha: str
    beta: str
    params: tuple[tuple[str, str], ...] = ()
    data_scale: str = "1"

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> "ScheduleSpec":
        name = schedule.name if _NAME.match(schedule.name) else "custom"
        for p in schedule.params:
            if not p.positive:
                raise EmitError(f"parameter {p.name!r} is not declared positive; emitted modules support positive parameters")
        return cls(
            name,
            sp.sstr(schedule.alpha),
            sp.sstr(schedule.beta),
            tuple((k, sp.sstr(v)) for k, v in schedule.value_map.items()),
            sp.sstr(schedule.data_scale),
        )

    def schedule(self) -> Schedule:
        """The :class:`Schedule` these strings describe (parsed safely)."""
        plist = tuple(Param(k, parse_expression(v, {})) for k, v in self.params)
        symbols = {p.name: param_symbol(p.name) for p in plist}
        try:
            alpha = parse_expression(self.alpha, symbols)
            beta = parse_expression(self.beta, symbols)
            scale = parse_expression(self.data_scale, symbols)
        except ExpressionError as exc:
            raise EmitError(f"schedule {self.name!r}: {exc}") from None
        return Schedule(self.name, alpha, beta, plist, tuple((p.name, p.default) for p in plist), scale)

    def as_dict(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta, "params": dict(self.params), "data_scale": self.data_scale}

    @classmethod
    def from_dict(cls, d: object, what: str) -> "ScheduleSpec":
        if not isinstance(d, dict) or set(d) != {"name", "alpha", "beta", "params", "data_scale"}:
            raise EmitError(f"{what} must be an object with keys name, alpha, beta, params, data_scale")
        name = _text(d["name"], f"{what}.name")
        if not _NAME.match(name):
            raise EmitError(f"{what}.name {name[:40]!r} is not a plain name")
        params = d["params"]
        if not isinstance(params, dict) or not all(isinstance(k, str) and k.isidentifier() for k in params):
            raise EmitError(f"{what}.params must map identifiers to expressions")
        return cls(
            name,
            _text(d["alpha"], f"{what}.alpha"),
            _text(d["beta"], f"{what}.beta"),
            tuple((k, _text(v, f"{what}.params.{k}")) for k, v in params.items()),
            _text(d["data_scale"], f"{what}.data_scale"),
        )


@dataclass(frozen=True)
class EmitSpec:
    """What an emitted module is generated from: ``kind`` ``"schedule"`` (``source`` only) or
    ``"conversion"`` (``source`` A -> ``target`` B with target diffusion ``eps``: ``zero``,
    ``optimal``, ``nu=V`` or an expression in s, see
    :func:`~lazysi.symbolic.conversion.parse_eps_target`)."""

    kind: str
    source: ScheduleSpec
    target: ScheduleSpec | None = None
    eps: str | None = None

    def as_json(self) -> str:
        d: dict = {"kind": self.kind, "source": self.source.as_dict()}
        if self.kind == "conversion":
            d.update({"target": self.target.as_dict(), "eps": self.eps})
        return json.dumps(d, sort_keys=True, separators=(", ", ": "))

    @classmethod
    def from_json(cls, text: str) -> "EmitSpec":
        try:
            d = json.loads(text)
        except ValueError as exc:
            raise EmitError(f"the lazysi-spec line is not valid JSON: {exc}") from None
        if not isinstance(d, dict) or d.get("kind") not in ("schedule", "conversion"):
            raise EmitError("the lazysi-spec line must be an object with kind 'schedule' or 'conversion'")
        keys = {"kind", "source"} | ({"target", "eps"} if d["kind"] == "conversion" else set())
        if set(d) != keys:
            raise EmitError(f"the lazysi-spec of a {d['kind']} module has exactly the keys {sorted(keys)}")
        source = ScheduleSpec.from_dict(d["source"], "source")
        if d["kind"] == "schedule":
            return cls("schedule", source)
        return cls("conversion", source, ScheduleSpec.from_dict(d["target"], "target"), _text(d["eps"], "eps"))


@dataclass(frozen=True)
class EmittedModule:
    """The generated source and what each generated function was generated from.

    Attributes:
        source: the module text.
        spec: the spec it was generated from (as read back from its own spec line).
        kernels: name -> expression in t (schedule kernels of the source schedule).
        fields: name -> expression in t and ``D`` (Gaussian coefficients of the source schedule).
        maps: name -> expression in s (conversion maps and ``eps_target``; empty for a schedule).
        schedules: the bound source schedule, and the bound target for a conversion.
    """

    source: str
    spec: EmitSpec
    kernels: dict[str, sp.Expr]
    fields: dict[str, sp.Expr]
    maps: dict[str, sp.Expr]
    schedules: tuple[Schedule, ...]


_GLUE_FIELDS = '''

# ---------------------------------------------------------------- Gaussian data N(mean, cov) (C7)
def _eigen(t: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor):
    """``(t as a column, eigenvalues d, eigenvectors U, y = U^T (x - beta m))`` for x of shape (n, D)."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    cov = torch.as_tensor(cov, dtype=x.dtype, device=x.device)
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    t = t.reshape(-1, 1) if t.ndim else t
    d, u = torch.linalg.eigh(cov)
    d = d.clamp_min(0.0)
    y = (x - beta(t) * mean) @ u
    return t, d, u, y


def gaussian_fields(t: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eta_X, eta_Z)`` at ``I_t = x`` for ``X ~ N(mean, cov)``: ``eta_X = m + U (gain_x y)``,
    ``eta_Z = U (gain_z y)``, ``y = U^T (x - beta m)``. x: (n, D); t: a number or (n,)."""
    t, d, u, y = _eigen(t, x, mean, cov)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    return mean + (gain_x(t, d=d) * y) @ u.T, (gain_z(t, d=d) * y) @ u.T


def gaussian_score(t: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``s = grad log p_t(x) = -(alpha^2 I + beta^2 cov)^-1 (x - beta m) = -U (inv_var y)``."""
    t, d, u, y = _eigen(t, x, mean, cov)
    return -(inv_var(t, d=d) * y) @ u.T


def gaussian_velocity(t: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``b = alpha_dot eta_Z + beta_dot eta_X = beta_dot m + U (velocity_gain y)``."""
    t, d, u, y = _eigen(t, x, mean, cov)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    return beta_dot(t) * mean + (velocity_gain(t, d=d) * y) @ u.T


def gaussian_drift(t: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, eps=0.0) -> torch.Tensor:
    """``b + eps s`` (the SDE ``dX = (b + eps s) dt + sqrt(2 eps) dW`` has the interpolant's
    marginals; eps = 0: the probability-flow ODE), t forward from base to data. ``eps`` is the
    value of the diffusion coefficient at ``t`` (a number or (n,))."""
    t, d, u, y = _eigen(t, x, mean, cov)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    eps = eps.reshape(-1, 1) if eps.ndim else eps
    return beta_dot(t) * mean + ((velocity_gain(t, d=d) - eps * inv_var(t, d=d)) * y) @ u.T
'''

_GLUE_CONVERSION = '''

# ---------------------------------------------------------------- the converted drift (C4, C5)
def converted_drift(s: torch.Tensor, x: torch.Tensor, velocity_A, score_A) -> torch.Tensor:
    """``b_B(s, x) + eps_B(s) score_B(s, x) = (c'/c) x + c tau' b_A(tau, x/c) + eps_B score_A(tau, x/c) / c``
    at target time s (forward, base -> data), from a model under the source schedule A given as
    callables ``velocity_A(t, y)`` and ``score_A(t, y)`` (y of shape (n, D), t of shape (n,))."""
    s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
    s = s.reshape(-1) if s.ndim else s.reshape(1).expand(x.shape[0])
    ts, cs = tau(s), c(s).reshape(-1, 1)
    y = x / cs
    out = c_dot_over_c(s).reshape(-1, 1) * x + cs * tau_dot(s).reshape(-1, 1) * velocity_A(ts, y)
    return out + eps_target(s).reshape(-1, 1) * score_A(ts, y) / cs


def gaussian_converted_drift(s: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """:func:`converted_drift` with the exact fields of ``X ~ N(mean, cov)`` under A."""
    return converted_drift(
        s, x, lambda t, y: gaussian_velocity(t, y, mean, cov), lambda t, y: gaussian_score(t, y, mean, cov)
    )
'''

GLUE_FUNCTIONS = {
    "schedule": ("gaussian_fields", "gaussian_score", "gaussian_velocity", "gaussian_drift"),
    "conversion": ("gaussian_fields", "gaussian_score", "gaussian_velocity", "gaussian_drift", "converted_drift", "gaussian_converted_drift"),
}


def _round_trip(spec: EmitSpec) -> EmitSpec:
    """The spec as a reader of the header will see it (so that regeneration is exact)."""
    return EmitSpec.from_json(spec.as_json())


def _field_exprs(schedule: Schedule) -> dict[str, sp.Expr]:
    out = dict(field_kernels(schedule))
    out["velocity_gain"] = velocity_gain(schedule)
    return out


def render_emitted(spec: EmitSpec) -> EmittedModule:
    """Generate the module for ``spec`` (see the module docstring). Raises :class:`EmitError`
    (or :class:`~lazysi.symbolic.codegen.CodegenError`) naming what cannot be generated."""
    spec = _round_trip(spec)
    A = spec.source.schedule()
    a = A.bound
    if D in a.alpha.free_symbols | a.beta.free_symbols:
        raise EmitError("the name 'd' is reserved for the data variance in emitted modules")
    kernels = a.kernels()
    fields = _field_exprs(a)
    maps: dict[str, sp.Expr] = {}
    schedules: tuple[Schedule, ...] = (a,)
    lines = [f"schedule {spec.source.name}: alpha = {a.alpha}, beta = {a.beta}, data_scale = {a.data_scale}"]
    if spec.source.params:
        lines.append("parameters (bound): " + ", ".join(f"{k} = {v}" for k, v in spec.source.params))
    if spec.kind == "conversion":
        from .conversion import Conversion, parse_eps_target, s

        B = spec.target.schedule()
        conv = Conversion(A, B)
        if not conv.closed_form:
            raise EmitError(
                f"{A.name} -> {B.name}: tau(s) has no closed form sympy can find; emitted modules need one "
                "(lazysi.numeric.fields.convert.NumericConversion evaluates it by root-finding instead)"
            )
        maps = {n: getattr(conv, n) for n in MAP_FUNCTIONS[:-1]}
        maps["eps_target"] = parse_eps_target(spec.eps, B)
        schedules = (a, B.bound)
        lines.append(f"conversion to {spec.target.name} (its own time written t here, s below): alpha_B = {B.bound.alpha}, beta_B = {B.bound.beta}; eps_B = {spec.eps}")
        lines.append("kernels and Gaussian coefficients below are the SOURCE schedule's (time t); the maps are in s")
    sources = {**kernels, **fields, **maps}
    title = f"lazysi emitted {spec.kind}"
    digest = module_digest(sources, title + " " + spec.as_json())
    head = module_preamble([title, *lines, SPEC_PREFIX[2:] + spec.as_json()], sources, digest, generator=GENERATOR, note=CHECK_NOTE)
    try:
        body = render_functions(kernels, t)
        body += render_field_functions(fields)
        if maps:
            from .conversion import s

            body += render_functions(maps, s)
    except NotImplementedError as exc:
        raise EmitError(f"cannot generate endpoint-safe code: {exc}") from None
    glue = _GLUE_FIELDS + (_GLUE_CONVERSION if maps else "")
    text = "\n".join(head + body) + glue + f"\nGLUE = {list(GLUE_FUNCTIONS[spec.kind])!r}\n"
    return EmittedModule(text, spec, kernels, fields, maps, schedules)


def read_spec(text: str) -> EmitSpec:
    """The spec recorded in an emitted module's header (exactly one ``# lazysi-spec:`` line)."""
    found = [line[len(SPEC_PREFIX):] for line in text.splitlines() if line.startswith(SPEC_PREFIX)]
    if len(found) != 1:
        raise EmitError(
            f"expected exactly one '{SPEC_PREFIX.strip()}' header line, found {len(found)} "
            "(is this a module written by `lazysi derive/convert --emit-torch`?)"
        )
    return EmitSpec.from_json(found[0])


def regenerate(text: str) -> EmittedModule:
    """Regenerate an emitted module from its own header (see :func:`read_spec`)."""
    return render_emitted(read_spec(text))


def schedule_spec(schedule: Schedule) -> EmitSpec:
    """The spec of a schedule module."""
    return EmitSpec("schedule", ScheduleSpec.from_schedule(schedule))


def conversion_spec(source: Schedule, target: Schedule, eps: str = "zero") -> EmitSpec:
    """The spec of a conversion module ``source -> target`` with target diffusion ``eps``."""
    return EmitSpec("conversion", ScheduleSpec.from_schedule(source), ScheduleSpec.from_schedule(target), eps)



