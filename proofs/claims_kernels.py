"""Claims about the committed generated torch kernels (``lazysi/numeric/generated/*.py``).

* ``K0``: every committed generated module is byte-for-byte what the generator produces from
  the sympy definitions (``lazysi.numeric.codegen_all.regenerate_all(check=True)``).
* ``K1`` ... ``Kn`` (one per built-in family, in :data:`~lazysi.symbolic.families.FAMILIES`
  order): every kernel of the family, loaded through :class:`~lazysi.numeric.fields.schedule.NumericSchedule`
  and evaluated in float64, agrees with the family's sympy definition evaluated by mpmath at
  ``ctx.digits`` digits on a grid containing t = 0 and t = 1 (one-sided limits), points within
  1e-300 ... 1e-2 of either end, interior points on both sides of t = 1/2 (the generated code
  switches to a reflected form there), at the default parameters and one other parameter value.

Editing a generated kernel by hand therefore fails K0 (text differs) and, unless the edit is
numerically invisible, the family's K claim (values differ) -- ``lazysi verify --mutate`` measures
how often.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import sympy as sp
import torch

from lazysi.numeric.fields.schedule import KERNEL_NAMES, NumericSchedule, family_module_name, schedule_module_digest
from lazysi.symbolic.cache import cache_enabled, cache_root
from lazysi.symbolic.families import FAMILIES, family

from .mpcheck import mp_value_cached
from .registry import Claim, Context, NumericOutcome, SymbolicOutcome, register

__all__ = ["FAMILY_CLAIMS", "GRID", "QUICK_GRID", "OTHER_PARAMS", "TOLERANCE", "kernel_errors", "module_for"]

# float64 kernels against a >= 30-digit reference: relative error (absolute below 1e-300).
TOLERANCE = 1e-11

_NEAR = (1e-300, 1e-200, 1e-100, 1e-30, 1e-15, 1e-12, 1e-8, 1e-5, 1e-3, 1e-2)
GRID: tuple[float, ...] = tuple(
    sorted(
        {0.0, 1.0}
        | set(_NEAR)
        | {1.0 - h for h in _NEAR if 1.0 - h < 1.0}
        | {0.05, 0.1, 0.17, 0.25, 0.33, 0.41, 0.49, 0.5, 0.51, 0.6, 0.7, 0.77, 0.83, 0.9, 0.95}
    )
)
QUICK_GRID: tuple[float, ...] = (0.0, 1e-300, 1e-12, 1e-4, 0.17, 0.5, 0.77, 1.0 - 1e-4, 1.0 - 1e-12, 1.0)

# A second parameter point per parametric family (the committed modules take the parameters as
# keyword arguments; a mutated parameter-dependent term could hide at the defaults).
OTHER_PARAMS: dict[str, dict[str, object]] = {
    "vp": {"sigma": 0.7},
    "point-mass": {"sigma": 2.5},
    "sd3": {"shift": 1.7},
    "ddpm": {"beta_min": 0.2, "beta_max": 12},
    "polynomial": {},
}


def module_for(name: str):
    """The committed generated module of family ``name``."""
    return importlib.import_module(f"lazysi.numeric.generated.{family_module_name(name)}")


@lru_cache(maxsize=None)
def _bound_kernels(name: str, values: tuple[tuple[str, object], ...]) -> tuple[sp.Symbol, dict[str, sp.Expr]]:
    s = family(name, **dict(values)).bound
    return s.t, s.kernels()


def _parameter_points(name: str, quick: bool) -> list[tuple[tuple[str, object], ...]]:
    points: list[tuple[tuple[str, object], ...]] = [()]
    other = OTHER_PARAMS.get(name, {})
    if other and not quick:
        accepted = set(getattr(module_for(name), "PARAMS", {}))
        if set(other) <= accepted:  # a module generated with bound parameters serves only the defaults
            points.append(tuple(sorted(other.items())))
    return points


@lru_cache(maxsize=None)
def _reference(name: str, values: tuple, kname: str, grid: tuple[float, ...], digits: int):
    """mpmath references of one kernel on ``grid`` as float64 arrays ``(hi, lo, denom, code)``:
    ``hi + lo`` is the reference to ~32 digits, ``denom`` what its error is divided by (|ref|, or
    the typical magnitude at an exact zero), ``code`` 0 finite, 1 +inf, -1 -inf, 2 nan."""
    import mpmath
    import numpy as np

    var, exprs = _bound_kernels(name, values)
    refs = [mp_value_cached(exprs[kname], var, t, digits) for t in grid]
    scale = _typical(refs)
    zero_below = scale * 10.0 ** (5 - digits)
    hi, lo, denom, code = (np.zeros(len(grid)) for _ in range(4))
    with mpmath.workdps(40):
        for i, r in enumerate(refs):
            if mpmath.isnan(r):
                code[i] = 2
            elif mpmath.isinf(r) or abs(r) > 1.7976931348623157e308:
                code[i] = 1 if r > 0 else -1
            else:
                hi[i] = float(r)
                lo[i] = float(r - mpmath.mpf(hi[i]))
                denom[i] = max(float(abs(r)) if abs(r) > zero_below else scale, 1e-300)
    return hi, lo, denom, code, tuple(refs)


def kernel_errors(name: str, ctx: Context) -> tuple[float, str, int]:
    """Worst relative error of family ``name``'s generated kernels against mpmath on the grid:
    ``(worst, where, number_of_values_compared)``. A fresh :class:`NumericSchedule` is built
    every call, so a patched generated module is what gets measured. Infinite references must
    be matched by the same signed infinity, NaN (an undefined limit) by NaN."""
    import numpy as np

    grid = QUICK_GRID if ctx.quick else GRID
    worst, where, n = 0.0, "", 0
    tt = torch.tensor(grid, dtype=torch.float64)
    for values in _parameter_points(name, ctx.quick):
        ns = NumericSchedule(family(name, **dict(values)))
        for kname in KERNEL_NAMES:
            got_t = ns.kernel(kname, tt)
            if got_t.shape != tt.shape or got_t.dtype != torch.float64:
                return float("inf"), f"{kname}{dict(values)} returned {tuple(got_t.shape)} {got_t.dtype}", n
            got = got_t.numpy()
            hi, lo, denom, code, refs = _reference(name, values, kname, grid, ctx.digits)
            with np.errstate(all="ignore"):
                err = np.abs((got - hi) - lo) / denom
                err = np.where(np.isfinite(got), err, np.inf)
                err = np.where(code == 1, np.where(got == np.inf, 0.0, np.inf), err)
                err = np.where(code == -1, np.where(got == -np.inf, 0.0, np.inf), err)
                err = np.where(code == 2, np.where(np.isnan(got), 0.0, np.inf), err)
            err = np.where(np.isnan(err), np.inf, err)
            n += len(grid)
            i = int(np.argmax(err))
            if err[i] > worst or not where:
                worst = float(err[i])
                label = f" {dict(values)}" if values else ""
                where = f"{kname}{label} at t={grid[i]!r}: got {float(got[i])!r}, mpmath {mpmath_str(refs[i])}"
    return worst, where, n


def _typical(refs) -> float:
    """Median finite |value| on the grid: the magnitude an exact zero of the function is measured
    against (a reference below 10^(5 - digits) times it counts as zero)."""
    import mpmath

    mags = sorted(float(abs(r)) for r in refs if mpmath.isfinite(r) and abs(r) < 1e308)
    if not mags:
        return 0.0
    return mags[len(mags) // 2]


def mpmath_str(v) -> str:
    import mpmath

    return mpmath.nstr(v, 17)


def _family_claim(index: int, name: str) -> Claim:
    cid = f"K{index}"

    def symbolic(ctx: Context) -> SymbolicOutcome:
        mod = module_for(name)
        stamp = getattr(mod, "SOURCE_SHA256", None)
        missing = [f for f in KERNEL_NAMES if not callable(getattr(mod, f, None))]
        if missing:
            return SymbolicOutcome("failed", f"generated module lacks kernels {missing}")
        return SymbolicOutcome(
            "numeric-only",
            f"generated code checked numerically against the sympy definition (module stamp {str(stamp)[:12]})",
        )

    def numeric(ctx: Context) -> NumericOutcome:
        worst, where, n = kernel_errors(name, ctx)
        return NumericOutcome(worst, TOLERANCE, ctx.digits, f"{n} values; worst {where}")

    return Claim(
        cid,
        f"generated kernels of family {name!r} equal its sympy definition (mpmath, endpoints included)",
        (f"family {name} at its defaults and {OTHER_PARAMS.get(name) or 'no other'} parameters", "float64"),
        symbolic,
        numeric,
        relates=tuple(f"{name}.{k}" for k in KERNEL_NAMES),
    )


FAMILY_CLAIMS: dict[str, str] = {}
for _i, _name in enumerate(FAMILIES, start=1):
    _claim = register(_family_claim(_i, _name))
    FAMILY_CLAIMS[_name] = _claim.id


# ---------------------------------------------------------------------------------- K0
def _content_key() -> str:
    """Hash of everything the regeneration comparison depends on: the committed generated
    modules, every source file of ``lazysi.symbolic`` and ``lazysi.numeric`` and the sympy/torch
    versions. Any edit (by hand or not) changes the key and forces a full regeneration."""
    import lazysi.numeric as numeric
    import lazysi.symbolic as symbolic

    from lazysi.numeric import codegen_all

    h = hashlib.sha256()
    h.update(f"{sp.__version__} {torch.__version__} {sys.version}".encode())
    # the files actually compared, wherever regenerate_all looks for them
    gen_dir = Path(codegen_all.GENERATED_DIR)
    for filename in sorted(codegen_all.generated_sources()):
        path = gen_dir / filename
        h.update(filename.encode())
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    for pkg in (symbolic, numeric):
        root = Path(pkg.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def regeneration_check(use_cache: bool = True, allow_slow: bool = True) -> tuple[str, list[str], str]:
    """``(status, differing_files, how)`` for "the committed modules equal the generator output".

    ``status`` is ``"proved"`` (equal), ``"failed"`` (differ) or ``"skipped"`` (cache miss and
    ``allow_slow`` false). A successful comparison is cached under a key covering all inputs."""
    from lazysi.numeric.codegen_all import regenerate_all

    key = _content_key()
    marker = cache_root() / "verify" / f"regenerated-{key}.ok"
    if use_cache and cache_enabled() and marker.exists():
        return "proved", [], "equal to the generator output (cached comparison of identical sources)"
    if not allow_slow:
        return "skipped", [], "full regeneration skipped in --quick (no cached comparison for these sources)"
    changed = regenerate_all(check=True)
    if changed:
        return "failed", changed, "differs from the generator output: " + ", ".join(changed)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"key": key}))
    except OSError:
        pass
    return "proved", [], "equal to the generator output (regenerated and compared)"


def _stamp_mismatches() -> list[str]:
    """Schedule modules whose ``SOURCE_SHA256`` stamp is not the hash of the current sympy sources."""
    bad = []
    for name in FAMILIES:
        mod = module_for(name)
        expected = schedule_module_digest(family(name), bound=not getattr(mod, "PARAMS", {}))
        if getattr(mod, "SOURCE_SHA256", None) != expected:
            bad.append(f"{family_module_name(name)}.py")
    return bad


_PREFETCH: dict[str, object] = {}


def prefetch_regeneration() -> bool:
    """Start the (slow) regeneration comparison in a background process so that it overlaps
    with the other claims; K0 collects the result. Returns False when the cached result is
    already valid (nothing to do). The child runs :func:`regeneration_check` with the same
    environment (cache directory included) and prints its result as JSON."""
    import subprocess

    if _PREFETCH or os.environ.get("LAZYSI_NO_PREFETCH") == "1":
        return False
    key = _content_key()
    marker = cache_root() / "verify" / f"regenerated-{key}.ok"
    if cache_enabled() and marker.exists():
        return False
    code = (
        "import json; from lazysi.proofs.claims_kernels import regeneration_check; "
        "print(json.dumps(regeneration_check()))"
    )
    _PREFETCH["key"] = key
    _PREFETCH["proc"] = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return True


def _collect_prefetch() -> tuple[str, list[str], str] | None:
    proc = _PREFETCH.pop("proc", None)
    key = _PREFETCH.pop("key", None)
    if proc is None:
        return None
    out, err = proc.communicate()
    if proc.returncode != 0 or key != _content_key():  # crashed, or sources changed meanwhile
        return None
    try:
        status, changed, how = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return status, changed, how + " [in a background process]"


def _k0_symbolic(ctx: Context) -> SymbolicOutcome:
    pre = _collect_prefetch()
    status, _, how = pre if pre is not None else regeneration_check(allow_slow=not ctx.quick)
    if status == "skipped":
        return SymbolicOutcome("numeric-only", how)
    return SymbolicOutcome(status, how)


def _k0_numeric(ctx: Context) -> NumericOutcome:
    bad = _stamp_mismatches()
    detail = "source stamps match the sympy definitions" if not bad else "stale source stamp: " + ", ".join(bad)
    return NumericOutcome(float(len(bad)), 0.0, ctx.digits, detail)


register(
    Claim(
        "K0",
        "committed generated modules are exactly what the generator produces (`lazysi codegen --check`)",
        ("generator version and sympy definitions of this checkout",),
        _k0_symbolic,
        _k0_numeric,
        relates=tuple(f"numeric/generated/{family_module_name(n)}.py" for n in FAMILIES),
    )
)
