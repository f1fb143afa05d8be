"""Every committed generated module, in one place: ``regenerate_all`` writes or checks them.

The modules that commit generated code are listed in :data:`PROVIDERS`; each exposes
``module_generators() -> {file name: render}`` where ``render()`` returns the module source
(schedule kernels: :mod:`lazysi.numeric.fields.schedule`; Gaussian-field coefficients:
:mod:`lazysi.numeric.fields.gaussian`; conversion maps: :mod:`lazysi.numeric.fields.convert`). To commit a new
kind of generated module, give its module a ``module_generators`` and add it here.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from lazysi.numeric.fields.schedule import GENERATED_DIR

__all__ = ["PROVIDERS", "regenerate_all", "generated_sources"]

PROVIDERS = ("lazysi.numeric.fields.schedule", "lazysi.numeric.fields.gaussian", "lazysi.numeric.fields.convert")


def generated_sources() -> dict[str, Callable[[], str]]:
    """File name (in :data:`~lazysi.numeric.fields.schedule.GENERATED_DIR`) -> renderer, every provider."""
    out: dict[str, Callable[[], str]] = {}
    for name in PROVIDERS:
        out.update(importlib.import_module(name).module_generators())
    return out


def regenerate_all(check: bool = False, progress: Callable[[int, int, str, bool], None] | None = None) -> list[str]:
    """Write (or compare, with ``check``) every generated module; returns those that differ.
    ``progress(i, n, filename, differs)`` is called after each of the ``n`` modules (i = 1..n)."""
    changed = []
    sources = generated_sources()
    for i, (filename, render) in enumerate(sources.items(), 1):
        src = render()
        path = GENERATED_DIR / filename
        current = path.read_text() if path.exists() else None
        if current != src:
            changed.append(filename)
            if not check:
                path.write_text(src)
        if progress is not None:
            progress(i, len(sources), filename, current != src)
    return changed
