"""Files of the language-neutral contract in spec/, read at run time.

A wheel ships spec/ as the package ``maseir.spec``; a source checkout (and an
editable install, which maps only top-level packages) reads spec/ itself.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def spec_text(name: str) -> str:
    try:
        return resources.files("maseir.spec").joinpath(name).read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parent.parent / "spec" / name).read_text()
