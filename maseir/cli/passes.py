"""``maseir passes``: every pass with its object, arguments, types, defaults and help."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("passes", help="list the pipeline steps with their arguments",
                       description="List every pass a pipeline can use, with its object, arguments "
                                   "(type, range, default) and help.")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..passes import REGISTRY

    specs = [REGISTRY[name] for name in sorted(REGISTRY)]
    if args.json:
        print(json.dumps([{
            "pass": s.name, "verb": s.verb, "usage": s.usage(), "help": s.help, "analysis": s.analysis,
            "object": (s.object if s.object else None if s.objects is None else
                       {"choices": s.objects, "required": s.object_required, "help": s.object_help}),
            "args": [{"name": a.name, "type": a.type, "default": a.default, "min": a.min, "max": a.max,
                      "choices": a.choices, "help": a.help} for a in s.args],
        } for s in specs], indent=2))
        return 0
    for spec in specs:
        kind = "analysis" if spec.analysis else "rewrite"
        print(f"{spec.usage()}\n    {spec.help} ({kind})")
        if spec.object_help:
            print(f"    object: {spec.object_help}")
        for arg in spec.args:
            print(f"    {arg.name}: {arg.describe()}. {arg.help}")
    return 0
