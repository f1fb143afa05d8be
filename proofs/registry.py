"""Claims as data: each claim of the theory is a :class:`Claim` registered in one place.

A claim has an id (``C1`` ... ``C15`` from MATH.md, or a project/user id), a one-line
statement, its assumptions, the sympy objects it relates, a *symbolic* check and a *numeric*
experiment. ``lazysi verify`` runs every registered claim and reports both halves.

Adding a claim for your own schedule family is a few lines::

    from lazysi.proofs.registry import Claim, SymbolicOutcome, NumericOutcome, register

    def sym(ctx):
        residual = sp.simplify(my_identity_lhs - my_identity_rhs)
        return SymbolicOutcome("proved" if residual == 0 else "failed", f"residual {residual}")

    def num(ctx):
        err = ...  # worst error against an mpmath reference at ctx.digits digits
        return NumericOutcome(max_error=err, tolerance=1e-25, digits=ctx.digits)

    register(Claim("U1", "my family is lazy for N(0, 4)", ("sigma = 2",), sym, num))
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Claim",
    "ClaimResult",
    "Context",
    "NumericOutcome",
    "SymbolicOutcome",
    "REGISTRY",
    "register",
    "run_claim",
    "claims",
    "ENTRY_POINT_GROUP",
    "ClaimLoadError",
    "load_claim_files",
    "load_entry_points",
]

#: third-party packages register claims through this entry-point group: each entry point names
#: a module (importing it calls :func:`register`) or a callable returning an iterable of Claims
ENTRY_POINT_GROUP = "lazysi.claims"


class ClaimLoadError(ValueError):
    """A claims file or folder cannot be loaded (names the file and the reason)."""

SYMBOLIC_STATUSES = ("proved", "numeric-only", "failed")


@dataclass(frozen=True)
class Context:
    """Options of one verification run."""

    digits: int = 30
    quick: bool = False
    seed: int = 0


@dataclass(frozen=True)
class SymbolicOutcome:
    """``status`` is ``"proved"`` (sympy reduced the identity to 0), ``"numeric-only"`` (sympy could
    not decide; the numeric half carries the claim) or ``"failed"`` (a nonzero residual)."""

    status: str
    detail: str = ""

    def __post_init__(self):
        if self.status not in SYMBOLIC_STATUSES:
            raise ValueError(f"symbolic status must be one of {SYMBOLIC_STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class NumericOutcome:
    """Worst error of the numeric experiment against its oracle, the tolerance it must meet,
    and the working precision."""

    max_error: float
    tolerance: float
    digits: int
    detail: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_error) and self.max_error <= self.tolerance


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    assumptions: tuple[str, ...]
    symbolic: Callable[[Context], SymbolicOutcome]
    numeric: Callable[[Context], NumericOutcome]
    relates: tuple[str, ...] = field(default=())  # names of the sympy objects it relates (for reports)


@dataclass(frozen=True)
class ClaimResult:
    id: str
    statement: str
    symbolic: str
    symbolic_detail: str
    numeric_max_error: float
    tolerance: float
    digits: int
    numeric_detail: str
    passed: bool
    seconds: float

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "statement": self.statement,
            "symbolic": self.symbolic,
            "symbolic_detail": self.symbolic_detail,
            "numeric_max_error": self.numeric_max_error,
            "tolerance": self.tolerance,
            "digits": self.digits,
            "numeric_detail": self.numeric_detail,
            "passed": self.passed,
            "seconds": self.seconds,
        }


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Register ``claim`` (ids are unique; re-registering the same id replaces it)."""
    REGISTRY[claim.id] = claim
    return claim


def claims() -> list[Claim]:
    """All registered claims (importing the built-in claim modules first), sorted by id."""
    from . import catalog  # noqa: F401  (registers the built-in claims)

    load_entry_points()

    def key(c: Claim):
        head, num = c.id[0], c.id[1:]
        return (head != "C", head, int(num) if num.isdigit() else 10**6, c.id)

    return sorted(REGISTRY.values(), key=key)


def run_claim(claim: Claim, ctx: Context) -> ClaimResult:
    """Run both halves of ``claim``; an exception in either half is a failure naming it."""
    start = time.perf_counter()
    try:
        sym = claim.symbolic(ctx)
    except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
        sym = SymbolicOutcome("failed", f"{type(exc).__name__}: {exc}")
    try:
        num = claim.numeric(ctx)
    except Exception as exc:  # noqa: BLE001
        num = NumericOutcome(math.inf, 0.0, ctx.digits, f"{type(exc).__name__}: {exc}")
    passed = sym.status != "failed" and num.passed
    return ClaimResult(
        claim.id,
        claim.statement,
        sym.status,
        sym.detail,
        float(num.max_error),
        float(num.tolerance),
        num.digits,
        num.detail,
        passed,
        time.perf_counter() - start,
    )


_ENTRY_POINTS_LOADED: list[str] = []


def _broken(cid: str, statement: str, reason: str) -> Claim:
    def fail(ctx: Context) -> SymbolicOutcome:
        return SymbolicOutcome("failed", reason)

    def nothing(ctx: Context) -> NumericOutcome:
        return NumericOutcome(math.inf, 0.0, ctx.digits, reason)

    return Claim(cid, statement, (), fail, nothing)


def load_entry_points() -> list[str]:
    """Load the ``lazysi.claims`` entry points once; returns their names. An entry point that
    fails to load registers a failing claim ``EP:<name>`` naming the error (so ``lazysi verify``
    reports it instead of crashing or silently skipping it)."""
    if _ENTRY_POINTS_LOADED:
        return list(_ENTRY_POINTS_LOADED)
    from importlib.metadata import entry_points

    _ENTRY_POINTS_LOADED.append("")  # loading started (entry points may call claims())
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _ENTRY_POINTS_LOADED.append(ep.name)
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type(math)):
                for claim in obj():
                    if not isinstance(claim, Claim):
                        raise TypeError(f"{ep.value} returned {type(claim).__name__}, not a Claim")
                    register(claim)
        except Exception as exc:  # noqa: BLE001 - reported as a failing claim
            register(_broken(f"EP:{ep.name}", f"entry point {ep.name} = {ep.value} loads", f"{type(exc).__name__}: {exc}"))
    return [n for n in _ENTRY_POINTS_LOADED if n]


def load_claim_files(path: str | os.PathLike) -> list[str]:
    """Import a claims file (``*.py``) or every ``*.py`` file of a folder (not those starting with
    ``_``, sorted by name); each calls :func:`register`. Returns the ids they registered.

    Raises :class:`ClaimLoadError` naming the file when a path does not exist, is not Python, or
    fails to import (the error's first line)."""
    import importlib.util
    import hashlib
    from pathlib import Path

    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.glob("*.py") if not p.name.startswith("_"))
        if not files:
            raise ClaimLoadError(f"--claims {root}: no claim modules (*.py) in this folder")
    elif root.is_file():
        if root.suffix != ".py":
            raise ClaimLoadError(f"--claims {root}: not a Python file")
        files = [root]
    else:
        raise ClaimLoadError(f"--claims {root}: no such file or folder")
    before = dict(REGISTRY)
    for f in files:
        name = "lazysi_user_claims_" + hashlib.sha256(str(f.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, f)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - one line naming the file
            sys.modules.pop(name, None)
            raise ClaimLoadError(f"--claims {f}: importing it failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return [cid for cid, c in REGISTRY.items() if before.get(cid) is not c]
