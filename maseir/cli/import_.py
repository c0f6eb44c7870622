"""``maseir import MODEL.onnx -o OUT.mir``: an ONNX file from elsewhere as a .mir."""

from __future__ import annotations

import time
from pathlib import Path

from ..io import save
from ..errors import MaseIRError
from . import check_output, report_written
from .arguments import add_external_data_threshold, output_threshold


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import", help="import an ONNX file into a .mir file",
        description="Read an ONNX model (its protobuf only: nothing in it runs) and write it as a .mir. "
                    "Nodes keep their ONNX names, initializers become params, dim_params become "
                    "symbolic dims; shape computations (Shape, Gather, Concat, ...) are folded into "
                    "attributes. External data is read relative to the ONNX file. An ONNX op the IR "
                    "has no equivalent for is an error that lists the op and its nodes.",
        epilog="examples:\n"
               "  maseir import bert.onnx -o bert.mir\n"
               "  maseir import bert.onnx -o bert.mir --json\n"
               "  maseir import legacy.onnx -o m.mir --dim-names s0=batch,input_ids:1=seq\n"
               "the ops and opsets it takes: spec/onnx-import.md",
)
    p.add_argument("model", metavar="MODEL", help="the .onnx file")
    p.add_argument("-o", "--output", required=True,
                   help="the .mir file to write (a FIFO or '-' for standard output are written through)")
    p.add_argument("--dim-names", metavar="OLD=NEW,...", action="append", default=[],
                   help="name symbolic dims by hand: OLD is a dim_param of the file or INPUT:AXIS (e.g. "
                        "input_ids:1=seq); by default generated names (s17, input_ids_dynamic_axes_1, none) "
                        "are named after their axis (batch, seq, height, width) and batch_size, "
                        "sequence_length, ... become batch and seq")
    add_external_data_threshold(p, keeps_input_layout=True)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--force", action="store_true",
                   help="write even when the output's extension names another format (.onnx, .pass, .data)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..frontends.onnx import external_data_threshold, import_model, parse_dim_names, read_model
    from ..validate import check

    dim_names = {}
    for text in args.dim_names:
        dim_names.update(parse_dim_names(text))
    output = check_output(args.output, args.model, kind="mir", force=args.force,
                          side_file=args.external_data_threshold is not None)
    start = time.perf_counter()
    model = read_model(Path(args.model))
    threshold = output_threshold(args.external_data_threshold, None, output,  # keeps the input's layout
                                 inherited=external_data_threshold(model))
    graph = import_model(model, Path(args.model), dim_names)
    problems = check(graph, checksums=False)
    if problems:  # e.g. two ONNX nodes writing one value: the file is malformed
        raise MaseIRError(f"{args.model}: the imported graph is invalid: {problems[0]}")
    nbytes = save(graph, output, external_data_threshold=threshold)
    seconds = time.perf_counter() - start
    report_written(graph, output, args.model, seconds, args.json, nbytes=nbytes,
                   dims={name: f"{src}[{axis}]" for name, (src, axis) in graph.dims.items()})
    return 0
