"""Files of the language-neutral contract in spec/, read at run time.

A source checkout (and an editable install of one) reads the spec/ folder
beside the package; a wheel, which has no such folder, ships spec/ as the
package ``maseir.spec``. The checkout comes first because an editable
install maps ``maseir.spec`` to the folder of the checkout it was made
from, which need not be the one this ``maseir`` was imported from (a git
worktree on PYTHONPATH would otherwise read another branch's grammar).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent / "spec"


def spec_text(name: str) -> str:
    """The text (UTF-8) of ``spec/name``; raises FileNotFoundError if neither place has it."""
    beside = _CHECKOUT / name
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    return resources.files("maseir.spec").joinpath(name).read_text(encoding="utf-8")
