"""Mutation check of the claims harness (``lazysi verify --mutate``).

A harness that cannot fail proves nothing. This module perturbs what the claims check and
confirms that the relevant claim then fails:

* **kernel mutants** -- the committed generated torch modules (``numeric/generated/*.py``) are
  parsed (``ast``), and for every generated function one mutant is made per site:
  ``constant`` (a float literal scaled by 1 + 1e-3), ``operator`` (``+``<->``-``, ``*``<->``/``,
  a unary minus removed, a comparison ``<=``->``<`` / ``==``->``!=``), ``drop-term`` (``a + b`` ->
  ``a`` and -> ``b``) and ``endpoint-limit`` (one ``_v = torch.where(t == end, limit, _v)`` line
  removed). Each mutant module is compiled with :func:`lazysi.symbolic.codegen.compile_module`,
  its function is substituted into the imported generated module, and the family's kernel claim
  (``K1`` ...) is run through :func:`lazysi.proofs.registry.run_claim`.
* **symbolic mutants** -- the sympy *inputs* of a claim are perturbed: a family's alpha or
  beta (a constant changed by 1e-3 relative, a factor ``1 + 1e-3 t (1 - t)`` that keeps the
  endpoints), and each peer formula of ``claims_peers`` (see ``PEER_MUTANTS`` there).

A surviving mutant is then classified: it is *equivalent* when it computes the same function
as the original within the claim's tolerance on a dense grid (20001 uniform points, 120
geometric points towards each end, both endpoints, every parameter point of the claim) --
no value check can tell such a mutant apart; otherwise it is an *unexplained survivor* (the
claim's grid misses a difference), which makes ``lazysi verify --mutate`` exit 1.

Mutation score = caught / (mutants - equivalent); the raw caught / mutants is reported too.
"""
from __future__ import annotations

import ast
import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from lazysi.symbolic.codegen import compile_module

from .mutant import MUTANT_FACTORIES, Mutant
from .registry import REGISTRY, Context, run_claim

__all__ = [
    "Mutant",
    "MutantResult",
    "MutationReport",
    "kernel_mutants",
    "symbolic_mutants",
    "run_mutation",
    "render_mutation_table",
    "render_mutation_markdown",
]

KINDS = ("constant", "operator", "drop-term", "endpoint-limit", "symbolic")


@dataclass(frozen=True)
class MutantResult:
    mutant: Mutant
    caught: bool
    how: str
    equivalent: bool = False
    equivalence: str = ""

    def as_dict(self) -> dict:
        m = self.mutant
        return {
            "id": m.id,
            "kind": m.kind,
            "claim": m.claim_id,
            "target": m.target,
            "description": m.description,
            "caught": self.caught,
            "how": self.how,
            "equivalent": self.equivalent,
            "equivalence": self.equivalence,
        }


@dataclass
class MutationReport:
    results: list[MutantResult]
    baseline: dict[str, bool]
    skipped_families: list[str]
    seconds: float
    digits: int

    @property
    def baseline_passed(self) -> bool:
        return all(self.baseline.values()) if self.baseline else False

    @property
    def caught(self) -> int:
        return sum(r.caught for r in self.results)

    @property
    def equivalent(self) -> int:
        return sum(r.equivalent for r in self.results)

    @property
    def unexplained(self) -> list[Mutant]:
        return [r.mutant for r in self.results if not r.caught and not r.equivalent]

    @property
    def score(self) -> float:
        """caught / (mutants - equivalent mutants)."""
        n = len(self.results) - self.equivalent
        return self.caught / n if n else 1.0

    @property
    def raw_score(self) -> float:
        return self.caught / len(self.results) if self.results else 1.0

    def by_kind(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            d = out.setdefault(r.mutant.kind, {"mutants": 0, "caught": 0, "equivalent": 0})
            d["mutants"] += 1
            d["caught"] += r.caught
            d["equivalent"] += r.equivalent
        return out

    def as_dict(self) -> dict:
        return {
            "mutants": len(self.results),
            "caught": self.caught,
            "equivalent": self.equivalent,
            "unexplained_survivors": [m.id for m in self.unexplained],
            "score": self.score,
            "raw_score": self.raw_score,
            "by_kind": self.by_kind(),
            "baseline": self.baseline,
            "skipped_families": self.skipped_families,
            "digits": self.digits,
            "seconds": self.seconds,
            "survivors": [r.as_dict() for r in self.results if not r.caught],
        }


# ------------------------------------------------------------------------------ kernel mutants
_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_CMP_SWAP = {ast.LtE: ast.Lt, ast.Eq: ast.NotEq, ast.Lt: ast.LtE, ast.GtE: ast.Gt, ast.Gt: ast.GtE}


def _is_endpoint_guard(stmt: ast.stmt) -> bool:
    """``_v = torch.where(t == <end>, <limit>, _v)``."""
    if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
        return False
    call = stmt.value
    if ast.unparse(call.func) != "torch.where" or len(call.args) != 3:
        return False
    cond = call.args[0]
    return (
        isinstance(cond, ast.Compare)
        and len(cond.ops) == 1
        and isinstance(cond.ops[0], ast.Eq)
        and isinstance(cond.comparators[0], ast.Constant)
        and ast.unparse(call.args[2]) == "_v"
    )


def _sites(fn: ast.FunctionDef) -> list[tuple[str, tuple, str]]:
    """Mutation sites of one generated function: ``(kind, locator, description)``. A locator
    is ``(node_index_in_walk, variant)`` or ``("stmt", body_index)``."""
    sites: list[tuple[str, tuple, str]] = []
    body_start = 1 if (fn.body and isinstance(fn.body[0], ast.Expr)) else 0  # skip the docstring
    for si, stmt in enumerate(fn.body[body_start:], start=body_start):
        if _is_endpoint_guard(stmt):
            sites.append(("endpoint-limit", ("stmt", si), f"remove `{ast.unparse(stmt)}`"))
    nodes = _walk_body(fn, body_start)
    dead = _dead_nodes(fn, body_start)
    for ni, node in enumerate(nodes):
        note = f" [dead code: `{dead[id(node)]}` is never read]" if id(node) in dead else ""
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value != 0.0:
            sites.append(("constant", (ni, 0), f"{node.value!r} -> {node.value * (1 + 1e-3)!r}{note}"))
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP:
            new = _SWAP[type(node.op)]
            sites.append(("operator", (ni, 0), f"`{_clip(ast.unparse(node))}`: {type(node.op).__name__} -> {new.__name__}{note}"))
            if isinstance(node.op, (ast.Add, ast.Sub)):
                sites.append(("drop-term", (ni, 1), f"`{_clip(ast.unparse(node))}` -> keep left term only{note}"))
                sites.append(("drop-term", (ni, 2), f"`{_clip(ast.unparse(node))}` -> keep right term only{note}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sites.append(("operator", (ni, 0), f"`{_clip(ast.unparse(node))}`: unary minus removed{note}"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_SWAP:
            new = _CMP_SWAP[type(node.ops[0])]
            sites.append(("operator", (ni, 0), f"`{ast.unparse(node)}`: {type(node.ops[0]).__name__} -> {new.__name__}"))
    return sites


def _dead_nodes(fn: ast.FunctionDef, body_start: int) -> dict[int, str]:
    """``id(node) -> name`` for every node inside an assignment ``_xN = ...`` whose target is
    never read (dead temporaries left by the generator): mutating them cannot change anything."""
    stmts = [st for st in fn.body[body_start:]]
    dead_names: set[str] = set()
    while True:  # transitively: a temporary read only by dead temporaries is dead too
        live = [st for st in stmts if not (isinstance(st, ast.Assign) and len(st.targets) == 1
                and isinstance(st.targets[0], ast.Name) and st.targets[0].id in dead_names)]
        loads = {n.id for st in live for n in ast.walk(st) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        new = {st.targets[0].id for st in live if isinstance(st, ast.Assign) and len(st.targets) == 1
               and isinstance(st.targets[0], ast.Name) and st.targets[0].id.startswith("_x") and st.targets[0].id not in loads}
        if not new:
            break
        dead_names |= new
    out: dict[int, str] = {}
    for stmt in stmts:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                and stmt.targets[0].id in dead_names:
            for n in ast.walk(stmt.value):
                out[id(n)] = stmt.targets[0].id
    return out


def _clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _walk_body(fn: ast.FunctionDef, body_start: int) -> list[ast.AST]:
    """Nodes of the function body in a deterministic order (parameter conversions excluded)."""
    out: list[ast.AST] = []
    for stmt in fn.body[body_start:]:
        if isinstance(stmt, ast.Assign) and ast.unparse(stmt.value).startswith("torch.as_tensor("):
            continue  # `shift = torch.as_tensor(shift, ...)`: plumbing, not maths
        out.extend(ast.walk(stmt))
    return out


def _mutate_function(fn: ast.FunctionDef, kind: str, loc: tuple) -> ast.FunctionDef:
    fn = copy.deepcopy(fn)
    body_start = 1 if (fn.body and isinstance(fn.body[0], ast.Expr)) else 0
    if loc[0] == "stmt":
        del fn.body[loc[1]]
        return fn
    ni, variant = loc
    nodes = _walk_body(fn, body_start)
    node = nodes[ni]
    if kind == "constant":
        node.value = node.value * (1 + 1e-3)
    elif isinstance(node, ast.BinOp) and variant == 0:
        node.op = _SWAP[type(node.op)]()
    elif isinstance(node, ast.BinOp):
        keep = node.left if variant == 1 else node.right
        _replace(fn, node, keep)
    elif isinstance(node, ast.UnaryOp):
        _replace(fn, node, node.operand)
    elif isinstance(node, ast.Compare):
        node.ops = [_CMP_SWAP[type(node.ops[0])]()]
    else:  # pragma: no cover - sites and mutations are generated together
        raise AssertionError(f"no mutation {kind} for {ast.dump(node)}")
    return fn


def _replace(root: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(root):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise AssertionError("node to replace not found")


def _dense_grid() -> torch.Tensor:
    near = [10.0 ** (-k / 4) for k in range(4, 4 * 300 + 1, 10)]  # 1e-1 ... 1e-300, 120 points
    pts = set(torch.linspace(0, 1, 20001, dtype=torch.float64).tolist()) | set(near) | {1.0 - h for h in near}
    return torch.tensor(sorted(pts), dtype=torch.float64)


def _deviation(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """Worst relative deviation of ``b`` from ``a`` (the original), same conventions as the
    claims: infinities must match, exact zeros measured against the median magnitude."""
    both_nan = torch.isnan(a) & torch.isnan(b)
    inf_a = torch.isinf(a)
    bad = (inf_a & (a != b)) | (torch.isnan(a) ^ torch.isnan(b)) | (~inf_a & ~torch.isnan(a) & ~torch.isfinite(b))
    if bad.any():
        return math.inf, int(bad.nonzero()[0])
    finite = torch.isfinite(a) & ~both_nan
    if not finite.any():
        return 0.0, -1
    mags = a[finite].abs()
    scale = float(mags.median())
    # values within float rounding of zero (|a| < 1e-12 x typical magnitude) are compared absolutely
    denom = torch.where(a.abs() > scale * 1e-12, a.abs(), torch.full_like(a, max(scale, 1e-300)))
    dev = torch.where(finite, (b - a).abs() / denom.clamp_min(1e-300), torch.zeros_like(a))
    i = int(dev.argmax())
    return float(dev[i]), i


def kernel_mutants(families: list[str] | None = None) -> Iterator[Mutant]:
    """Every kernel mutant of the committed generated modules of ``families`` (default: all)."""
    from lazysi.numeric.fields.schedule import KERNEL_NAMES, NumericSchedule
    from lazysi.symbolic.families import FAMILIES, family

    from .claims_kernels import FAMILY_CLAIMS, _parameter_points, module_for

    for name in families or list(FAMILIES):
        module = module_for(name)
        source = open(module.__file__).read()
        tree = ast.parse(source)
        funcs = {n.name: (i, n) for i, n in enumerate(tree.body) if isinstance(n, ast.FunctionDef)}
        for fname in KERNEL_NAMES:
            if fname not in funcs:
                continue
            index, fn = funcs[fname]
            for k, (kind, loc, desc) in enumerate(_sites(fn)):
                mid = f"{name}.{fname}#{k}"

                def make(index=index, fn=fn, kind=kind, loc=loc, fname=fname, module=module, tree=tree, mid=mid):
                    mutated = _mutate_function(fn, kind, loc)
                    mtree = copy.copy(tree)
                    mtree.body = list(tree.body)
                    mtree.body[index] = mutated
                    ns = compile_module(ast.unparse(ast.fix_missing_locations(mtree)), f"mutant_{mid}")
                    return ns[fname]

                def apply(make=make, module=module, fname=fname):
                    original = getattr(module, fname)
                    setattr(module, fname, make())

                    def undo():
                        setattr(module, fname, original)

                    return undo

                def compare(make=make, module=module, fname=fname, name=name):
                    mutant_fn = make()
                    original = getattr(module, fname)
                    grid = _dense_grid()
                    worst, where = 0.0, ""
                    for values in _parameter_points(name, quick=False):
                        ns = NumericSchedule(family(name, **dict(values)))
                        kw = ns._kw
                        with torch.no_grad():
                            a = original(grid, **kw)
                            try:
                                b = mutant_fn(grid, **kw)
                            except Exception as exc:  # noqa: BLE001 - a crashing mutant is not equivalent
                                return math.inf, f"raises {type(exc).__name__}"
                        if b.shape != a.shape:
                            return math.inf, f"shape {tuple(b.shape)}"
                        dev, i = _deviation(a, b)
                        if dev > worst:
                            worst = dev
                            where = f"t={float(grid[i])!r}{' ' + str(dict(values)) if values else ''}: {float(a[i])!r} -> {float(b[i])!r}"
                    return worst, where

                yield Mutant(mid, kind, FAMILY_CLAIMS[name], f"{module.__name__}.{fname}", desc, apply, compare)


# ---------------------------------------------------------------------------- symbolic mutants
def symbolic_mutants(families: list[str] | None = None) -> Iterator[Mutant]:
    """Perturbed sympy inputs: family definitions (checked by the family's K claim) and the
    peers' formulas (checked by the P claims)."""
    import sympy as sp

    from lazysi.symbolic import families as fam_mod
    from lazysi.symbolic.families import FAMILIES, Family
    from lazysi.symbolic.schedule import t

    from . import claims_kernels
    from .claims_kernels import FAMILY_CLAIMS

    def nudge_constant(expr: sp.Expr) -> sp.Expr | None:
        """Scale the first non-trivial number atom (not +-1, 0) by 1 + 1e-3."""
        for atom in sorted(expr.atoms(sp.Number, sp.NumberSymbol), key=sp.default_sort_key):
            if atom in (sp.S.One, sp.S.NegativeOne, sp.S.Zero):
                continue
            return expr.xreplace({atom: atom * sp.Rational(1001, 1000)})
        return None

    perturbations: list[tuple[str, str, Callable[[sp.Expr], sp.Expr | None]]] = [
        ("alpha", "a constant scaled by 1.001", nudge_constant),
        ("beta", "a constant scaled by 1.001", nudge_constant),
        ("alpha", "times 1 + 1e-3 t (1 - t) (endpoints kept)", lambda e: e * (1 + sp.Rational(1, 1000) * t * (1 - t))),
        ("beta", "times 1 + 1e-3 t (1 - t) (endpoints kept)", lambda e: e * (1 + sp.Rational(1, 1000) * t * (1 - t))),
    ]
    for name in families or list(FAMILIES):
        original = FAMILIES[name]
        for which, desc, perturb in perturbations:
            a, b, ds = original.build({p.name: p.symbol for p in original.params})
            target = a if which == "alpha" else b
            new = perturb(target)
            if new is None or new == target:
                continue

            def apply(name=name, original=original, which=which, perturb=perturb):
                def build(p, original=original):
                    a, b, ds = original.build(p)
                    return (perturb(a), b, ds) if which == "alpha" else (a, perturb(b), ds)

                fam_mod.FAMILIES[name] = Family(original.name, original.description, original.params, build)
                claims_kernels._bound_kernels.cache_clear()
                claims_kernels._reference.cache_clear()

                def undo():
                    fam_mod.FAMILIES[name] = original
                    claims_kernels._bound_kernels.cache_clear()
                    claims_kernels._reference.cache_clear()

                return undo

            yield Mutant(f"{name}.{which}~{'constant' if 'constant' in desc else 'factor'}", "symbolic",
                         FAMILY_CLAIMS[name], f"family {name} {which}", f"{which} {desc}", apply)
    from .registry import claims

    claims()  # imports the claim modules, which register their mutant factories
    for factory in list(MUTANT_FACTORIES):
        yield from factory()


# --------------------------------------------------------------------------------- the driver
def _family_of(claim_id: str) -> str | None:
    from .claims_kernels import FAMILY_CLAIMS

    for name, cid in FAMILY_CLAIMS.items():
        if cid == claim_id:
            return name
    return None


def run_mutation(
    digits: int = 30,
    quick: bool = False,
    sample: int | None = None,
    families: list[str] | None = None,
    kinds: tuple[str, ...] = KINDS,
    progress: bool = False,
) -> MutationReport:
    """Run the mutation check. Families whose kernel claim fails *unmutated* are skipped (every
    mutant would be 'caught' for free). ``sample`` keeps N mutants spread evenly over the list."""
    from lazysi.symbolic.families import FAMILIES

    from .claims_kernels import FAMILY_CLAIMS

    start = time.perf_counter()
    ctx = Context(digits=digits, quick=quick)
    fams = families or list(FAMILIES)
    baseline: dict[str, bool] = {}
    for name in fams:
        baseline[FAMILY_CLAIMS[name]] = run_claim(REGISTRY[FAMILY_CLAIMS[name]], ctx).passed
    skipped = [n for n in fams if not baseline[FAMILY_CLAIMS[n]]]
    live = [n for n in fams if n not in skipped]
    mutants = []
    if set(kinds) - {"symbolic"}:
        mutants += [m for m in kernel_mutants(live) if m.kind in kinds]
    if "symbolic" in kinds:
        for m in symbolic_mutants(live):
            fam = _family_of(m.claim_id)
            if fam is None and m.claim_id in REGISTRY and m.claim_id not in baseline:
                baseline[m.claim_id] = run_claim(REGISTRY[m.claim_id], ctx).passed
            if baseline.get(m.claim_id, False):
                mutants.append(m)
    if sample is not None and sample < len(mutants):
        step = len(mutants) / sample
        mutants = [mutants[int(i * step)] for i in range(sample)]
    from lazysi.symbolic.cache import read_only

    results = []
    for i, m in enumerate(mutants, start=1):
        undo = m.apply()
        try:
            with read_only():  # a mutant's derivations are not worth keeping on disk
                r = run_claim(REGISTRY[m.claim_id], ctx)
        finally:
            undo()
        if r.passed:
            equivalent, why = False, "no comparison available"
            if m.compare is not None:
                dev, where = m.compare()
                from .claims_kernels import TOLERANCE

                equivalent = dev <= TOLERANCE
                why = (f"equivalent: worst deviation {dev:.1e} <= {TOLERANCE:.0e} on the dense grid"
                       if equivalent else f"NOT equivalent: deviation {dev:.1e} at {where}")
            results.append(MutantResult(m, False, "claim passed", equivalent, why))
        else:
            how = r.symbolic_detail if r.symbolic == "failed" else f"numeric error {r.numeric_max_error:.1e}: {r.numeric_detail}"
            results.append(MutantResult(m, True, how[:300]))
        if progress and (i % 50 == 0 or i == len(mutants)):
            print(f"[mutate] {i}/{len(mutants)} mutants, {sum(x.caught for x in results)} caught", file=sys.stderr, flush=True)
    return MutationReport(results, baseline, skipped, time.perf_counter() - start, digits)


# ------------------------------------------------------------------------------------ output
def render_mutation_table(report: MutationReport) -> str:
    lines = [
        f"mutation score {100 * report.score:.1f}% (caught {report.caught} of {len(report.results) - report.equivalent} "
        f"non-equivalent mutants; {report.equivalent} equivalent; raw {100 * report.raw_score:.1f}% of {len(report.results)}) "
        f"in {report.seconds:.1f}s",
        "",
        f"{'kind':<15} {'mutants':>8} {'caught':>7} {'equiv.':>7}",
    ]
    for kind, d in sorted(report.by_kind().items()):
        lines.append(f"{kind:<15} {d['mutants']:>8} {d['caught']:>7} {d['equivalent']:>7}")
    if report.skipped_families:
        lines.append("")
        lines.append("skipped (their kernel claim fails unmutated): " + ", ".join(report.skipped_families))
    survivors = [r for r in report.results if not r.caught]
    if survivors:
        lines += ["", "survivors:"]
        for r in survivors:
            lines.append(f"  {r.mutant.id:<32} {r.mutant.kind:<15} {r.mutant.description} -- {r.equivalence}")
    return "\n".join(lines)


def render_mutation_markdown(report: MutationReport, options: dict | None = None) -> str:
    lines = ["# lazysi verify --mutate", "", "```", render_mutation_table(report), "```", ""]
    if options:
        lines.append("Options: " + ", ".join(f"`{k}={v}`" for k, v in options.items()))
    return "\n".join(lines) + "\n"
