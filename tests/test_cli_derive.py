"""``lazysi derive``: the JSON report, safe handling of malicious expressions, custom schedules.

Most tests call ``lazysi.cli.main`` in-process (fast); one runs the installed entry point in a
subprocess to check the real exit status and that nothing is executed.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from lazysi.cli import main
from lazysi.symbolic.expr import time_symbol

T = time_symbol("t")


def derive_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["derive", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def trusted(text: str) -> sp.Expr:
    """Parse *our own* JSON output (trusted, not user input) back into sympy."""
    return parse_expr(text, local_dict={"t": T})


def test_point_mass_report(capsys):
    code, out = derive_json(capsys, "--family", "point-mass", "--param", "sigma=0.5")
    assert code == 0
    assert out["point_mass"] is True and out["valid"] is True
    for key in ("alpha", "beta", "alpha_dot", "beta_dot", "lam", "eps_star"):
        assert isinstance(out[key], str) and trusted(out[key]).free_symbols <= {T}
    eps, beta_dot = trusted(out["eps_star"]), trusted(out["beta_dot"])
    sigma = 0.5
    for tv in (0.05, 0.3, 0.5, 0.77, 0.999):
        want = sigma**2 * float(beta_dot.subs(T, tv)) / 2
        assert float(eps.subs(T, tv)) == pytest.approx(want, rel=1e-14)
    # the strings are the derivatives of each other (not just any expressions)
    alpha = trusted(out["alpha"])
    assert sp.simplify(sp.diff(alpha, T) - trusted(out["alpha_dot"])) == 0
    assert {c["how"] for c in out["conditions"]} <= {"symbolic", "numeric"}
    assert all(set(c) >= {"name", "holds", "how"} for c in out["conditions"])


def test_custom_vp_expressions_work(capsys):
    code, out = derive_json(capsys, "--alpha", "cos(pi*t/2)", "--beta", "sin(pi*t/2)")
    assert code == 0 and out["valid"] is True and out["point_mass"] is False
    alpha_dot = trusted(out["alpha_dot"])
    assert sp.simplify(alpha_dot + sp.pi * sp.sin(sp.pi * T / 2) / 2) == 0
    lam = trusted(out["lam"])
    assert float(lam.subs(T, 0.5)) == pytest.approx(0.0, abs=1e-15)


def test_invalid_schedule_is_reported_with_status_1(capsys):
    code = main(["derive", "--alpha", "t", "--beta", "1 - t"])
    out = capsys.readouterr().out
    assert code == 1
    assert "valid      = False" in out and "[FAIL] alpha(1) = 0" in out


PAYLOADS = [
    "__import__('os').system('touch {f}')",
    "__import__('pathlib').Path('{f}').touch()",
    "open('{f}', 'w').close() or t",
    "t.__class__.__init__.__globals__['__builtins__']['open']('{f}', 'w')",
    "(lambda: open('{f}', 'w'))()",
    "[open('{f}', 'w') for _ in 'x']",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_malicious_alpha_exits_2_without_executing(payload, tmp_path, capsys):
    sentinel = tmp_path / "pwned"
    code = main(["derive", "--alpha", payload.format(f=sentinel), "--beta", "t"])
    err = capsys.readouterr().err
    assert code == 2
    assert not sentinel.exists(), "the payload was executed"
    assert err.startswith("lazysi derive: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "t**1000", "--beta", "t"], "exponent"),
        (["--alpha", "1 - t"], "both --alpha"),
        (["--family", "linear", "--alpha", "t"], "not both"),
        (["--family", "vp", "--param", "nope=1"], "unknown parameter"),
        (["--family", "vp", "--param", "sigma"], "NAME=VALUE"),
        (["--alpha", "a*t", "--beta", "t", "--param", "a=__import__('os')"], "not allowed"),
    ],
)
def test_bad_input_exits_2_with_one_line_reason(args, message, capsys):
    assert main(["derive", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_subprocess_malicious_alpha(tmp_path):
    """The real console entry point: exit 2, one-line reason, and no file created."""
    sentinel = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {sentinel}')"
    proc = subprocess.run(
        [sys.executable, "-m", "lazysi", "derive", "--alpha", payload, "--beta", "t"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert not sentinel.exists()
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "attribute access (.system) not allowed" in proc.stderr
