"""The one sampler registry and the one generate path, for EVERY registered sampler:

* ``spec.nfe(steps)`` equals the evaluations a counting provider sees (declared vs counted);
* batch invariance: sample i is bit-identical whether it is generated alone, in a small batch or
  in a large one, on every embedded model (the U-Net included) — the min-rows padding lives in the
  one generate path, so it covers the covariance-aware samplers and the peers too;
* no code outside the registry branches on a sampler's name (a source scan);
* the docs' sampler table is the registry's (docs/samplers.md);
* the import graph of the package has no cycle and the library never imports the CLI.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from lazysi.numeric.fields.providers import FieldProvider
from lazysi.numeric.models.model import Model
from lazysi.numeric.sampling.generate import CountingProvider, generate
from lazysi.numeric.sampling.registry import SAMPLERS, resolve, sampler_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("gaussian", "gaussian-full", "mnist-gmm", "mnist")
_CACHE: dict[str, Model] = {}


def _model(name: str) -> Model:
    if name not in _CACHE:
        _CACHE[name] = Model.load(name)
    return _CACHE[name]


def _usable(spec) -> bool:
    return spec.package is None or spec.method.available()


class Recorder(FieldProvider):
    """Counts calls and the rows of every call (the padding must reach at least 8 rows)."""

    def __init__(self, source: FieldProvider):
        self.source, self.schedule, self.calls, self.rows = source, source.schedule, 0, []

    def fields(self, t, x):
        self.calls += 1
        self.rows.append(x.shape[0])
        return self.source.fields(t, x)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_declared_nfe_is_the_counted_nfe(name):
    spec = SAMPLERS[name]
    if not _usable(spec):
        pytest.skip(f"{spec.package} not installed")
    m = _model("gaussian-full")
    setup = m.setup(gaussian=spec.frame.gaussian)
    for steps in (1, 2, 3, 5):
        rec = Recorder(m.provider)
        x, counted = generate(spec, rec, steps, [0, 1, 2], 4, m.shape, setup=setup)
        if spec.adaptive:  # counted only; rows at different times are evaluated one per call
            assert counted >= 1 and rec.calls >= counted and set(rec.rows) == {8} and torch.isfinite(x).all()
            continue
        assert counted == rec.calls == spec.nfe(steps), (name, steps, counted, rec.calls, spec.nfe(steps))
        assert set(rec.rows) == {8} and torch.isfinite(x).all()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_is_batch_invariant_on_every_embedded_model(name, model):
    spec = SAMPLERS[name]
    if not _usable(spec):
        pytest.skip(f"{spec.package} not installed")
    if name == "reference" and model == "mnist":
        pytest.skip("256 RK4 steps of the U-Net: covered on the exact models")
    m = _model(model)
    setup = m.setup(gaussian=spec.frame.gaussian)
    steps = 2
    full, _ = generate(spec, m.provider, steps, list(range(11)), 9, m.shape, setup=setup)
    alone, _ = generate(spec, m.provider, steps, [7], 9, m.shape, setup=setup)
    pair, _ = generate(spec, m.provider, steps, [10, 3], 9, m.shape, setup=setup)
    assert torch.equal(full[7], alone[0]), name
    assert torch.equal(full[10], pair[0]) and torch.equal(full[3], pair[1]), name


def test_registry_entries_state_what_they_are():
    for name, spec in SAMPLERS.items():
        assert spec.name == name and spec.kind in ("ode", "sde") and spec.origin in ("paper", "lazysi", "baseline", "peer")
        assert spec.frame.name in ("train", "lazy-vp", "lazy-pm", "gaussian", "gaussian-pm")
        assert (spec.grid is None) == (spec.origin == "peer") or spec.grid in spec.frame.grids
        assert spec.adaptive or (spec.nfe(4) >= 1 and spec.steps_for(spec.nfe(3)) is not None)
    assert resolve("lazy-cov-pcd@uniform").grid == "uniform" and SAMPLERS["lazy-cov-pcd"].grid == "vp"
    assert SAMPLERS["lazy-sde"].kind == "sde" and SAMPLERS["em"].kind == "sde" and SAMPLERS["lazy-ode"].kind == "ode"
    assert SAMPLERS["lazy-heun"].nfe(4) == 7 and SAMPLERS["reference"].nfe(4) == 4 * 256


def test_peer_without_its_package_names_the_extra(monkeypatch):
    import importlib.util

    from lazysi.numeric import extras

    real = importlib.util.find_spec
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    spec = SAMPLERS["unipc"]
    assert not spec.method.available()
    with pytest.raises(ImportError, match=r"sampler unipc needs the optional package diffusers: pip install 'lazysi\[diffusers\]'"):
        spec.method.require()


def test_docs_sampler_table_is_the_registry():
    text = (ROOT / "docs" / "samplers.md").read_text()
    assert sampler_table() in text, "docs/samplers.md is stale: regenerate it with python -m lazysi.numeric.sampling.registry"


_NAMES = set(SAMPLERS)


def test_no_code_outside_the_registry_branches_on_a_sampler_name():
    """A comparison or membership test against a sampler's name literal anywhere in the library or
    the CLI (outside registry.py, which defines the entries) is a string switch."""
    offenders = []
    for folder in ("numeric", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "registry.py" or "generated" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Compare):
                    for part in [node.left, *node.comparators]:
                        literals = [part] + (list(part.elts) if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [])
                        for lit in literals:
                            if isinstance(lit, ast.Constant) and isinstance(lit.value, str) and lit.value.split("@")[0] in _NAMES:
                                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} compares with {lit.value!r}")
    assert not offenders, offenders


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    top = {"numeric": "lazysi.numeric", "symbolic": "lazysi.symbolic", "proofs": "lazysi.proofs", "cli": "lazysi"}[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([top, *parts])


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for folder in ("numeric", "symbolic", "proofs", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            modules[_module_of(path)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")
                    up = up[: len(up) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != mod:
                    graph[mod].add(t)
    return graph


def test_no_import_cycles_and_the_library_never_imports_the_cli():
    graph = _import_graph()
    cli_modules = {m for m in graph if m == "lazysi" or re.fullmatch(r"lazysi\.(cli|cmd_\w+|__main__)", m)}
    for mod, deps in graph.items():
        if mod.startswith(("lazysi.numeric", "lazysi.symbolic", "lazysi.proofs")):
            assert not deps & cli_modules, f"{mod} imports the CLI: {deps & cli_modules}"
    # Tarjan-free cycle check: depth-first search with colours
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        colour[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if colour.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in colour:
                visit(d)
        stack.pop()
        colour[m] = 2

    for m in sorted(graph):
        if m not in colour:
            visit(m)


def test_import_graph_check_can_fail(tmp_path, monkeypatch):
    """The cycle check finds a planted cycle (guards the test above against a vacuous graph)."""
    graph = _import_graph()
    assert graph["lazysi.numeric.sampling.generate"] >= {"lazysi.numeric.sampling.registry"}
    assert len(graph) > 40
