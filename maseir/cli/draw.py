"""``maseir draw FILE -o PICTURE``: a picture of the graph (Graphviz; it only reads the file)."""

from __future__ import annotations

import os
import sys

from .arguments import non_negative_int

EXIT_NOT_RENDERED = 1


def add_parser(sub) -> None:
    p = sub.add_parser(
        "draw", help="draw the graph with Graphviz (.svg, .png, .pdf, or the .dot text)",
        description="Draw a .mir file's graph: one box per node with its op, output types (shape and number "
                    "format) and params; module scopes as nested clusters; quantized values and params, LoRA "
                    "adapters and pruned params (with their measured sparsity) each in a colour named in the "
                    "legend; graph inputs and outputs as their own shapes. The format follows the output's "
                    "extension: .dot or .gv is the DOT text, written by maseir; .svg, .png and .pdf are "
                    "rendered by Graphviz's dot program (Debian package graphviz). Without dot, the DOT "
                    "text is written next to the output as NAME.dot, one line says how to get dot, and the "
                    "exit status is 1.",
        epilog="examples:\n"
               "  maseir draw m.mir -o m.svg\n"
               "  maseir draw m.mir -o layer0.svg --scope bert.encoder.layer.0   # one part\n"
               "  maseir draw m.mir -o overview.svg --collapse 3   # each bert.encoder.layer.K as one box\n"
               "  maseir draw m.mir -o - | dot -Tpng -o m.png      # the DOT text on standard output")
    p.add_argument("file", metavar="FILE", help="the .mir file")
    p.add_argument("-o", "--output", required=True, metavar="PICTURE",
                   help="the picture: .svg, .png, .pdf (rendered by dot), .dot or .gv (the DOT text), "
                        "or - for the DOT text on standard output")
    p.add_argument("--scope", metavar="SCOPE", default=None,
                   help="draw only the nodes in this module scope (whole dot-separated parts: "
                        "bert.encoder.layer.1 is not bert.encoder.layer.10); values from and to the rest "
                        "of the graph are drawn as dashed inputs and outputs")
    p.add_argument("--collapse", metavar="N", type=non_negative_int, default=None,
                   help="fold every scope deeper than N parts into one box (its node count, ops, "
                        "parameters and marks); depth counts from the root: bert.encoder.layer.0 has 4")
    p.add_argument("--sparsity", action="store_true",
                   help="show the measured sparsity (fraction of exact zeros) of every param, "
                        "not only of the pruned ones")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..draw import DrawError, find_dot, is_pruned, nodes_in_scope, output_format, render, to_dot, GET_DOT
    from ..io import load, load_structure
    from ..output import check_output, write_output

    fmt = output_format(args.output)
    dot = find_dot() if fmt != "dot" else None
    fallback = None
    if fmt != "dot" and dot is None:  # write the DOT text instead, next to the output
        target = check_output(args.output, args.file, dash_is_stdout=False)
        if target.stream:
            raise DrawError(f"{args.output}: cannot render {fmt}: Graphviz's dot is not installed: {GET_DOT}")
        fallback = os.path.splitext(args.output)[0] + ".dot"
        target = check_output(fallback, args.file, dash_is_stdout=False)
    else:
        target = check_output(args.output, args.file, dash_is_stdout=True)

    graph, layout = load_structure(args.file)
    try:
        nodes = nodes_in_scope(graph, args.scope)
    except DrawError as exc:
        raise DrawError(f"{args.file}: --{exc}") from None  # "scope X matches no node ..."
    drawn_params = {p for n in nodes for p in n.inputs if p in graph.params}
    needs_weights = any(args.sparsity or is_pruned(graph.params[p]) for p in drawn_params)
    report = sys.stderr if target.shares_stdout else sys.stdout
    if needs_weights:
        if layout.missing:
            print(f"maseir: note: {args.file}: external data {', '.join(layout.missing)} not found; "
                  "sparsity not measured", file=sys.stderr)
        else:
            graph = load(args.file)
    text = to_dot(graph, scope=args.scope, collapse=args.collapse, sparsity=args.sparsity)
    data = text.encode("utf-8") if fmt == "dot" or fallback else render(text, fmt, dot)
    nbytes = write_output(target, [data])
    part = f" of {len(graph.nodes):,} (scope {args.scope})" if args.scope is not None else ""
    folded = f", scopes deeper than {args.collapse} folded" if args.collapse is not None else ""
    if fallback:
        print(f"maseir: note: {args.output} not rendered: Graphviz's dot is not installed; wrote {fallback} "
              f"({nbytes:,} bytes) instead; {GET_DOT}, then run: dot -T{fmt} {fallback} -o {args.output}",
              file=sys.stderr)
        return EXIT_NOT_RENDERED
    print(f"wrote {args.output} ({nbytes:,} bytes): {len(nodes):,} nodes{part}{folded}", file=report)
    return 0
