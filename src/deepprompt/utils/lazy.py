"""A package's names imported on first use (a module-level ``__getattr__``, PEP 562): importing the package costs
nothing until one of its names is used, so that the entry points check configs and data folders before torch."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_names(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package`` that imports ``name`` from its module ``homes[name]`` (absolute, or
    relative to ``package`` with a leading dot) when it is first used; other names raise AttributeError."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(homes[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
