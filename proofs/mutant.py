"""A mutant of the claims harness and the registry of mutant factories (``lazysi verify --mutate``).

:class:`Mutant` is the unit :mod:`lazysi.proofs.mutation` runs. Claim modules that know how to
perturb their own inputs (e.g. the peer formulas of :mod:`lazysi.proofs.claims_peers`) register
a factory with :func:`register_mutants`; the mutation driver collects every registered factory
after the claim modules are imported. Kept apart from the driver so that claim modules and the
driver do not import each other.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Mutant", "MUTANT_FACTORIES", "register_mutants"]


@dataclass(frozen=True)
class Mutant:
    """One perturbation. ``apply()`` installs it and returns a function that undoes it;
    ``compare`` (kernel mutants) returns the mutant's worst deviation from the original on the
    dense grid, used to decide equivalence of a survivor."""

    id: str
    kind: str
    claim_id: str
    target: str
    description: str
    apply: Callable[[], Callable[[], None]] = field(compare=False, repr=False)
    compare: Callable[[], tuple[float, str]] | None = field(default=None, compare=False, repr=False)


#: factories of symbolic mutants registered by claim modules, in registration order
MUTANT_FACTORIES: list[Callable[[], Iterable[Mutant]]] = []


def register_mutants(factory: Callable[[], Iterable[Mutant]]) -> Callable[[], Iterable[Mutant]]:
    """Register a factory of mutants (idempotent); returns it, so it can decorate."""
    if factory not in MUTANT_FACTORIES:
        MUTANT_FACTORIES.append(factory)
    return factory
