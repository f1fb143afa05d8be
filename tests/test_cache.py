"""The disk cache of symbolic work (lazysi.symbolic.cache): exact, safe read-back; keys that
change with the inputs; conversions and proved identities served from it only when valid."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from lazysi.symbolic import cache as C
from lazysi.symbolic import conversion as conv_mod
from lazysi.symbolic.families import FAMILIES, family

t = sp.Symbol("t", positive=True)


def _roundtrip(e):
    text = C.dumps(e)
    back = C.expr_from_srepr(text)
    assert C.dumps(back) == text
    assert back == e
    return back


def test_roundtrip_family_expressions():
    for name in FAMILIES:
        b = family(name).bound
        for e in (b.alpha, b.beta, b.eps_star, b.lam, b.lam_dot):
            _roundtrip(e)


def test_roundtrip_special_objects():
    x = sp.Symbol("x", real=True)
    for e in (sp.Function("tau")(t), sp.Function("f", real=True)(t, x), sp.Float("0.1", 30), sp.Rational(-7, 3),
              sp.pi * sp.E + sp.oo, -sp.oo, sp.zoo, sp.nan, sp.Integer(-5), sp.Integer(0), sp.I * t,
              sp.Piecewise((t, t < 1), (1 - t, True)), sp.Abs(x - 1) + sp.atan(t) + sp.LambertW(t),
              sp.Dummy("d") + t, sp.Max(t, 1 - t), sp.AccumBounds(-1, 1), sp.atan(sp.zoo)):
        _roundtrip(e)


_atoms = st.sampled_from([t, sp.Integer(2), sp.Rational(1, 3), sp.pi, sp.Float("0.25", 20), sp.Symbol("sigma", positive=True)])


def _combine(children):
    return st.one_of(
        st.tuples(children, children).map(lambda p: p[0] + p[1]),
        st.tuples(children, children).map(lambda p: p[0] * p[1]),
        st.tuples(children, children).map(lambda p: p[0] - p[1]),
        st.tuples(children, st.integers(-3, 3)).map(lambda p: p[0] ** p[1] if p[0] != 0 or p[1] >= 0 else p[0]),
        children.map(sp.exp), children.map(sp.log), children.map(sp.sqrt), children.map(sp.sin), children.map(sp.atan),
    )


@settings(max_examples=200, deadline=None)
@given(st.recursive(_atoms, _combine, max_leaves=12))
def test_random_expressions_come_back_exactly_or_not_at_all(e):
    """The safety property: a read-back is the identical object or a refusal (a cache miss)."""
    text = C.dumps(e)
    try:
        back = C.expr_from_srepr(text)
    except C.CacheFormatError:
        return
    assert back == e and C.dumps(back) == text


@pytest.mark.parametrize("text", [
    "__import__('os').system('touch /tmp/lazysi-pwned')",
    "exp('__import__(\"os\").system(\"touch /tmp/lazysi-pwned\")')",
    "Add(Symbol('x'), 'y')",
    "Symbol('x; import os')",
    "Float('1e5; import os', precision=53)",
    "sympify('1 + 1')",
    "parse_expr('x')",
    "lambdify(Symbol('x'), Symbol('x'))",
    "Symbol('x').__class__",
    "(lambda: 1)()",
    "[Integer(1)]",
    "Integer(1) + Integer(2)",
    "Function('f')(Symbol('x'), evaluate='no')",
    "Symbol",
    "Integer(2)(Integer(3))",
    "Add(",
    "",
])
def test_rejects_anything_but_plain_srepr(text):
    with pytest.raises(C.CacheFormatError):
        C.expr_from_srepr(text)
    assert not Path("/tmp/lazysi-pwned").exists()


def test_function_assumptions_survive(tmp_path, monkeypatch):
    """Plain srepr prints Function('f', positive=True) as Function('f'), a different object;
    the cache's text form keeps the assumptions, and keys tell the two apart."""
    pos = sp.Function("f", positive=True)(t)
    plain = sp.Function("f")(t)
    assert sp.srepr(pos) == sp.srepr(plain) and pos != plain  # why plain srepr is not enough
    assert C.expr_from_srepr(C.dumps(pos)) == pos and C.expr_from_srepr(C.dumps(plain)) == plain
    assert C.Store.key(pos) != C.Store.key(plain)
    assert C.expr_from_srepr(sp.srepr(pos)) == plain  # plain srepr text rebuilds the other object


def test_put_refuses_what_it_cannot_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
    store = C.Store("facts", scope="sympy")
    matrix = sp.ImmutableMatrix([[t, 1]])  # srepr uses list literals: not in the whitelist
    assert store.put(store.key("m"), {"v": matrix}) is False
    assert store.get(store.key("m")) is None
    assert store.put(store.key("fine"), {"v": sp.Function("f", positive=True)(t)}) is True
    assert store.get(store.key("fine")) == {"v": sp.Function("f", positive=True)(t)}


def test_rejects_text_that_does_not_print_back():
    # an unevaluated form evaluates to something else: not what srepr would have printed
    with pytest.raises(C.CacheFormatError, match="reproduce"):
        C.expr_from_srepr("Add(Integer(1), Integer(2))")


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LAZYSI_NO_CACHE", raising=False)
    store = C.Store("conversions")
    monkeypatch.setattr(conv_mod, "_STORE", store)
    return store


def _derived(c):
    return {n: sp.srepr(getattr(c, n)) for n in conv_mod._DERIVED} | {"closed_form": c.closed_form}


def test_conversion_hit_equals_fresh_derivation_and_skips_the_work(fresh_store, monkeypatch):
    A, B = family("linear"), family("vp")
    first = conv_mod.Conversion(A, B)
    fresh_store.flush()
    assert fresh_store.path().exists()
    # a new process: reload from disk, and make any re-derivation impossible
    monkeypatch.setattr(conv_mod, "_STORE", C.Store("conversions"))
    monkeypatch.setattr(conv_mod, "_solve_inverse", lambda *a, **k: pytest.fail("derived again despite a cache hit"))
    monkeypatch.setattr(conv_mod.Conversion, "_check_ranges", lambda self: pytest.fail("checked again despite a cache hit"))
    second = conv_mod.Conversion(A, B)
    assert _derived(second) == _derived(first)
    assert second.closed_form and second.tau.free_symbols == {conv_mod.s}


def test_conversion_cache_keys_on_the_schedules(fresh_store, monkeypatch):
    conv_mod.Conversion(family("linear"), family("vp"))
    calls = []
    original = conv_mod._solve_inverse
    monkeypatch.setattr(conv_mod, "_solve_inverse", lambda *a, **k: calls.append(1) or original(*a, **k))
    conv_mod.Conversion(family("linear"), family("vp", sigma=2))  # a different B: must derive
    assert calls == [1]
    conv_mod.Conversion(family("linear"), family("vp"), force_root_find=True)  # other options: derive
    assert calls == [1]  # root finding does not solve for an inverse ...
    assert not conv_mod.Conversion(family("linear"), family("vp"), force_root_find=True).closed_form  # ... and is keyed apart


def test_corrupt_or_disabled_cache_recomputes(fresh_store, monkeypatch, tmp_path):
    A, B = family("linear"), family("point-mass")
    ref = _derived(conv_mod.Conversion(A, B))
    fresh_store.flush()
    path = fresh_store.path()
    data = json.loads(path.read_text())
    for entry in data.values():
        entry["tau"] = "__import__('os').getcwd()"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(conv_mod, "_STORE", C.Store("conversions"))
    assert _derived(conv_mod.Conversion(A, B)) == ref  # the bad entry is a miss, not an error
    path.write_text("{not json")
    monkeypatch.setattr(conv_mod, "_STORE", C.Store("conversions"))
    assert _derived(conv_mod.Conversion(A, B)) == ref
    monkeypatch.setenv("LAZYSI_NO_CACHE", "1")
    store = C.Store("conversions")
    monkeypatch.setattr(conv_mod, "_STORE", store)
    calls = []
    original = conv_mod._solve_inverse
    monkeypatch.setattr(conv_mod, "_solve_inverse", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert _derived(conv_mod.Conversion(A, B)) == ref and calls == [1]
    store.flush()
    assert store._new == {} or not C.cache_enabled()


def test_flush_merges_and_drops_other_fingerprints(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
    stale = tmp_path / "symbolic" / "facts-0000000000stale0000.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    a, b = C.Store("facts", scope="sympy"), C.Store("facts", scope="sympy")
    a.put(a.key("x", t), {"v": t})
    b.put(b.key("y", t), {"v": t + 1})
    a.flush()
    b.flush()  # merges with what a wrote
    c = C.Store("facts", scope="sympy")
    assert c.get(c.key("x", t)) == {"v": t} and c.get(c.key("y", t)) == {"v": t + 1}
    assert not stale.exists()
    assert c.get(c.key("x", t + 0)) == {"v": t} and c.get(c.key("x", 2 * t)) is None
    with pytest.raises(ValueError, match="scope"):
        C.Store("facts", scope="everything")


def test_proved_zero_facts_only_for_zero(tmp_path, monkeypatch):
    from lazysi.proofs import claims_conversion as cc

    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cc, "_PROVED", C.Store("proved_zero", scope="sympy"))
    zero = sp.sin(t) ** 2 + sp.cos(t) ** 2 - 1
    nonzero = sp.sin(t) ** 2 + sp.cos(t) ** 2 - 1 + sp.Rational(1, 10**6)
    assert cc._zero(zero) is True
    assert cc._zero(nonzero) is None
    cc._PROVED.flush()
    monkeypatch.setattr(cc, "_PROVED", C.Store("proved_zero", scope="sympy"))
    monkeypatch.setattr(cc, "_STRATEGIES", ())  # nothing can be proved any more: only the cache answers
    assert cc._zero(zero) is True
    assert cc._zero(nonzero) is None


def test_read_only_serves_but_stores_nothing(tmp_path, monkeypatch):
    """``lazysi verify --mutate`` runs its mutants inside ``read_only()``: hits still served,
    nothing new stored (nested blocks too), writing resumes after the block."""
    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
    store = C.Store("facts_ro", scope="sympy")
    assert store.put(store.key("a"), {"v": t + 1}) is True
    with C.read_only():
        assert store.get(store.key("a")) == {"v": t + 1}
        with C.read_only():
            assert store.put(store.key("b"), {"v": t}) is False
        assert store.put(store.key("c"), {"v": t}) is False
        calls = []
        assert store.memo(("d",), ("v",), lambda: calls.append(1) or {"v": 2 * t}) == {"v": 2 * t}
    assert store.get(store.key("b")) is None and store.get(store.key("c")) is None
    assert store.get(store.key("d")) is None and calls == [1]
    assert store.put(store.key("e"), {"v": t}) is True


def test_mp_references_round_trip_through_the_shared_store(tmp_path, monkeypatch):
    """``proofs.mpcheck`` keeps its mpmath references in a :class:`Store` (it had a JSON file of its
    own): a value read back in a fresh process equals the fresh computation to the stored digits
    (infinities, signs and exact zeros included), a hit skips the computation, and nothing is
    stored inside ``read_only()``."""
    import mpmath

    from lazysi.proofs import mpcheck

    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LAZYSI_NO_CACHE", raising=False)
    store = C.Store("mp_references", scope="sympy")
    monkeypatch.setattr(mpcheck, "_STORE", store)
    monkeypatch.setattr(mpcheck, "_MEMO", {})
    cases = [(sp.sqrt(t * (1 - t)) / t, x) for x in (0.0, 0.25, 1e-20, 1.0)] + [(sp.log(t), 0.0), (1 - 2 * t, 0.5), (-1 / t, 0.0)]
    fresh = [mpcheck.mp_value_cached(e, t, x, 30) for e, x in cases]
    assert fresh[0] == mpmath.inf and fresh[4] == -mpmath.inf and fresh[6] == -mpmath.inf and fresh[5] == 0
    store.flush()
    reread = C.Store("mp_references", scope="sympy")
    monkeypatch.setattr(mpcheck, "_STORE", reread)
    monkeypatch.setattr(mpcheck, "_MEMO", {})
    monkeypatch.setattr(mpcheck, "mp_value", lambda *a, **k: pytest.fail("a stored reference was recomputed"))
    back = [mpcheck.mp_value_cached(e, t, x, 30) for e, x in cases]
    for a, b in zip(fresh, back):
        if mpmath.isfinite(a) and a != 0:
            assert abs(a - b) <= abs(a) * mpmath.mpf(10) ** -38
        else:
            assert a == b
    with C.read_only():
        monkeypatch.undo()  # the real mp_value again, still the fresh test store
        monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path))
        monkeypatch.setattr(mpcheck, "_STORE", reread)
        mpcheck.mp_value_cached(sp.cos(t), t, 0.3, 30)
        assert reread._new == {}
