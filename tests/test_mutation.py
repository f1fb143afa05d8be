"""A sample of `lazysi verify --mutate`: mutants of generated kernels and of claim inputs are caught."""
from __future__ import annotations

import pytest

from lazysi.proofs.mutation import kernel_mutants, run_mutation, symbolic_mutants


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "mutation-cache"))


def test_every_mutation_kind_is_generated():
    kinds = {m.kind for m in kernel_mutants(["linear", "vp"])}
    assert kinds == {"constant", "operator", "drop-term", "endpoint-limit"}


def test_sample_of_kernel_mutants_is_caught():
    report = run_mutation(families=["linear"], sample=25, kinds=("constant", "operator", "drop-term", "endpoint-limit"), quick=True)
    assert report.baseline_passed
    assert len(report.results) == 25
    assert report.unexplained == [], [r.as_dict() for r in report.results if not r.caught]
    assert report.score >= 0.95
    # every endpoint-limit removal in linear is caught (the plain value at the endpoint is wrong)
    assert all(r.caught for r in report.results if r.mutant.kind == "endpoint-limit")


def test_symbolic_and_peer_mutants_are_caught():
    report = run_mutation(families=["point-mass"], kinds=("symbolic",), quick=True)
    ids = {r.mutant.claim_id for r in report.results}
    assert {"K6", "P1", "P2", "P3"} <= ids
    assert report.caught == len(report.results), [r.as_dict() for r in report.results if not r.caught]


def test_equivalent_mutant_is_classified_not_counted():
    """The switch between the plain and the reflected form, `t <= 0.5` -> `t < 0.5`: both
    branches are the same function, so the mutant is equivalent within the claim tolerance."""
    vp = list(kernel_mutants(["vp"]))
    switch = [m for m in vp if "LtE -> Lt" in m.description]
    assert switch, "vp kernels no longer use a reflected form; pick another equivalent mutant"
    dev, _ = switch[0].compare()
    assert dev < 1e-11
    # a real mutant (a constant other than the 0.5 threshold) is far from equivalent
    real = next(m for m in vp if m.kind == "constant" and not m.description.startswith("0.5 ->"))
    assert real.compare()[0] > 1e-6, real.description
