"""`lazysi verify`: library call, CLI contract, and proof that hand-edited kernels fail it."""
from __future__ import annotations

import json
import math

import pytest
import torch

from lazysi.cli import main
from lazysi.proofs import registry
from lazysi.proofs.registry import Claim, NumericOutcome, SymbolicOutcome
from lazysi.proofs.verify import render_json, render_markdown, render_table, verify

REQUIRED = {"id", "statement", "symbolic", "numeric_max_error", "digits", "passed", "seconds"}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSI_CACHE_DIR", str(tmp_path / "cache"))


def test_library_call_runs_selected_claims():
    results = verify(["K1", "P3"], digits=30, quick=True)
    assert [r.id for r in results] == ["K1", "P3"]
    for r in results:
        assert r.passed, r
        assert r.digits == 30 and r.symbolic in ("proved", "numeric-only")
        assert 0 <= r.numeric_max_error <= r.tolerance
    assert results[1].symbolic == "proved"
    rows = json.loads(render_json(results))
    assert all(REQUIRED <= set(row) for row in rows)
    assert "K1" in render_table(results) and "| P3 |" in render_markdown(results)


def test_bad_digits_rejected():
    with pytest.raises(ValueError, match="digits"):
        verify(["K1"], digits=10)


def test_cli_json_report_and_out(tmp_path, capsys):
    report = tmp_path / "r.md"
    out = tmp_path / "out"
    code = main(["verify", "--claim", "K1", "--claim", "P2", "--quick", "--json", "--report", str(report), "--out", str(out)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["K1", "P2"] and all(r["passed"] is True for r in rows)
    assert all(REQUIRED <= set(r) for r in rows)
    assert "| K1 |" in report.read_text()
    opts = json.loads((out / "options.json").read_text())
    assert opts["claims"] == ["K1", "P2"] and opts["quick"] is True and opts["digits"] == 30
    assert json.loads((out / "results.json").read_text())[0]["id"] == "K1"


def test_cli_unknown_claim_is_usage_error(capsys):
    assert main(["verify", "--claim", "NOPE"]) == 2
    assert "NOPE" in capsys.readouterr().err


def test_failing_claim_exit_1_and_named(capsys):
    bad = Claim(
        "Z99",
        "deliberately false: 1 = 2",
        (),
        lambda ctx: SymbolicOutcome("failed", "residual -1"),
        lambda ctx: NumericOutcome(1.0, 1e-20, ctx.digits),
    )
    registry.register(bad)
    try:
        assert main(["verify", "--claim", "Z99", "--claim", "K1", "--quick"]) == 1
        cap = capsys.readouterr()
        assert "Z99" in cap.err and "FAILED" in cap.err and "residual -1" in cap.out
        [r] = [r for r in verify(["Z99"], quick=True)]
        assert not r.passed and r.numeric_max_error == 1.0
    finally:
        registry.REGISTRY.pop("Z99")


def test_exception_in_a_claim_is_a_named_failure():
    def boom(ctx):
        raise ZeroDivisionError("division by zero in the numeric half")

    registry.register(Claim("Z98", "raises", (), lambda ctx: SymbolicOutcome("proved"), boom))
    try:
        [r] = verify(["Z98"], quick=True)
        assert not r.passed and math.isinf(r.numeric_max_error) and "ZeroDivisionError" in r.numeric_detail
    finally:
        registry.REGISTRY.pop("Z98")


def _hand_edit(monkeypatch, family_file: str, old: str, new: str):
    """Compile an edited copy of a committed generated module and substitute its functions."""
    import importlib

    from lazysi.numeric.fields.schedule import GENERATED_DIR
    from lazysi.symbolic.codegen import compile_module

    src = (GENERATED_DIR / family_file).read_text()
    assert src.count(old) >= 1, f"{old!r} not in {family_file}"
    ns = compile_module(src.replace(old, new, 1), "hand_edited")
    module = importlib.import_module(f"lazysi.numeric.generated.{family_file[:-3]}")
    for name in module.FUNCTIONS:
        monkeypatch.setattr(module, name, ns[name])


def test_hand_edited_kernel_makes_verify_exit_1_naming_the_claim(monkeypatch, capsys):
    # vp's alpha: change pi/2 = 1.5707963267948966 to 1.5707 (a plausible hand edit)
    _hand_edit(monkeypatch, "vp.py", "1.5707963267948966", "1.5707")
    assert main(["verify", "--claim", "K2", "--quick"]) == 1
    cap = capsys.readouterr()
    assert "K2" in cap.err and "FAIL" in cap.out


def test_removed_endpoint_limit_is_caught(monkeypatch):
    # linear alpha_dot_over_alpha at t = 1 is -inf; plain 1/(t - 1) gives +inf there
    _hand_edit(monkeypatch, "linear.py", "    _v = torch.where(t == 1.0, -math.inf, _v)\n", "")
    [r] = verify(["K1"], quick=True)
    assert not r.passed and "t=1.0" in r.numeric_detail


def test_committed_module_edit_fails_K0(monkeypatch, tmp_path):
    """K0 compares the files on disk with the generator (restricted to one module for speed)."""
    from lazysi.numeric import codegen_all
    from lazysi.numeric.fields.schedule import GENERATED_DIR, render_schedule_module
    from lazysi.symbolic.families import family

    gen = tmp_path / "generated"
    gen.mkdir()
    text = (GENERATED_DIR / "linear.py").read_text()
    (gen / "linear.py").write_text(text)
    monkeypatch.setattr(codegen_all, "GENERATED_DIR", gen)
    monkeypatch.setattr(codegen_all, "generated_sources", lambda: {"linear.py": lambda: render_schedule_module(family("linear"))})
    [ok] = verify(["K0"])
    assert ok.symbolic == "proved", ok
    (gen / "linear.py").write_text(text.replace("(1.0/t)", "(1.0/(t + 1e-12))", 1))
    [r] = verify(["K0"])
    assert not r.passed and r.symbolic == "failed" and "linear.py" in r.symbolic_detail


def test_kernel_claim_measures_float64_kernels():
    from lazysi.proofs.claims_kernels import kernel_errors
    from lazysi.proofs.registry import Context

    worst, where, n = kernel_errors("point-mass", Context(digits=50, quick=False))
    assert n > 300 and worst < 1e-13, where
    assert torch.get_default_dtype() == torch.float32  # nothing changed global torch state
