"""``maseir diff A B``: structural diff of two .mir files; exit 0 same, 1 different."""

from __future__ import annotations

import json

from ..diff import diff
from ..io import load, load_structure


def add_parser(sub) -> None:
    p = sub.add_parser("diff", help="structural diff of two .mir files (exit 0 same, 1 different)",
                       description="Compare two .mir files node by node and param by param (matched "
                                   "by name): nodes removed (-), added (+) and changed (~: op, inputs, "
                                   "attributes, types), params with their max abs difference, interface "
                                   "and metadata changes (!), and history. Exit 0 when the same, 1 when "
                                   "different. A file whose external .data file is missing is compared "
                                   "by its structure and recorded checksums alone (a note says so).")
    p.add_argument("a", metavar="A", help="the old .mir file")
    p.add_argument("b", metavar="B", help="the new .mir file")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.set_defaults(run=run)


def _read(path: str):
    """The graph with its weights, or its structure alone when external data is missing."""
    graph, layout = load_structure(path)
    if layout.missing:
        return graph, f"note: {path}: external data {', '.join(layout.missing)} not found; " \
                      "params compared by sha256 only"
    return load(path), None


def run(args) -> int:
    (a, note_a), (b, note_b) = _read(args.a), _read(args.b)
    notes = [n for n in (note_a, note_b) if n]
    d = diff(a, b)
    if args.json:
        print(json.dumps(dict(d.to_json(), a=args.a, b=args.b, notes=notes), indent=2))
    else:
        for note in notes:
            print(note)
        if not d.empty:
            print(f"--- {args.a}\n+++ {args.b}")
        for line in d.lines():
            print(line)
        print(d.summary())
    return 0 if d.empty else 1
