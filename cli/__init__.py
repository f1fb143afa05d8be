"""lazysi: lazy and point-mass stochastic interpolants, derived by sympy and checked by machine.

Subpackages: :mod:`lazysi.symbolic` (sympy schedules, derivations, code generation),
:mod:`lazysi.numeric` (generated kernels, providers, samplers, models) and
:mod:`lazysi.proofs` (the claims C1-C15 as executable checks).
Convention everywhere: t = 0 is the base (noise or point mass), t = 1 is the data.
"""

__version__ = "0.1.0"
