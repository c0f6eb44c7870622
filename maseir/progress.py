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


def write_line(text: str, file=None) -> None:
    """Print one line to ``file`` (default standard output) without tearing a progress
    bar that is being drawn: through ``tqdm.write`` once tqdm is loaded, else ``print``."""
    file = sys.stdout if file is None else file
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        tqdm.tqdm.write(text, file=file)
        file.flush()
    else:
        print(text, file=file, flush=True)


QUIET = [False]
"""Set ``QUIET[0] = True`` (the commands' ``--quiet``) to draw no bar where ``enabled`` is None."""


def progress_bar(*, total: int, desc: str, unit: str = "it", enabled: bool | None = None):
    """A tqdm bar of ``total`` units on stderr, or a silent stand-in. ``enabled``
    None means "when stderr is a terminal and not --quiet", and then a run shorter
    than a second draws no bar at all."""
    if enabled is False or (enabled is None and (QUIET[0] or not sys.stderr.isatty())):
        return _Silent()
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False,
                delay=0 if enabled else 1.0)
