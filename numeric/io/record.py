"""Reproducibility records: what produced an output folder, enough to rerun it bit for bit.

``run_record(options, model_card_path, seeds)`` collects the resolved options, the package
versions (torch, sympy, mpmath, numpy, lazysi, diffusers when installed), Python and platform,
torch's determinism settings (deterministic algorithms, cuDNN flags, TF32, matmul precision,
threads), the git commit of the source tree when available (and whether it had local changes),
the sha256 of the model card, and the seeds. ``write_record(out_dir, record)`` stores it as
``run.json`` atomically. Bit-for-bit reruns additionally need the same hardware and the same
torch build (recorded, not enforced).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from lazysi.numeric.io.atomic import atomic_write_json

__all__ = ["RECORD_VERSION", "RECORD_FILE", "run_record", "write_record", "read_record", "fingerprint_options",
           "package_versions", "torch_settings", "git_state", "file_sha256"]

RECORD_VERSION = 1
RECORD_FILE = "run.json"
_PACKAGES = ("torch", "sympy", "mpmath", "numpy", "lazysi", "diffusers", "safetensors")


def _jsonable(value: Any) -> Any:
    """Options made JSON-safe: paths and other objects become strings; tuples become lists."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    return str(value)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_options(options: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """sha256 of the JSON form of ``options`` without the keys in ``exclude`` (sorted keys)."""
    skip = set(exclude)
    data = {k: _jsonable(v) for k, v in options.items() if k not in skip and not callable(v)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def package_versions() -> dict[str, str | None]:
    """Installed versions (None when a package is absent)."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["torch_runtime"] = torch.__version__
    out["cuda"] = torch.version.cuda
    return out


def torch_settings() -> dict[str, Any]:
    """Torch settings that change results: determinism, cuDNN, TF32, matmul precision, threads."""
    cudnn = torch.backends.cudnn
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "cudnn_benchmark": bool(cudnn.benchmark),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "default_dtype": str(torch.get_default_dtype()),
        "num_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [],
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``path`` (default: this package's
    source), or None when it is not a git checkout or git is unavailable."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def run_record(
    options: Mapping[str, Any],
    model_card_path: str | os.PathLike | None = None,
    seeds: Mapping[str, Any] | int | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable record of a run.

    Args:
        options: the resolved options (every default filled in), e.g. ``vars(args)``.
        model_card_path: the model card (JSON next to the safetensors weights); its sha256 and
            path are recorded. A missing file is an error (a record must not lie).
        seeds: the seeds used (an int or a mapping, e.g. ``{"seed": 0, "indices": [0, n]}``).
    """
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping (e.g. vars(args)), got {type(options).__name__}")
    card = None
    if model_card_path is not None:
        p = Path(model_card_path)
        if not p.is_file():
            raise FileNotFoundError(f"model card {p} does not exist")
        card = {"path": str(p), "sha256": file_sha256(p)}
    return {
        "record_version": RECORD_VERSION,
        "command": list(sys.argv),
        "options": _jsonable(dict(options)),
        "options_sha256": fingerprint_options(options),
        "seeds": _jsonable(seeds),
        "model_card": card,
        "packages": package_versions(),
        "python": sys.version,
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "processor": platform.processor(), "platform": platform.platform()},
        "torch": torch_settings(),
        "git": git_state(),
    }


def write_record(out_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``record`` to ``out_dir/run.json`` atomically (temp file, fsync, rename)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RECORD_FILE
    atomic_write_json(path, _jsonable(dict(record)))
    return path


def read_record(out_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(out_dir) / RECORD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return json.loads(path.read_text())
