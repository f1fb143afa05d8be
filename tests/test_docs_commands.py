"""Every ``lazysi ...`` command line in the README and docs/ parses with the real parser, and no
torchrun line passes an option torchrun itself would take as an abbreviation (``--n``)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lazysi.cli import _ArgumentError, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command_lines(path: Path) -> list[tuple[int, str]]:
    """Shell lines of the ```bash blocks (continuations joined, comments dropped) that run lazysi."""
    out, in_bash, buf, start = [], False, "", 0
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_bash = line.strip() in ("```bash", "```sh", "```console") and not in_bash
            continue
        if not in_bash:
            continue
        if not buf:
            start = no
        buf += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if line.rstrip().endswith("\\"):
            continue
        text = re.sub(r"(^|\s)#.*$", "", buf).strip()
        buf = ""
        for part in re.split(r"&&|;", text):
            if re.search(r"(^|\s)(-m\s+)?lazysi\s", part + " "):
                out.append((start, part.strip()))
    return out


CASES = [(p.relative_to(ROOT).as_posix(), no, line) for p in DOCS for no, line in _command_lines(p)]


def test_the_docs_have_command_lines():
    assert len(CASES) >= 8 and any("torchrun" in line for _, _, line in CASES)


@pytest.mark.parametrize("where, no, line", CASES, ids=[f"{w}:{n}" for w, n, _ in CASES])
def test_documented_command_parses(where, no, line):
    tokens = shlex.split(line)
    at = max(i for i, tok in enumerate(tokens) if tok == "lazysi") + 1
    argv = tokens[at:]
    if "torchrun" in tokens[:at]:
        assert not any(tok == "--n" or tok.startswith("--n=") for tok in argv), \
            f"{where}:{no}: torchrun takes --n as an abbreviation of its own options; write --num-samples"
    if any(tok.startswith("<") for tok in argv):
        pytest.skip("placeholder arguments")
    try:
        build_parser(argv).parse_args(argv)
    except _ArgumentError as exc:
        pytest.fail(f"{where}:{no}: {line!r}: {exc}")
    except SystemExit as exc:  # --help
        assert exc.code == 0
