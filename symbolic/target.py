"""Resolve a ``--target`` value into a validated :class:`~lazysi.symbolic.schedule.Schedule`.

Three spellings (t = 0 base, t = 1 data):

* ``"alpha=EXPR,beta=EXPR"`` -- expressions in t (parsed by :mod:`lazysi.symbolic.expr`; names
  other than t, the allowed functions and constants must be given in ``params``);
* a FILE written by ``lazysi derive ... --emit-torch FILE`` -- the schedule is read from the
  file's ``# lazysi-spec:`` header (JSON + the safe expression parser, never executed) and the
  file is verified first: it must be byte for byte what the generator produces from that
  header (the full mpmath check is ``lazysi verify --module FILE``);
* a built-in family name (``linear``, ``vp``, ``point-mass``, ...) with ``params`` for its
  parameters.

Every error is a :class:`TargetError` (a ``ValueError``) naming the argument and the problem;
an invalid schedule raises :class:`~lazysi.symbolic.schedule.ScheduleError` naming each violated
validity condition.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .emit import EmitError, read_spec, render_emitted
from .expr import ExpressionError, param_symbol, parse_expression
from .families import FAMILIES, family
from .schedule import Schedule, ScheduleError, as_number

__all__ = ["TargetError", "resolve_target", "split_schedule_spec"]


class TargetError(ValueError):
    """A ``--target`` value cannot be resolved (the message names the argument and the reason)."""


def split_schedule_spec(text: str, what: str = "--target") -> tuple[str, str]:
    """``"alpha=EXPR,beta=EXPR"`` -> ``(alpha, beta)``; commas inside parentheses are kept."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    parts: dict[str, str] = {}
    for piece in pieces:
        key, sep, value = piece.partition("=")
        key = key.strip()
        if not sep or key not in ("alpha", "beta") or key in parts:
            raise TargetError(f"{what}: expected exactly alpha=EXPR,beta=EXPR, got {text[:80]!r}")
        parts[key] = value.strip()
    if set(parts) != {"alpha", "beta"}:
        raise TargetError(f"{what}: both alpha= and beta= are required, got {text[:80]!r}")
    return parts["alpha"], parts["beta"]


def _from_expressions(text: str, params: Mapping[str, str], what: str) -> Schedule:
    alpha, beta = split_schedule_spec(text, what)
    symbols = {}
    for k, v in params.items():
        if not k.isidentifier():
            raise TargetError(f"{what}: parameter name {k!r} is not an identifier")
        try:
            as_number(v, k)
        except ExpressionError as exc:
            raise TargetError(f"{what}: parameter {k}: {exc}") from None
        symbols[k] = param_symbol(k)
    for name, expr in (("alpha", alpha), ("beta", beta)):
        try:
            parse_expression(expr, symbols)
        except ExpressionError as exc:
            raise TargetError(f"{what} {name}: {exc}") from None
    return Schedule.from_strings(alpha, beta, dict(params))


def _from_file(path: Path, params: Mapping[str, str], what: str) -> Schedule:
    if params:
        raise TargetError(f"{what} {path}: an emitted module records its own parameters; do not pass any")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"{what} {path}: cannot read: {exc}") from None
    try:
        spec = read_spec(text)
        if spec.kind != "schedule":
            raise TargetError(f"{what} {path}: a {spec.kind} module; a target needs a schedule module (`lazysi derive --emit-torch`)")
        module = render_emitted(spec)
    except EmitError as exc:
        raise TargetError(f"{what} {path}: {exc}") from None
    if module.source != text:
        raise TargetError(f"{what} {path}: the file differs from what its header generates (edited?); "
                          f"run `lazysi verify --module {path}` for details")
    return spec.source.schedule()


def _from_family(name: str, params: Mapping[str, str], what: str) -> Schedule:
    known = {p.name for p in FAMILIES[name].params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise TargetError(f"{what} {name}: unknown parameter(s) {unknown}; known: {sorted(known) or 'none'}")
    try:
        return family(name, **{k: as_number(v, k) for k, v in params.items()})
    except ExpressionError as exc:
        raise TargetError(f"{what} {name}: {exc}") from None


def resolve_target(spec: str, params: Mapping[str, str] | None = None, *, what: str = "--target", digits: int = 30) -> Schedule:
    """The validated schedule a ``--target`` value names (see the module docstring).

    Args:
        spec: ``"alpha=EXPR,beta=EXPR"``, a path to an emitted schedule module, or a family name.
        params: parameter values as strings (``{"sigma": "0.7"}``), e.g. from ``--param``.
        what: the argument name used in error messages.
        digits: precision of the numeric validity checks.

    Raises:
        TargetError: the value cannot be resolved (names ``what`` and the reason).
        ScheduleError: the schedule violates a validity condition (names each one).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TargetError(f"{what}: empty value; give alpha=EXPR,beta=EXPR, an emitted module FILE or a family ({', '.join(FAMILIES)})")
    spec = spec.strip()
    values = dict(params or {})
    if "=" in spec:
        schedule = _from_expressions(spec, values, what)
    elif spec in FAMILIES:
        schedule = _from_family(spec, values, what)
    elif Path(spec).is_file():
        schedule = _from_file(Path(spec), values, what)
    else:
        raise TargetError(f"{what}: {spec[:80]!r} is not alpha=EXPR,beta=EXPR, an existing file, or a family ({', '.join(FAMILIES)})")
    try:
        return schedule.require_valid(digits=digits)
    except ScheduleError as exc:
        raise ScheduleError(f"{what}: {exc}") from None
