"""``maseir diff A B``: structural diff of two .mir files; exit 0 same, 1 different."""

from __future__ import annotations

import json

from ..diff import diff
from ..io import load


def add_parser(sub) -> None:
    p = sub.add_parser("diff", help="structural diff of two .mir files (exit 0 same, 1 different)",
                       description="Compare two .mir files node by node and param by param (matched "
                                   "by name): nodes removed (-), added (+) and changed (~: op, inputs, "
                                   "attributes, types), params with their max abs difference, interface "
                                   "and metadata changes (!), and history. Exit 0 when the same, 1 when "
                                   "different.")
    p.add_argument("a", help="the old .mir file")
    p.add_argument("b", help="the new .mir file")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    d = diff(load(args.a), load(args.b))
    if args.json:
        print(json.dumps(dict(d.to_json(), a=args.a, b=args.b), indent=2))
    else:
        if not d.empty:
            print(f"--- {args.a}\n+++ {args.b}")
        for line in d.lines():
            print(line)
        print(d.summary())
    return 0 if d.empty else 1
