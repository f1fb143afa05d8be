"""The recommended path runs on the README's plain install: no data package is imported when
sampling the embedded U-Net with the covariance-aware sampler (its moments are committed)."""
from __future__ import annotations

import subprocess
import sys

CODE = r"""
import sys, importlib.abc

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("mlxtend", "sklearn", "diffusers", "flow_matching", "ot", "matplotlib"):
            raise ImportError(f"{name} is not on the plain install")
        return None

sys.meta_path.insert(0, Refuse())
from lazysi.cli import main
rc = main(["sample", "--model", "mnist", "--sampler", "lazy-cov-pcd", "--steps", "1", "--n", "2", "--no-progress",
           "--out", sys.argv[1]])
assert rc == 0, rc
assert not any(m.split(".")[0] in ("mlxtend", "sklearn") for m in sys.modules)
"""


def test_mnist_lazy_cov_pcd_without_optional_packages(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CODE, str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "samples.npz").exists()
