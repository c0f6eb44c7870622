"""The ``maseir`` command: one module per subcommand, wired up in ``main``."""

from __future__ import annotations

from pathlib import Path

from ..errors import MaseIRError


def check_output(output: str, *inputs: str) -> Path:
    """The output path of a command that writes a file, refused when its folder
    does not exist or when it is one of the command's inputs (inputs are never
    modified)."""
    path = Path(output)
    if any(path.resolve() == Path(i).resolve() for i in inputs):
        raise MaseIRError(f"{output}: the output must not be the input file (inputs are never modified)")
    if not path.parent.resolve().is_dir():
        raise MaseIRError(f"{output}: folder {path.parent} does not exist")
    return path
