"""lazysi: lazy and point-mass stochastic interpolants, derived by sympy and checked by machine.

Subpackages: :mod:`lazysi.symbolic` (sympy schedules, derivations, code generation),
:mod:`lazysi.numeric` (generated kernels, providers, samplers, models) and
:mod:`lazysi.proofs` (the claims C1-C15 as executable checks).
Convention everywhere: t = 0 is the base (noise or point mass), t = 1 is the data.

This module must stay light: ``lazysi --help`` imports it, and a test asserts that doing so loads
neither torch nor sympy (expose heavy names through a module ``__getattr__``, not plain imports).
"""
from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:
    __version__ = _version("lazysi")
except _NotInstalled:  # running from a source tree that is not installed
    __version__ = "0+unknown"
