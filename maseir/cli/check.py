"""``maseir check FILE``: validate a .mir; exit 0, or 1 with every problem listed."""

from __future__ import annotations

import json

from ..io import load, load_structure
from ..validate import check


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="validate a .mir file (exit 1 lists every problem)",
                       description="Validate a .mir file: topological order, every value defined once, "
                                   "op schemas and type rules, symbolic dims, outputs, tensor checksums "
                                   "and zero padding. Exit 0 when valid, 1 with every problem listed, 2 "
                                   "when the file cannot be read at all. --structure checks the structure "
                                   "only (no weights read, no type rules run): it answers at once.",
                       epilog="examples:\n"
                              "  maseir check m.mir\n"
                              "  maseir check m.mir --structure --json")
    p.add_argument("file", metavar="FILE", help="the .mir file")
    p.add_argument("--structure", action="store_true",
                   help="check names, order, op schemas, dims and outputs only: skip the weights' "
                        "checksums and the type rules (which need torch)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.structure:
        graph, _layout = load_structure(args.file)
        problems = check(graph, checksums=False, types=False)
    else:
        graph = load(args.file, verify=False)  # checksum mismatches are listed with the rest
        problems = check(graph)
    if args.json:
        print(json.dumps({"file": args.file, "ok": not problems, "problems": problems,
                          "checked": "structure" if args.structure else "all",
                          "nodes": len(graph.nodes), "params": len(graph.params),
                          "parameters": graph.param_count()}, indent=2))
    elif problems:
        for problem in problems:
            print(f"{args.file}: {problem}")
        print(f"{args.file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    else:
        what = " (structure)" if args.structure else ""
        print(f"{args.file}: ok{what} ({len(graph.nodes)} nodes, {len(graph.params)} params, "
              f"{graph.param_count():,} parameters)")
    return 1 if problems else 0
