"""``maseir lower MODEL --to onnx -o OUT``: a .mir as a file another runtime reads."""

from __future__ import annotations

import json
import time

from . import check_output, load_valid, report_stream
from .arguments import add_external_data_threshold, output_threshold

TARGETS = ("onnx",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lower", help="lower a .mir file to ONNX (for onnxruntime, Netron, deployment)",
        description="Lower MODEL to a runtime format and write it to OUT atomically. The ONNX file "
                    "(opset 21 by default, 17 and up with --opset) has symbolic batch/seq sizes as dim_params and node names "
                    "taken from the module paths; dropout and other train-mode ops have eval semantics. "
                    "Weights stored in external data in MODEL go to OUT.data next to it (and every "
                    "weight of at least 1 KiB for models near protobuf's 2 GB limit).",
        epilog="examples:\n"
               "  maseir lower m.mir --to onnx -o m.onnx\n"
               "  maseir lower m.mir --to onnx -o m.onnx --external-data-threshold 1024",
)
    p.add_argument("model", metavar="MODEL", help="the .mir file")
    p.add_argument("--to", required=True, choices=TARGETS, help="target format")
    p.add_argument("-o", "--output", required=True,
                   help="the file to write (a FIFO or '-' for standard output are written through)")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset, 17 or newer (default: 21); int4 and int16 fixed-point containers need 21")
    add_external_data_threshold(p, keeps_input_layout=True)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--force", action="store_true",
                   help="write even when the output's extension names another format (.mir, .pass, .data)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..lowering.onnx import DEFAULT_OPSET, check_opset, save_onnx

    opset = args.opset or DEFAULT_OPSET
    check_opset(opset)  # before any file is read
    output = check_output(args.output, args.model, kind="onnx", force=args.force,
                          side_file=args.external_data_threshold is not None)
    threshold = output_threshold(args.external_data_threshold, args.model, output)  # the input's layout
    external = threshold is not None
    graph = load_valid(args.model)
    start = time.perf_counter()
    nbytes = save_onnx(graph, output, opset=opset, external_data_threshold=threshold)
    seconds = time.perf_counter() - start
    data = output.side_path if external and output.side_path.exists() else None
    summary = {"output": str(output), "format": "onnx", "opset": opset, "nodes": len(graph.nodes),
               "bytes": nbytes, "external_data": str(data) if data else None, "seconds": round(seconds, 3)}
    stream = report_stream(output)
    if args.json:
        print(json.dumps(summary, indent=2), file=stream)
    else:
        extra = f" (+ weights in {data.name})" if data else ""
        print(f"wrote {output}: ONNX opset {opset}, {nbytes / 1e6:.1f} MB{extra} in {seconds:.2f}s", file=stream)
    return 0
