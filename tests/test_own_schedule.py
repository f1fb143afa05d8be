"""A user's own schedule end to end (issue 17): emitted modules, verify --module/--schedule/
--convert/--claims, the pytest plugin, resolve_target, the worked example in docs/own-schedule.md,
and the verify table / derive wording of issue 18."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lazysi.cli import main
from lazysi.proofs import module_check
from lazysi.symbolic.schedule import ScheduleError
from lazysi.symbolic.target import TargetError, resolve_target

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "own-schedule.md"
USER_CLAIM = '''
import sympy as sp
from lazysi.proofs.registry import Claim, NumericOutcome, SymbolicOutcome, register
from lazysi.symbolic.schedule import Schedule

mine = Schedule.from_strings("0.7*sqrt(t*(1-t))", "t")

def symbolic(ctx):
    residual = sp.simplify(sp.diff(mine.alpha**2 / mine.beta + sp.Rational(49, 100) * mine.beta, mine.t))
    return SymbolicOutcome("proved" if residual == 0 else "failed", f"residual {residual}")

def numeric(ctx):
    import mpmath
    f = sp.lambdify(mine.t, mine.eps_star, "mpmath")
    with mpmath.workdps(ctx.digits):
        err = max(abs(f(mpmath.mpf(k) / 10) - mpmath.mpf("0.245")) for k in range(1, 10))
    return NumericOutcome(float(err), 10.0 ** (5 - ctx.digits), ctx.digits)

register(Claim("U1", "0.7 sqrt(t(1-t)) is lazy for N(0, 0.49 I)", ("sigma = 0.7",), symbolic, numeric))
'''
WRONG_CLAIM = USER_CLAIM.replace('"0.245"', '"0.246"').replace('"U1"', '"U9"')


def _doc_commands() -> list[str]:
    text = DOC.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith(("lazysi ", "pytest "))]


def test_worked_example_every_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_claims").mkdir()
    (tmp_path / "my_claims" / "mine.py").write_text(USER_CLAIM)
    commands = _doc_commands()
    assert len(commands) >= 9, commands
    sampled = []
    for cmd in commands:
        argv = shlex.split(cmd)
        if argv[0] == "pytest":
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv[1:]],
                                  capture_output=True, text=True, cwd=tmp_path, timeout=300)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            assert "1 passed" in proc.stdout
            continue
        rc = main(argv[1:])
        out = capsys.readouterr()
        assert rc == 0, (cmd, out.out[-2000:], out.err[-2000:])
        if argv[1] == "sample":
            sampled.append(argv)
    assert (tmp_path / "shifted_cos.py").exists() and (tmp_path / "linear_to_shifted_cos.py").exists()
    assert sampled, "the worked example samples with its schedule"
    for argv in sampled:  # every sample command wrote the one output contract
        out_dir = tmp_path / argv[argv.index("--out") + 1]
        assert {"samples.npz", "samples.png", "run.json"} <= {p.name for p in out_dir.iterdir()}


@pytest.fixture(scope="module")
def linear_module(tmp_path_factory):
    path = tmp_path_factory.mktemp("emit") / "lin.py"
    assert main(["derive", "--alpha", "1 - t", "--beta", "t", "--emit-torch", str(path)]) == 0
    return path


def test_emitted_module_passes_and_an_edit_fails_naming_the_function(linear_module, tmp_path, capsys):
    capsys.readouterr()
    assert main(["verify", "--module", str(linear_module)]) == 0
    out = capsys.readouterr().out
    assert "byte-identical" in out and "gaussian_drift" in out and "passed: 21 functions" in out
    edited = tmp_path / "edited.py"
    text = linear_module.read_text()
    i = text.index("def beta_dot(")
    edited.write_text(text[:i] + text[i:].replace("_v = ", "_v = 1.0000001*", 1))
    assert main(["verify", "--module", str(edited)]) == 1
    err = capsys.readouterr().err
    assert "function beta_dot" in err and "differs" in err


def test_module_numeric_check_names_function_and_point(linear_module, monkeypatch):
    """The mpmath half can fail: a kernel that is off by 1e-9 relative near t = 1 is caught."""
    real = module_check.compile_module

    def patched(source, name="x"):
        ns = real(source, name)
        good = ns["lam"]
        ns["lam"] = lambda t: torch.where(t > 0.99, good(t) * (1 + 1e-9), good(t))
        return ns

    monkeypatch.setattr(module_check, "compile_module", patched)
    report = module_check.check_module(linear_module)
    assert report.identical and not report.passed
    (bad,) = [f for f in report.functions if not f.passed]
    assert bad.name == "lam" and "t=" in bad.where


def test_module_without_spec_header_is_refused(tmp_path, capsys):
    path = tmp_path / "plain.py"
    path.write_text("import torch\n")
    assert main(["verify", "--module", str(path)]) == 1
    assert "lazysi-spec" in capsys.readouterr().err


def test_resolve_target_three_spellings_and_clear_errors(linear_module):
    s = resolve_target("alpha=a*cos(pi*t/2),beta=sin(pi*t/2)", {"a": "1"})
    assert s.bound.alpha.subs(s.t, 0) == 1
    assert resolve_target("point-mass", {"sigma": "0.5"}).point_mass
    from_file = resolve_target(str(linear_module))
    assert from_file.bound.alpha == 1 - from_file.t
    with pytest.raises(TargetError, match=r"--target beta: syntax error"):
        resolve_target("alpha=1-t,beta=t**")
    with pytest.raises(TargetError, match="unknown parameter"):
        resolve_target("vp", {"nope": "1"})
    with pytest.raises(TargetError, match="not alpha=EXPR,beta=EXPR, an existing file, or a family"):
        resolve_target("no-such-thing")
    with pytest.raises(ScheduleError, match=r"--target: .*alpha\(1\) = 0"):
        resolve_target("alpha=t,beta=1-t")


def test_edited_target_file_is_refused(linear_module, tmp_path):
    edited = tmp_path / "edited.py"
    edited.write_text(linear_module.read_text().replace("def alpha(", "def alpha( ", 1))
    with pytest.raises(TargetError, match="differs from what its header generates"):
        resolve_target(str(edited))


def test_verify_schedule_invalid_exits_2_naming_the_condition(capsys):
    assert main(["verify", "--schedule", "alpha=t,beta=1-t"]) == 2
    err = capsys.readouterr().err
    assert "alpha(1) = 0" in err and err.count("\n") == 1


def test_verify_schedule_point_mass_includes_c13(capsys):
    assert main(["verify", "--schedule", "alpha=sqrt(t*(1-t)),beta=t", "--quick"]) == 0
    out = capsys.readouterr().out
    for cid in ("S:C1", "S:C2", "S:C3", "S:C4", "S:C5", "S:C6", "S:C7", "S:C13"):
        assert cid in out
    assert "all 8 claims passed" in out


def test_instantiated_claims_fail_on_a_wrong_oracle(monkeypatch):
    import lazysi.proofs.instances as inst
    from lazysi.proofs.registry import Context, run_claim
    from lazysi.symbolic.schedule import Schedule

    real = inst.mp_mixture_fields
    monkeypatch.setattr(inst, "mp_mixture_fields", lambda *a: ([v * (1 + 1e-12) for v in real(*a)[0]], real(*a)[1]))
    claims = inst.schedule_claims(Schedule.from_strings("sqrt(t*(1-t))", "t")).claims
    for c in claims:
        if c.id.split(":")[1] in ("C1", "C4", "C7", "C13"):
            assert not run_claim(c, Context(quick=True)).passed, c.id


def test_user_claims_beside_ours_and_failure_named(tmp_path, capsys):
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "good.py").write_text(USER_CLAIM)
    (folder / "bad.py").write_text(WRONG_CLAIM)
    assert main(["verify", "--claims", str(folder), "--claim", "U1", "--claim", "U9"]) == 1
    out, err = capsys.readouterr()
    assert "U1" in out and "FAILED claim(s): U9" in err
    assert "other: user claims (U1, U9)" in out
    assert main(["verify", "--claims", str(tmp_path / "missing")]) == 2


def test_table_fits_100_columns_with_legend_and_plural():
    from lazysi.proofs.registry import ClaimResult
    from lazysi.proofs.verify import render_table

    r = ClaimResult("C2", "x " * 120, "proved", "", 1e-40, 1e-25, 30, "", True, 0.1)
    groups = [ClaimResult(i, "y", "proved", "", 0.0, 1.0, 30, "", True, 0.0) for i in ("K0", "P1", "EP:x", "S:C1", "U1")]
    assert max(len(line) for line in render_table([r, *groups]).splitlines()) <= 100
    text = render_table([r])
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "the 1 claim passed" in text and "claims C1-C16 of docs/MATH.md" in text
    wide = render_table([r], wide=True)
    assert any(len(line) > 200 for line in wide.splitlines())


def test_derive_wording_and_exit_status_in_help(capsys):
    assert main(["derive", "--family", "linear"]) == 0
    out = capsys.readouterr().out
    assert "proved positivity" not in out and "alpha_dot < 0 on (0,1) (symbolic: proved by sympy" in out
    assert main(["derive", "--alpha", "1-t", "--beta", "t**"]) == 2
    assert "--beta: syntax error" in capsys.readouterr().err
    assert main(["derive", "--help"]) == 0  # the CLI returns help's exit status instead of raising SystemExit
    assert "1 the schedule violates a validity condition" in capsys.readouterr().out


def test_no_import_cycles_named_in_issue_14():
    code = (
        "import sys; import lazysi.symbolic.fields; assert 'lazysi.symbolic.lazy' not in sys.modules, 'fields->lazy'; "
        "import lazysi.proofs.claims_peers; assert 'lazysi.proofs.mutation' not in sys.modules, 'peers->mutation'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_pytest_plugin_conftest_one_liner(tmp_path):
    (tmp_path / "my_claims").mkdir()
    (tmp_path / "my_claims" / "good.py").write_text(USER_CLAIM)
    (tmp_path / "my_claims" / "bad.py").write_text(WRONG_CLAIM)
    (tmp_path / "conftest.py").write_text('from lazysi.proofs.pytest_plugin import collect_claims; collect_claims("my_claims/")\n')
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 failed, 1 passed" in proc.stdout and "claim U9 failed" in proc.stdout


def test_entry_point_group_registers_claims_and_reports_broken_ones(tmp_path, monkeypatch):
    import importlib.metadata as md

    from lazysi.proofs import registry

    (tmp_path / "thirdparty_claims.py").write_text(
        USER_CLAIM.replace('register(Claim("U1"', 'CLAIM = (Claim("T1"') + "\n\ndef claims():\n    return [CLAIM]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [md.EntryPoint("third", "thirdparty_claims:claims", registry.ENTRY_POINT_GROUP),
           md.EntryPoint("broken", "no_such_module_xyz", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(md, "entry_points", lambda group=None: [e for e in eps if e.group == group])
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", [])
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    assert registry.load_entry_points() == ["third", "broken"]
    assert "T1" in registry.REGISTRY and "EP:broken" in registry.REGISTRY
    r = registry.run_claim(registry.REGISTRY["EP:broken"], registry.Context())
    assert not r.passed and "ModuleNotFoundError" in r.symbolic_detail
    assert registry.run_claim(registry.REGISTRY["T1"], registry.Context()).passed


def test_other_generator_version_is_named(linear_module, tmp_path):
    old = tmp_path / "old.py"
    old.write_text(linear_module.read_text().replace("(version 2)", "(version 1)", 1))
    report = module_check.check_module(old)
    assert not report.passed and "generator version 1" in report.difference


def test_one_loader_rule_committed_or_runtime():
    """numeric.loader: the committed module serves a built-in family when it takes the parameters
    (or they are at their defaults); anything else is generated at run time, once per definition."""
    from lazysi.numeric.fields.convert import NumericConversion
    from lazysi.numeric.fields.gaussian import GaussianFieldKernels
    from lazysi.numeric.generated import fields_vp, linear, polynomial, vp
    from lazysi.numeric.fields.schedule import NumericSchedule
    from lazysi.symbolic.families import family
    from lazysi.symbolic.schedule import Schedule

    assert NumericSchedule(family("vp", sigma=0.7))._ns is vars(vp)  # takes sigma as an argument
    assert NumericSchedule(family("vp", sigma=0.7))._kw == {"sigma": 0.7}
    assert NumericSchedule(family("polynomial"))._ns is vars(polynomial)  # bound module at its defaults
    other = NumericSchedule(family("polynomial", p=3))
    assert other._ns is not vars(polynomial) and other._ns is NumericSchedule(family("polynomial", p=3))._ns
    tt = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(other.alpha(tt), (1 - tt) ** 3, rtol=1e-15, atol=0)
    renamed = NumericSchedule(Schedule("linear", family("linear").alpha, family("linear").beta))
    assert renamed._ns is vars(linear)  # the family's own definition
    assert NumericSchedule(Schedule.from_strings("1 - t", "t"))._ns is not vars(linear)  # a user schedule: run time
    assert GaussianFieldKernels(NumericSchedule(family("vp", sigma=0.7)))._ns is vars(fields_vp)
    assert NumericConversion(family("linear"), family("vp")).closed_form
    conv = NumericConversion(family("linear"), family("vp", sigma=0.7))
    from lazysi.numeric.generated import convert_linear__vp

    assert conv._ns is not vars(convert_linear__vp)  # conversion modules take no parameters


def test_nu_lazy_module_with_fractional_powers_passes(tmp_path, capsys):
    """alpha = 0.7 sqrt(t^(3/2) - t^2) (the nu = 3 lazy schedule): t^(3/2) underflows at t = 1e-300
    and 1 - sqrt(t) cancels near t = 1 unless the generator rewrites them (codegen._stable_powers);
    the module check measures both ends at 30 digits."""
    path = tmp_path / "nu3.py"
    assert main(["derive", "--lazy", "sde", "--nu", "3", "--sigma", "0.7", "--emit-torch", str(path), "--json"]) == 0
    capsys.readouterr()
    assert main(["verify", "--module", str(path)]) == 0, capsys.readouterr().err
    assert "expm1" in path.read_text()
