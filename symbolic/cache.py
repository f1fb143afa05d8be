"""Content-addressed disk cache of symbolic work (derivations and proved identities).

Deriving a conversion (solve, limits, size-bounded simplification) or reducing a residual to 0
costs seconds of sympy time, and ``lazysi verify`` repeats the same work on every run. This
module stores the *results* on disk, keyed so that a stale entry can never be used:

* the file name carries a fingerprint (sha256) of the sympy version and, for derivations, of
  every source file of ``lazysi.symbolic`` -- any edit of the code that derives starts a new,
  empty file (older files of the same store are removed when the new one is written); facts
  about an expression ("sympy reduces it to 0") depend on the sympy version only;
* inside the file, an entry's key is the sha256 of the *inputs* (``srepr`` of the sympy
  objects, with assumptions, plus options), so a changed schedule or a mutated residual is a
  new key.

Expressions are stored as ``srepr`` text and read back by :func:`expr_from_srepr`, which walks
the Python ``ast`` of the text and calls only whitelisted sympy constructors (no ``eval``, no
``sympify`` of strings); a read-back that does not reproduce the stored ``srepr`` exactly is
treated as a miss. Unreadable files are ignored (the cache only ever saves time).

Location: ``$LAZYSI_CACHE_DIR`` (default ``~/.cache/lazysi``); ``LAZYSI_NO_CACHE=1`` disables
every lazysi cache (``lazysi verify --no-cache`` sets it).
"""
from __future__ import annotations

import ast
import atexit
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.repr import ReprPrinter

__all__ = ["cache_root", "cache_enabled", "read_only", "source_fingerprint", "dumps", "expr_from_srepr", "Store", "CacheFormatError",
           "reduced"]


def cache_root() -> Path:
    """``$LAZYSI_CACHE_DIR``, default ``~/.cache/lazysi``."""
    return Path(os.environ.get("LAZYSI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lazysi"))


def cache_enabled() -> bool:
    """False when ``LAZYSI_NO_CACHE=1``."""
    return os.environ.get("LAZYSI_NO_CACHE") != "1"


_READ_ONLY = [0]


@contextmanager
def read_only():
    """Within the block every :class:`Store` serves what it holds but stores nothing new (used by
    ``lazysi verify --mutate``: a mutant's derivations are correct for the mutant's inputs, under
    its own keys, but nobody will ask for them again)."""
    _READ_ONLY[0] += 1
    try:
        yield
    finally:
        _READ_ONLY[0] -= 1


@lru_cache(maxsize=None)
def source_fingerprint(scope: str = "symbolic") -> str:
    """sha256 of what a stored result depends on. ``"symbolic"``: the sympy version and every
    ``.py`` file of ``lazysi.symbolic`` (derivations); ``"sympy"``: the sympy version only (facts
    about an expression, e.g. "sympy reduces it to 0", which no lazysi code can change)."""
    h = hashlib.sha256(f"sympy {sp.__version__}".encode())
    if scope == "symbolic":
        root = Path(__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    elif scope != "sympy":
        raise ValueError(f"scope must be 'symbolic' or 'sympy', got {scope!r}")
    return h.hexdigest()


# ------------------------------------------------------------------------- text form
class _Printer(ReprPrinter):
    """``srepr`` plus the assumptions of undefined functions (``Function('alpha', positive=True)``),
    which plain ``srepr`` drops although they are part of the object (``Function('f') !=
    Function('f', positive=True)``)."""

    def _print_FunctionClass(self, expr):
        if issubclass(expr, AppliedUndef) and getattr(expr, "_kwargs", None):
            kw = ", ".join(f"{k}={v!r}" for k, v in sorted(expr._kwargs.items()) if isinstance(v, bool))
            return f"Function({expr.__name__!r}, {kw})"
        return super()._print_FunctionClass(expr)


def dumps(expr: sp.Basic) -> str:
    """The exact text form of a sympy object (``srepr`` with function assumptions)."""
    return _Printer().doprint(expr)


# ------------------------------------------------------------------------- safe read-back
class CacheFormatError(ValueError):
    """Stored text is not a plain ``srepr`` of whitelisted sympy constructors."""


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# constructors that legitimately take a string first argument in srepr output, and what the string must look like
_STRING_ARG = {"Symbol": _IDENT, "Dummy": _IDENT, "Function": _IDENT, "Float": _NUMBER}


@lru_cache(maxsize=None)
def _allowed(name: str):
    """A sympy class (subclass of Basic) or singleton instance named ``name``, else None."""
    if name == "ExprCondPair":  # Piecewise's pieces: not exported at the top level
        from sympy.functions.elementary.piecewise import ExprCondPair

        return ExprCondPair
    if name == "AccumulationBounds":  # exported as AccumBounds (limits of oscillating expressions)
        return sp.AccumBounds
    if name.startswith("_") or not hasattr(sp, name):
        return None
    obj = getattr(sp, name)
    if isinstance(obj, type) and issubclass(obj, sp.Basic):
        return obj
    if isinstance(obj, sp.Basic):
        return obj
    return None


_NO_EVAL = (sp.Pow, sp.core.function.Application, sp.Derivative, sp.core.relational.Relational)


def _const(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, str)) and not isinstance(node.value, bytes):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return -node.operand.value
    raise CacheFormatError(f"unexpected literal {ast.dump(node)[:80]}")


def _build(node: ast.AST):
    if isinstance(node, ast.Name):
        obj = _allowed(node.id)
        if obj is None or isinstance(obj, type):
            raise CacheFormatError(f"name {node.id!r} is not a sympy singleton")
        return obj
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Name):
        return -_build(node.operand)  # srepr(-oo) is "-oo"
    if isinstance(node, ast.UnaryOp):
        return _const(node)
    if not isinstance(node, ast.Call):
        raise CacheFormatError(f"unexpected syntax {type(node).__name__}")
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None or not _IDENT.match(kw.arg):
            raise CacheFormatError("unexpected keyword syntax")
        kwargs[kw.arg] = _const(kw.value)
    if isinstance(node.func, ast.Name):
        name = node.func.id
        cls = _allowed(name)
        if cls is None or not isinstance(cls, type):
            raise CacheFormatError(f"{name!r} is not a whitelisted sympy constructor")
        args = []
        for i, a in enumerate(node.args):
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                pattern = _STRING_ARG.get(name)
                if i != 0 or pattern is None or not pattern.match(a.value):
                    raise CacheFormatError(f"string argument {a.value[:40]!r} not allowed for {name}")
                args.append(a.value)
            else:
                args.append(_build(a))
        if any(isinstance(v, str) for v in kwargs.values()) and name != "Float":
            raise CacheFormatError(f"string keyword not allowed for {name}")
        if isinstance(cls, type) and issubclass(cls, _NO_EVAL) and cls is not sp.Function and "evaluate" not in kwargs:
            # rebuild the stored (canonical) tree as it is: re-evaluating it is not always idempotent,
            # e.g. sqrt(2*sqrt(3)/3)
            kwargs["evaluate"] = False
        return cls(*args, **kwargs)
    if isinstance(node.func, ast.Call):  # Function('tau')(Symbol('s'))
        f = _build(node.func)
        if not (isinstance(f, type) and issubclass(f, sp.core.function.AppliedUndef)):
            raise CacheFormatError("only undefined functions may be applied")
        if kwargs:
            raise CacheFormatError("keywords on an applied function")
        return f(*(_build(a) for a in node.args))
    raise CacheFormatError("unexpected call syntax")


def expr_from_srepr(text: str) -> sp.Basic:
    """Rebuild a sympy object from its text form (:func:`dumps`, i.e. ``srepr`` with function
    assumptions) without ``eval``; the result must print back to exactly ``text`` (else
    :class:`CacheFormatError`)."""
    if not isinstance(text, str) or len(text) > 2_000_000:
        raise CacheFormatError("stored expression is not a string of sane length")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError) as exc:
        raise CacheFormatError(f"not parseable: {exc}") from None
    try:
        obj = _build(tree.body)
    except CacheFormatError:
        raise
    except Exception as exc:  # a whitelisted constructor rejected its arguments
        raise CacheFormatError(f"constructor failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, sp.Basic) or dumps(obj) != text:
        raise CacheFormatError("read-back does not reproduce the stored srepr")
    return obj


# ------------------------------------------------------------------------- the store
class Store:
    """One JSON file ``<cache_root>/symbolic/<name>-<fingerprint[:20]>.json`` mapping
    ``sha256(key parts)`` to ``{field: srepr}``; ``scope`` picks the fingerprint (see
    :func:`source_fingerprint`). Loaded on first use, written at exit (or by :meth:`flush`),
    merged with what other processes wrote meanwhile."""

    def __init__(self, name: str, scope: str = "symbolic"):
        if not _IDENT.match(name):
            raise ValueError(f"store name must be an identifier, got {name!r}")
        source_fingerprint(scope)  # validates scope
        self.name, self.scope = name, scope
        self._data: dict[str, dict[str, str]] | None = None
        self._new: dict[str, dict[str, str]] = {}
        atexit.register(self.flush)

    def path(self) -> Path:
        return cache_root() / "symbolic" / f"{self.name}-{source_fingerprint(self.scope)[:20]}.json"

    @staticmethod
    def key(*parts: object) -> str:
        text = "\x1f".join(dumps(p) if isinstance(p, sp.Basic) else repr(p) for p in parts)
        return hashlib.sha256(text.encode()).hexdigest()

    def _load(self) -> dict[str, dict[str, str]]:
        if self._data is None:
            self._data = {}
            if cache_enabled():
                try:
                    raw = json.loads(self.path().read_text())
                    if isinstance(raw, dict):
                        self._data = {k: v for k, v in raw.items() if isinstance(v, dict)}
                except (OSError, ValueError):
                    pass
        return self._data

    def get(self, key: str) -> dict[str, sp.Basic] | None:
        """The stored objects under ``key``, or None (missing, disabled or unreadable)."""
        if not cache_enabled():
            return None
        entry = self._load().get(key)
        if entry is None:
            return None
        try:
            return {k: expr_from_srepr(v) for k, v in entry.items()}
        except CacheFormatError:
            return None

    def lookup(self, key: str, fields: Iterable[str]) -> dict[str, sp.Basic] | None:
        """:meth:`get`, counted as a hit only when the entry holds exactly ``fields``."""
        stored = self.get(key)
        return stored if stored is not None and set(stored) == set(fields) else None

    def memo(self, parts: Sequence[object], fields: Sequence[str], compute: Callable[[], dict[str, sp.Basic]]) -> dict[str, sp.Basic]:
        """``compute()`` (a dict with exactly ``fields``) for the inputs ``parts``, served from the
        store when it holds them and stored otherwise."""
        key = self.key(*parts)
        stored = self.lookup(key, fields)
        if stored is not None:
            return stored
        value = compute()
        self.put(key, value)
        return value

    def put(self, key: str, objects: dict[str, sp.Basic]) -> bool:
        """Store ``objects`` under ``key``; returns False (stores nothing) when caching is off or
        an object does not survive the read-back exactly (``srepr`` does not print every
        attribute, e.g. the assumptions of an undefined function)."""
        if not cache_enabled() or _READ_ONLY[0]:
            return False
        entry = {k: dumps(v) for k, v in objects.items()}
        try:
            if any(expr_from_srepr(text) != objects[k] for k, text in entry.items()):
                return False
        except CacheFormatError:
            return False
        self._load()[key] = entry
        self._new[key] = entry
        return True

    def flush(self) -> None:
        """Write new entries (merged with the file's current content; atomic replace) and remove
        this store's files for other source fingerprints. Failures only lose the cache."""
        if not self._new or not cache_enabled():
            return
        path = self.path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                current = json.loads(path.read_text())
                current = current if isinstance(current, dict) else {}
            except (OSError, ValueError):
                current = {}
            current.update(self._new)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(current))
            os.replace(tmp, path)
            self._new = {}
            for old in path.parent.glob(f"{self.name}-*.json"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError:
            pass


# ------------------------------------------------------------------------- cached reductions
_REDUCERS = {
    "simplify": sp.simplify,
    "cancel-together": lambda e: sp.cancel(sp.together(e)),
    "cancel-together-expand": lambda e: sp.cancel(sp.together(sp.expand(e))),
}
_REDUCED = Store("reduced", scope="sympy")


def reduced(expr: sp.Expr, how: str = "simplify") -> sp.Expr:
    """``simplify(expr)`` (or another sympy rewriting named by ``how``: ``cancel-together``,
    ``cancel-together-expand``), remembered on disk under the expression and the sympy version.
    The stored result is the rewriting sympy produced for exactly this input: mathematically
    equal to ``expr``, so using it can never change a verdict."""
    if how not in _REDUCERS:
        raise ValueError(f"unknown reduction {how!r}; known: {', '.join(_REDUCERS)}")
    return _REDUCED.memo(("reduced", how, expr), ("value",), lambda: {"value": _REDUCERS[how](expr)})["value"]
