"""Imports every built-in claim module so that each registers its claims."""
from __future__ import annotations

import importlib
import pkgutil

from . import __path__ as _pkg_path

for _info in sorted(pkgutil.iter_modules(_pkg_path), key=lambda m: m.name):
    if _info.name.startswith("claims_"):
        importlib.import_module(f"{__package__}.{_info.name}")
