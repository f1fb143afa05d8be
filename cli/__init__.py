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

#: the curated API: name -> (module, attribute), imported on first use (keeps ``lazysi --help`` light)
_API = {
    "load_model": ("lazysi.numeric.api", "load_model"),
    "sample": ("lazysi.numeric.api", "sample"),
    "Model": ("lazysi.numeric.models.model", "Model"),
    "SAMPLERS": ("lazysi.numeric.sampling.registry", "SAMPLERS"),
    "SamplerSpec": ("lazysi.numeric.sampling.registry", "SamplerSpec"),
    "generate": ("lazysi.numeric.sampling.generate", "generate"),
    "SamplingSetup": ("lazysi.numeric.sampling.frames", "SamplingSetup"),
    "Schedule": ("lazysi.symbolic.schedule", "Schedule"),
    "family": ("lazysi.symbolic.families", "family"),
    "verify": ("lazysi.proofs.verify", "verify"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lazysi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
