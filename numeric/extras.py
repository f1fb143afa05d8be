"""Optional packages and the ``pip install 'lazysi[EXTRA]'`` extra that provides each.

The plain install (torch, sympy, mpmath, numpy, safetensors, tqdm) runs derive, convert, codegen,
verify and ``lazysi sample`` on the embedded models. Everything else is an extra declared in
``pyproject.toml``; this module names, for an import name, the distribution to install and the
extra that carries it, so that a missing package is reported as one line *before* any work is done
(:func:`require`) or, when it surfaces late as a ``ModuleNotFoundError``, translated into the
same line (:func:`missing_extra_message`). A test checks this table against ``pyproject.toml``.
"""
from __future__ import annotations

import importlib.util

__all__ = ["OPTIONAL", "MissingExtraError", "require", "missing_extra_message"]

#: import name -> (distribution name on PyPI, extra that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "ot": ("POT", "bench"),
    "matplotlib": ("matplotlib", "bench"),
    "diffusers": ("diffusers", "diffusers"),
    "flow_matching": ("flow-matching", "bench"),
    "mlxtend": ("mlxtend", "data"),
    "sklearn": ("scikit-learn", "data"),
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra to install."""


def missing_extra_message(module: str, purpose: str | None = None) -> str | None:
    """``"<purpose> needs the optional package X: pip install 'lazysi[extra]'"`` for an import name
    (or a dotted name below it) listed in :data:`OPTIONAL`; ``None`` for any other module."""
    top = module.split(".")[0]
    if top not in OPTIONAL:
        return None
    dist, extra = OPTIONAL[top]
    return f"{purpose or 'this'} needs the optional package {dist}: pip install 'lazysi[{extra}]'"


def require(modules: tuple[str, ...] | list[str], purpose: str, extra: str | None = None) -> None:
    """Raise :class:`MissingExtraError` naming every missing one of ``modules`` (import names) and
    the extra to install (``extra``, else the one :data:`OPTIONAL` lists). Imports nothing: only
    ``importlib.util.find_spec`` of the top-level names."""
    missing = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
    if not missing:
        return
    dists = ", ".join(OPTIONAL.get(m.split(".")[0], (m, ""))[0] for m in missing)
    extras = sorted({extra} if extra else {OPTIONAL[m.split(".")[0]][1] for m in missing if m.split(".")[0] in OPTIONAL})
    hint = f": pip install 'lazysi[{','.join(extras)}]'" if extras else ""
    plural = "s" if len(missing) > 1 else ""
    raise MissingExtraError(f"{purpose} needs the optional package{plural} {dists}{hint}")
