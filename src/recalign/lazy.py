"""Names a package exports without importing them until first used (PEP 562).

A package whose light modules the CLI reads at start (config models, defaults) must not
import its heavy modules in `__init__`: it lists its exports instead, by the module that
defines them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any]]:
    """The package's `__all__` and `__getattr__`: `modules` maps each defining module to
    the names the package exports from it."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(where), __getattr__
