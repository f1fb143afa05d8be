"""Claims C1-C3 and C7-C15 pass (quick and at 30 digits), and a broken input makes them fail."""
from __future__ import annotations

import pytest

from lazysi.proofs.registry import REGISTRY, Context, claims, run_claim

IDS = ["C1", "C2", "C3", "C7", "C8", "C9", "C10", "C11", "C12", "C13", "C14", "C15"]


@pytest.fixture(scope="module", autouse=True)
def _registered():
    claims()


@pytest.mark.parametrize("cid", IDS)
def test_claim_passes_quick(cid):
    r = run_claim(REGISTRY[cid], Context(quick=True))
    assert r.symbolic == "proved", r.symbolic_detail
    assert r.passed, (r.numeric_max_error, r.numeric_detail)
    assert r.numeric_max_error <= 1e-25


@pytest.mark.parametrize("cid", ["C9", "C13"])
def test_claim_passes_full(cid):
    r = run_claim(REGISTRY[cid], Context())
    assert r.passed and r.digits >= 30, (r.symbolic_detail, r.numeric_detail)


def test_a_wrong_oracle_fails_the_claims(monkeypatch):
    """Perturbing the field oracle (eta_X off by 1e-12) must fail the numeric halves."""
    import lazysi.proofs.claims_fields as cf

    real = cf.mp_mixture_fields

    def wrong(*args):
        ex, ez = real(*args)
        return [v * (1 + 1e-12) for v in ex], ez

    monkeypatch.setattr(cf, "mp_mixture_fields", wrong)
    for cid in ("C1", "C9", "C12"):
        r = run_claim(REGISTRY[cid], Context(quick=True))
        assert not r.passed, cid


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_claims_hold_for_drawn_parameters(seed):
    """The claims' seeds determine sigma, mu, nu and the mixture weights/means/variances: drawing
    the seed draws those parameters."""
    for cid in ("C2", "C8", "C11", "C12", "C14", "C15"):
        r = run_claim(REGISTRY[cid], Context(quick=True, seed=seed))
        assert r.passed, (cid, seed, r.symbolic_detail, r.numeric_detail)
