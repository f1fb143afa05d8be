"""Every committed generated module, in one place: ``regenerate_all`` writes or checks them.

Other parts of lazysi that commit generated modules register a ``(module_file, render)`` pair
in :data:`GENERATORS`; ``render()`` returns the module source.
"""
from __future__ import annotations

from collections.abc import Callable

from lazysi.numeric.fields.schedule import GENERATED_DIR, family_module_name, render_schedule_module

__all__ = ["GENERATORS", "regenerate_all", "generated_sources"]


def _schedule_generators() -> dict[str, Callable[[], str]]:
    from lazysi.symbolic.families import FAMILIES, family

    return {f"{family_module_name(n)}.py": (lambda n=n: render_schedule_module(family(n))) for n in FAMILIES}


# Extra generators (fields, conversions, ...) are added by their modules' ``register_generators``.
GENERATORS: dict[str, Callable[[], str]] = {}
_EXTRA_PROVIDERS = ("lazysi.numeric.fields.gaussian", "lazysi.numeric.fields.convert")


def generated_sources() -> dict[str, Callable[[], str]]:
    import importlib

    out = _schedule_generators()
    for mod in _EXTRA_PROVIDERS:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        out.update(getattr(m, "module_generators", dict)())
    out.update(GENERATORS)
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
