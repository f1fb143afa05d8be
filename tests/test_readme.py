"""README's two set-up commands and .ci/run stay in sync."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv [^\n]+)\n```", text)


def test_readme_has_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("lazysi verify")
    assert "pytest" in cmds[1]
    for c in cmds:
        assert "pip install torch==2.13.0 &&" in c, "torch must be installed first (CPU build)"


def test_ci_runs_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = _readme_commands()[1]
    # .ci/run creates its own venv; what follows the venv activation must be README's command.
    install_and_test = test_cmd.split("pip install torch==2.13.0 && ", 1)[1]
    assert "pip install torch==2.13.0" in ci
    assert install_and_test in ci.splitlines(), f".ci/run must run exactly: {install_and_test}"


def test_readme_add_a_claim_example_runs_and_can_fail():
    from lazysi.proofs.registry import REGISTRY, Context, run_claim

    text = (ROOT / "README.md").read_text()
    code = re.findall(r"```python\n(import sympy.*?)```", text, re.S)[0]
    try:
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README
        result = run_claim(REGISTRY["U1"], Context(digits=30))
        assert result.passed and result.symbolic == "proved"
        # the same claim with the wrong data scale must fail both halves
        exec(compile(code.replace("0.7*sqrt", "0.71*sqrt"), "README.md", "exec"), {})  # noqa: S102
        wrong = run_claim(REGISTRY["U1"], Context(digits=30))
        assert not wrong.passed and wrong.symbolic == "failed"
    finally:
        REGISTRY.pop("U1", None)


def test_console_script_and_plugin_are_declared():
    """The README's commands need the ``lazysi`` console script (a merge once dropped it: the
    suite passed, CI's ``lazysi verify`` did not)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["lazysi"] == "lazysi.cli:main"
    assert project["entry-points"]["pytest11"]["lazysi"] == "lazysi.proofs.pytest_plugin"
