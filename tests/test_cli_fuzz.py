"""Fuzz the command line in-process (issue 18): random and corrupted arguments and files must end
in exit status 0, 1 or 2 with no traceback on stderr (user errors: one line, exit 2).

Only cheap commands are driven: ``derive`` and ``convert`` with small inputs, and ``sample`` with
``--steps 1 --n 2`` on the ``gaussian`` model or on corrupted copies of the embedded checkpoints.
"""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lazysi.numeric as numeric_pkg
from lazysi.cli import main

WEIGHTS = Path(numeric_pkg.__file__).resolve().parent / "weights"
FUZZ = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_cli(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    return code, err.getvalue()


def check(argv: list[str]) -> int:
    code, err = run_cli(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:  # a user error: exactly one line, naming the command
        assert err.count("\n") == 1 and err.startswith("lazysi"), (argv, err)
    return code


NUMBERS = st.sampled_from(["-1", "0", "1", "2", "2.5", "nan", "inf", "-inf", "1e400", "x", "", "0x10", "１"])
JUNK = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
TOKENS = ["t", "s", "1", "2", "0", "pi", "-", "+", "*", "/", "**", "(", ")", "sin", "cos", "exp", "log", "sqrt",
          "a", "1e999", "__import__", "'os'", ".", ",", "lambda", "t**1000", "zoo", "I", "=", "x"]
EXPRS = st.one_of(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join), JUNK,
                  st.sampled_from(["1 - t", "t", "cos(pi*t/2)", "sin(pi*t/2)", "sqrt(1-t)", "1/t", "t - 1/2"]))


@FUZZ
@given(st.lists(st.one_of(JUNK, st.sampled_from(["--help", "--version", "--debug", "--", "-", "-x", "--n",
                                                 "derive", "convert", "sample", "frobnicate"])), max_size=4))
def test_random_top_level_arguments(argv):
    # never a real run of a slow or writing command: those need options these lists cannot make
    if argv[:1] in (["codegen"], ["verify"], ["bench"]):
        return
    if any(tok == "--help" for tok in argv) or "--version" in argv:
        check(argv)
        return
    check(argv)


@FUZZ
@given(alpha=EXPRS, beta=EXPRS, extra=st.lists(st.sampled_from(
    [["--json"], ["--latex"], ["--digits", "15"], ["--param", "a=0.5"], ["--param", "a"], ["--param", "a=nan"],
     ["--family", "vp"], ["--lazy", "sde"], ["--sigma", "-1"], ["--nu", "x"], ["--frob"]]), max_size=2))
def test_derive_bad_expressions(alpha, beta, extra):
    check(["derive", "--alpha", alpha, "--beta", beta, *[tok for opt in extra for tok in opt]])


@FUZZ
@given(src=st.one_of(st.sampled_from(["linear", "vp", "nope", "alpha=t", "alpha=1-t,beta=t", "alpha=,beta=t"]), JUNK),
       dst=st.one_of(st.sampled_from(["vp", "linear", "ddpm", "alpha=cos(pi*t/2),beta=sin(pi*t/2)", "beta=t"]), JUNK),
       eps=st.one_of(st.sampled_from(["zero", "optimal", "nu=0.5", "nu=-1", "nu=x", "s*(1-s)", "1/s", "__import__"]), JUNK))
def test_convert_bad_schedules(src, dst, eps):
    check(["convert", "--from", src, "--to", dst, "--eps", eps, "--json"])


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(["--steps", "--n", "--batch", "--seed", "--sigma", "--mu", "--shift",
                                                "--grid", "--dtype", "--sampler", "--device"]), NUMBERS), max_size=3),
       sampler=st.sampled_from(["lazy-ode", "euler", "nope"]))
def test_sample_bad_numbers(opts, sampler):
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["sample", "--model", "gaussian", "--sampler", sampler, "--steps", "1", "--n", "2",
                "--out", str(Path(tmp) / "out"), "--no-progress"]
        for flag, value in opts:
            if flag in ("--n", "--batch", "--steps") and value not in ("-1", "0", "1", "2"):
                value = value if not value.lstrip("-").isdigit() else "2"  # never a large valid count
            argv += [flag, value]
        check(argv)


def _mutate_json(card: dict, data) -> bytes:
    kind = data.draw(st.sampled_from(["field", "syntax", "bytes"]))
    text = json.dumps(card).encode()
    if kind == "field":
        key = data.draw(st.sampled_from(sorted(card)))
        card = dict(card)
        card[key] = data.draw(st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=5),
                                        st.lists(st.integers(-2, 30), max_size=4), st.just({"a": 1})))
        return json.dumps(card).encode()
    if kind == "syntax":
        cut = data.draw(st.integers(0, len(text) - 1))
        return text[:cut]
    pos = data.draw(st.integers(0, len(text) - 1))
    return text[:pos] + data.draw(st.binary(min_size=1, max_size=3)) + text[pos + 1:]


def _mutate_weights(raw: bytes, data) -> bytes:
    kind = data.draw(st.sampled_from(["truncate", "header", "junk", "empty"]))
    if kind == "truncate":
        return raw[: data.draw(st.integers(0, len(raw) - 1))]
    if kind == "header":  # the 8-byte length and the JSON header that follows
        pos = data.draw(st.integers(0, min(len(raw), 400) - 1))
        return raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1:]
    if kind == "junk":
        return data.draw(st.binary(min_size=1, max_size=64))
    return b""


@FUZZ
@given(stem=st.sampled_from(["mnist_gmm", "mnist_flow"]), what=st.sampled_from(["card", "weights", "both"]),
       data=st.data())
def test_sample_corrupted_checkpoints(stem, what, data):
    card = json.loads((WEIGHTS / f"{stem}.json").read_text())
    raw = (WEIGHTS / f"{stem}.safetensors").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "m.json").write_bytes(_mutate_json(card, data) if what in ("card", "both") else json.dumps(card).encode())
        (tmp / "m.safetensors").write_bytes(_mutate_weights(raw, data) if what in ("weights", "both") else raw)
        check(["sample", "--model", str(tmp / "m.safetensors"), "--sampler", "lazy-ode", "--steps", "1", "--n", "2",
               "--out", str(tmp / "out"), "--no-progress"])


@FUZZ
@given(out=st.sampled_from(["file", "file/sub", "dangling", "ok"]))
def test_sample_bad_out_paths(out):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "file").write_text("x")
        (tmp / "dangling").symlink_to(tmp / "nowhere")
        check(["sample", "--model", "gaussian", "--sampler", "lazy-ode", "--steps", "1", "--n", "2",
               "--out", str(tmp / out), "--no-progress"])


def test_fuzz_checker_can_fail(monkeypatch):
    """The checker rejects a traceback on stderr and an exit status outside {0, 1, 2}."""
    import sys

    import pytest

    def traceback_main(argv):
        print("Traceback (most recent call last):", file=sys.stderr)
        return 1

    for fake in (lambda argv: 3, traceback_main):
        monkeypatch.setitem(globals(), "main", fake)
        with pytest.raises(AssertionError):
            check(["derive"])
