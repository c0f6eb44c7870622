"""``maseir show FILE``: the canonical text form (also a git textconv driver)."""

from __future__ import annotations

import json
import sys

from ..io import load_structure
from ..text import lines, to_json


def add_parser(sub) -> None:
    p = sub.add_parser("show", help="print a .mir file as canonical text, one line per node",
                       description="Print a .mir file as canonical text: history, metadata, dims, inputs, "
                                   "params (dtype, shape, sha256 prefix; never weight data), one line per "
                                   "node, and outputs. Only the file's structure is read (its own sha256 "
                                   "is checked; weights are neither read nor verified: use 'maseir "
                                   "check'), so it is fast and works when the external .data file is "
                                   "missing, as in a git textconv driver, which gives readable diffs.",
                       epilog="examples:\n"
                              "  maseir show m.mir | head          # how the file was made, first\n"
                              "  maseir show m.mir --json          # the same, as JSON\n"
                              "  git config diff.maseir.textconv 'maseir show'")
    p.add_argument("file", metavar="FILE", help="the .mir file")
    p.add_argument("--json", action="store_true", help="print the graph's structure as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    graph, layout = load_structure(args.file)
    missing = ", ".join(layout.missing)
    if args.json:
        print(json.dumps(dict(to_json(graph), file=args.file, missing_external_data=list(layout.missing)),
                         indent=1))
        return 0
    out = sys.stdout
    if missing:  # on stderr: the text (and a textconv diff of it) is the same with or without the data
        print(f"maseir: note: {args.file}: external data {missing} not found; shown from the structure alone",
              file=sys.stderr)
    for line in lines(graph):
        out.write(line + "\n")
    out.flush()
    return 0
