"""Test-session settings.

torch's intra-op thread pool makes tiny tensor ops (the oracles' softmax over a handful of
components) thousands of times slower when the two cores are shared; the suite uses one thread.
Tests put ``tests/`` on ``sys.path`` so they can import the shared oracle module.
"""
from __future__ import annotations

import os
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(__file__))
