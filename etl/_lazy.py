"""Lazy package surfaces (PEP 562): each package ``__init__`` lists its public names and the
module that defines each; a module is imported when one of its names is first used, so
``import etl.lake`` (or ``etl.cli``) costs nothing until a name is needed.

A package ``__init__`` reads::

    if TYPE_CHECKING:  # what mypy and readers see
        from etl.fetch.fetcher import Fetcher as Fetcher
    __all__, __getattr__, __dir__ = surface(__name__, {"fetcher": ("Fetcher",)})

``tests/test_architecture.py`` checks that the two lists agree and that every name resolves.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["surface"]


def surface(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``.

    ``modules`` maps each submodule (relative to ``package``) to the public names it defines.
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # from now on a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return sorted(where), __getattr__, __dir__
