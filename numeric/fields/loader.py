"""One rule for "use the committed generated module, or generate the code at run time".

Generated torch code exists in two places: committed modules in :mod:`lazysi.numeric.generated`
(schedule kernels, Gaussian-field coefficients, conversion maps of the built-in families at their
default parameters; ``lazysi codegen`` writes them, claim K0 checks them) and modules generated
at run time from the same sympy definitions for anything else. :func:`load_generated` decides
which, for every consumer (:mod:`~lazysi.numeric.fields.schedule`, :mod:`~lazysi.numeric.fields.gaussian`,
:mod:`~lazysi.numeric.fields.convert`):

* the committed module ``lazysi.numeric.generated.<name>`` is used when it exists, every schedule
  involved is a built-in family with its own definition (:func:`is_builtin`), and every parameter
  the module does not take as a keyword argument (its ``PARAMS``) has its default value;
* otherwise ``render()`` is called and its source compiled, once per ``key`` (a run-time cache).

Returns the module namespace and the keyword arguments (parameter values) its functions take.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Sequence

from lazysi.symbolic.codegen import compile_module
from lazysi.symbolic.families import FAMILIES, family
from lazysi.symbolic.schedule import Schedule

__all__ = ["GENERATED_PACKAGE", "is_builtin", "load_generated"]

GENERATED_PACKAGE = "lazysi.numeric.generated"
_RUNTIME: dict[Hashable, dict] = {}


def is_builtin(schedule: Schedule) -> bool:
    """True when ``schedule`` is a built-in family's own definition (any parameter values)."""
    if schedule.name not in FAMILIES:
        return False
    ref = family(schedule.name)
    return ref.alpha == schedule.alpha and ref.beta == schedule.beta and ref.params == schedule.params


def _committed(module_name: str, schedules: Sequence[Schedule]):
    if not all(is_builtin(s) for s in schedules):
        return None
    try:
        module = importlib.import_module(f"{GENERATED_PACKAGE}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{GENERATED_PACKAGE}.{module_name}":
            raise
        return None
    accepted = getattr(module, "PARAMS", {})
    kw: dict[str, float] = {}
    for sch in schedules:
        for p in sch.params:
            value = float(sch.value_map[p.name])
            if p.name in accepted:
                kw[p.name] = value
            elif value != float(p.default):  # a module generated with bound values serves only those
                return None
    return vars(module), kw


def load_generated(
    module_name: str,
    schedules: Sequence[Schedule],
    render: Callable[[], str],
    key: Hashable,
) -> tuple[dict, dict[str, float]]:
    """``(namespace, keyword arguments)`` of the generated code for ``schedules`` (see the module
    docstring for the rule). ``render()`` returns the module source for the schedules' *bound*
    values (no keyword arguments); ``key`` identifies that source in the run-time cache."""
    found = _committed(module_name, schedules)
    if found is not None:
        return found
    if key not in _RUNTIME:
        _RUNTIME[key] = compile_module(render(), f"lazysi_runtime_{module_name}")
    return _RUNTIME[key], {}
