"""Checks of the arguments of maseir's public functions.

A wrong kind of argument is an :class:`~maseir.errors.ArgumentError` that
names the function, the argument and what it must be, raised before any work
starts, instead of an AttributeError from deep inside.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ArgumentError


def describe(value: Any) -> str:
    """A short description of ``value`` for an error message: its type and a clipped repr."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return "None" if value is None else f"{type(value).__name__} {text}"


def require_graph(value: Any, where: str, name: str = "graph"):
    """``value`` if it is a maseir.Graph; else ArgumentError naming ``where`` and ``name``."""
    from .ir import Graph
    if not isinstance(value, Graph):
        raise ArgumentError(f"{where}: {name} must be a maseir.Graph (got {describe(value)})")
    return value


def require_path(value: Any, where: str, name: str = "path") -> str | os.PathLike:
    """``value`` if it is a non-empty str or os.PathLike; else ArgumentError."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(f"{where}: {name} must be a str or os.PathLike (got {describe(value)})")
    if not os.fspath(value):
        raise ArgumentError(f"{where}: {name} is empty")
    return value
