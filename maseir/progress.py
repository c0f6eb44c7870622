"""Progress bars for long runs (training, evaluation, sweeps): tqdm on stderr.

Shown when stderr is a terminal, unless asked otherwise (``--quiet``), so
scripts and CI logs get no bar noise.
"""

from __future__ import annotations

import sys


class _Silent:
    """The no-op stand-in for a tqdm bar."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(*, total: int, desc: str, unit: str = "it", enabled: bool | None = None):
    """A tqdm bar of ``total`` units, or a silent stand-in; ``enabled`` None means
    "when stderr is a terminal"."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _Silent()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
