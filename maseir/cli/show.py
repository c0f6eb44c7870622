"""``maseir show FILE``: the canonical text form (also a git textconv driver)."""

from __future__ import annotations

import sys

from ..io import load
from ..text import lines


def add_parser(sub) -> None:
    p = sub.add_parser("show", help="print a .mir file as canonical text, one line per node",
                       description="Print a .mir file as canonical text: metadata, dims, inputs, params "
                                   "(dtype, shape, sha256 prefix; never weight data), one line per node, "
                                   "outputs and history. Use it as a git textconv driver for readable diffs.")
    p.add_argument("file", help="the .mir file")
    p.set_defaults(run=run)


def run(args) -> int:
    graph = load(args.file)
    out = sys.stdout
    for line in lines(graph):
        out.write(line + "\n")
    out.flush()
    return 0
