"""The CLI's error contract (issue 18): start-up without torch/sympy, ``--version``, one-line
user errors with exit 2 (bad checkpoint, bad card named, missing file, bad output folder, missing
extra), internal errors as one line with exit 1, tracebacks only with ``--debug``."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest

import lazysi.numeric as numeric_pkg
from lazysi import cli
from lazysi.cli import main
from lazysi.numeric.extras import OPTIONAL, MissingExtraError, missing_extra_message, require
from lazysi.numeric.models import CheckpointError, load_checkpoint, read_card
from lazysi.numeric.io.outdir import OutputDirError, check_output_dir

WEIGHTS = Path(numeric_pkg.__file__).resolve().parent / "weights"
ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import sys
from lazysi.cli import main
code = main({argv!r})
heavy = sorted(m for m in ("torch", "sympy", "numpy", "mpmath") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
raise SystemExit(code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], [], ["nosuchcommand"]])
def test_top_level_does_not_import_torch_sympy_numpy(argv):
    """``lazysi --help`` / ``--version`` / a usage error load none of the heavy packages (the test
    fails if cli.py, lazysi/__init__.py or the stub parsers import a command module)."""
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == (0 if argv and argv[0].startswith("--") else 2), proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout
    if argv == ["--help"]:
        for name, summary in cli.COMMANDS.items():  # every command listed with its summary
            assert name in proc.stdout and summary.split()[0] in proc.stdout
    if argv == ["--version"]:
        assert proc.stdout.splitlines()[0] == f"lazysi {dist_version('lazysi')}"


def test_selected_command_does_get_its_parser(capsys):
    """The lazy parser still builds the chosen command fully: its own options and help work."""
    assert main(["derive", "--help"]) == 0
    assert "--family" in capsys.readouterr().out
    assert main(["derive", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --no-such-option" in err and "lazysi derive" in err


def test_python_m_lazysi_version_matches_metadata():
    proc = subprocess.run([sys.executable, "-m", "lazysi", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"lazysi {dist_version('lazysi')}"
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as fh:
        assert tomllib.load(fh)["project"]["version"] == dist_version("lazysi")


def test_user_error_classes_resolve():
    """Every entry of cli.USER_ERRORS names an importable exception class (a rename fails here,
    not silently in the CLI's error classification)."""
    import importlib

    for mod_name, cls_name in cli.USER_ERRORS:
        cls = getattr(importlib.import_module(mod_name), cls_name)
        assert isinstance(cls, type) and issubclass(cls, Exception), (mod_name, cls_name)


# ----------------------------------------------------------------------------- checkpoints

def _sample_argv(model: Path, out: Path) -> list[str]:
    return ["sample", "--model", str(model), "--sampler", "lazy-ode", "--steps", "1", "--n", "2",
            "--out", str(out), "--no-progress"]


def _one_line_exit_2(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("stem", ["mnist_flow", "mnist_gmm"])
@pytest.mark.parametrize("corrupt", ["junk", "truncated", "empty"])
def test_bad_safetensors_is_one_line_exit_2(tmp_path, capsys, stem, corrupt):
    shutil.copy(WEIGHTS / f"{stem}.json", tmp_path / "m.json")
    raw = (WEIGHTS / f"{stem}.safetensors").read_bytes()
    data = {"junk": b"junk\n", "truncated": raw[: len(raw) // 2], "empty": b""}[corrupt]
    (tmp_path / "m.safetensors").write_bytes(data)
    err = _one_line_exit_2(capsys, _sample_argv(tmp_path / "m", tmp_path / "out"), "m.safetensors", "safetensors")
    assert not (tmp_path / "out").exists(), err  # nothing created for a run that cannot start


def test_malformed_card_is_named(tmp_path, capsys):
    shutil.copy(WEIGHTS / "mnist_gmm.safetensors", tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text("{bad")
    _one_line_exit_2(capsys, _sample_argv(tmp_path / "m", tmp_path / "out"), str(tmp_path / "m.json"), "line 1 column 2")
    (tmp_path / "m.json").write_text("[1, 2]")
    _one_line_exit_2(capsys, _sample_argv(tmp_path / "m", tmp_path / "out"), "m.json", "JSON object")


def test_checkpoint_errors_from_the_library(tmp_path):
    """Library level: CheckpointError (a ValueError) names the file and the problem."""
    shutil.copy(WEIGHTS / "mnist_classifier.json", tmp_path / "c.json")
    (tmp_path / "c.safetensors").write_bytes((WEIGHTS / "mnist_classifier.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"c\.safetensors: not a readable safetensors file"):
        load_checkpoint(tmp_path / "c")
    card = json.loads((WEIGHTS / "mnist_classifier.json").read_text())
    card["architecture"] = {"no_such_argument": 1}
    (tmp_path / "c.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"c\.json: bad 'architecture'"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(CheckpointError, match="not UTF-8"):
        read_card(tmp_path / "c.json")
    # weights of another architecture: named, not a RuntimeError with 40 lines of keys
    shutil.copy(WEIGHTS / "mnist_classifier.json", tmp_path / "c.json")
    shutil.copy(WEIGHTS / "mnist_gmm.safetensors", tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match="do not fit the card's MNISTClassifier architecture"):
        load_checkpoint(tmp_path / "c")


def test_missing_model_file_exit_2(tmp_path, capsys):
    shutil.copy(WEIGHTS / "mnist_gmm.safetensors", tmp_path / "m.safetensors")  # card missing
    _one_line_exit_2(capsys, _sample_argv(tmp_path / "m", tmp_path / "out"), "m.json")


# ----------------------------------------------------------------------------- output folders

def test_check_output_dir_accepts_new_and_existing_folders(tmp_path):
    assert check_output_dir(tmp_path) == tmp_path
    new = tmp_path / "a" / "b"
    assert check_output_dir(new) == new and not (tmp_path / "a").exists()  # creates nothing
    assert list(tmp_path.iterdir()) == []  # and leaves no probe file behind


def test_check_output_dir_rejects_files_and_unwritable(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OutputDirError, match="exists and is not a folder"):
        check_output_dir(f)
    with pytest.raises(OutputDirError, match="is not a folder"):
        check_output_dir(f / "sub")
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputDirError, match="dangling"):
        check_output_dir(link)
    # unwritable: the permission bits say nothing for root, so the probe file is what decides;
    # simulate a read-only folder by making the probe fail as the kernel would
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputDirError, match="not writable"):
        check_output_dir(tmp_path / "new")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a folder nobody can write, root included)")
def test_check_output_dir_real_unwritable_folder():
    with pytest.raises(OutputDirError, match="not writable"):
        check_output_dir("/proc/self/lazysi-out")


def test_bench_out_is_a_file_exit_2_before_work(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    _one_line_exit_2(capsys, ["bench", "--quick", "--out", str(f)], "exists and is not a folder")


# ----------------------------------------------------------------------------- optional extras

def test_extras_table_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    for module, (dist, extra) in OPTIONAL.items():
        names = [r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in extras[extra]]
        assert dist.lower() in names, (module, dist, extra)


def test_missing_extra_is_named_before_any_folder(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ot" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"needs the optional package POT: pip install 'lazysi\[bench\]'"):
        require(("ot", "torch"), "this")
    out = tmp_path / "bench"
    _one_line_exit_2(capsys, ["bench", "--quick", "--out", str(out)], "POT", "pip install 'lazysi[bench]'")
    assert not out.exists()


def test_late_module_not_found_is_translated(monkeypatch, capsys):
    assert missing_extra_message("diffusers.schedulers") == \
        "this needs the optional package diffusers: pip install 'lazysi[diffusers]'"
    assert missing_extra_message("not_an_extra") is None

    def run(args):
        raise ModuleNotFoundError("No module named 'ot'", name="ot")

    import lazysi.cmd_codegen as cmd

    monkeypatch.setattr(cmd, "run", run)
    assert main(["codegen", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lazysi[bench]" in err


# ----------------------------------------------------------------------------- internal errors

def test_internal_error_is_one_line_exit_1_and_debug_shows_traceback(monkeypatch, capsys):
    import lazysi.cmd_codegen as cmd

    def run(args):
        raise ZeroDivisionError("boom\nsecond line")

    monkeypatch.setattr(cmd, "run", run)
    assert main(["codegen", "--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError: boom second line" in err and "--debug" in err
    assert "Traceback" not in err
    for argv in (["--debug", "codegen", "--check"], ["codegen", "--check", "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and err.rstrip().endswith("for the traceback)")


def test_keyboard_interrupt_is_one_line(monkeypatch, capsys):
    import lazysi.cmd_codegen as cmd

    def run(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "run", run)
    assert main(["codegen"]) == 130
    assert capsys.readouterr().err == "lazysi codegen: interrupted\n"


def test_folder_that_is_not_a_diffusers_model(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _one_line_exit_2(capsys, _sample_argv(tmp_path / "empty", tmp_path / "out"), "not a diffusers model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{'single': 'quotes'}")
    _one_line_exit_2(capsys, _sample_argv(tmp_path / "bad", tmp_path / "out"), str(tmp_path / "bad" / "config.json"),
                     "not a valid JSON")
