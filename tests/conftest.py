"""Test-session settings.

torch's intra-op thread pool makes tiny tensor ops (the oracles' softmax over a handful of
components) thousands of times slower when the two cores are shared; the suite uses one thread.
Tests put ``tests/`` on ``sys.path`` so they can import the shared oracle module.
The session gets its own empty lazysi cache directory (``LAZYSI_CACHE_DIR``), so every code
path behind the disk caches (derivations, proved identities, mpmath references) runs at least
once per session instead of being answered by a cache a previous run left in ``~/.cache``.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import torch

os.environ["LAZYSI_CACHE_DIR"] = _CACHE = tempfile.mkdtemp(prefix="lazysi-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(__file__))
