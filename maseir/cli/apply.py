"""``maseir apply PIPELINE MODEL -o OUT``: run a pipeline as a pure file-to-file rewrite."""

from __future__ import annotations

import json

from ..dsl import parse, read_pipeline
from ..errors import MaseIRError
from ..io import save
from . import check_output, load_valid, report_stream
from .arguments import add_external_data_threshold, output_threshold


def add_parser(sub) -> None:
    p = sub.add_parser(
        "apply", help="run a pipeline (.pass file or -e steps) over a .mir file",
        usage="maseir apply [options] PIPELINE MODEL [-o OUT]\n"
              "       maseir apply [options] -e STEP [-e STEP ...] MODEL [-o OUT]",
        description="Run the steps of a pipeline over MODEL and write the result to OUT. The pipeline "
                    "is validated whole before any step runs; OUT is written atomically and only if "
                    "every step succeeded; MODEL is never modified. Without -o, only analysis steps "
                    "(count, report) are allowed. See 'maseir passes' for the steps.",
        epilog="examples:\n"
               "  maseir apply lab0.pass bert.mir -o bert-nodrop.mir\n"
               "  maseir apply -e 'count linear' bert.mir\n"
               "  maseir apply -e 'remove dropout' -e 'count dropout' bert.mir -o out.mir --json",
)
    # Two optional positionals, not nargs="+": --help then names them as the usage line does.
    # With -e, argparse puts the one file given into PIPELINE; _pipeline_and_model sorts that out.
    p.add_argument("pipeline", nargs="?", metavar="PIPELINE",
                   help="the .pass file with the steps (UTF-8, or UTF-16 with a byte order mark); "
                        "leave it out when -e gives the steps")
    p.add_argument("model", nargs="?", metavar="MODEL", help="the .mir file to rewrite (never modified)")
    p.add_argument("-e", "--step", action="append", default=[], metavar="STEP",
                   help="a pipeline step given inline; repeatable, used instead of a .pass file")
    p.add_argument("-o", "--output", help="the .mir file to write (a FIFO or '-' for standard output are "
                                          "written through)")
    p.add_argument("--seed", type=int, default=0, help="seed for passes that draw random numbers "
                                                       "(default: %(default)s)")
    add_external_data_threshold(p, keeps_input_layout=True)
    p.add_argument("--json", action="store_true", help="print the step reports as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars (finetune, calibrate)")
    p.add_argument("--force", action="store_true",
                   help="write even when the output's extension names another format (.onnx, .pass, .data)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..passes import changes_graph, run_pipeline
    from ..progress import QUIET

    QUIET[0] = args.quiet
    pipeline, model_path = _pipeline_and_model(args)
    output = threshold = None
    if args.output is not None:
        output = check_output(args.output, model_path, kind="mir", force=args.force,
                              side_file=args.external_data_threshold is not None)
        threshold = output_threshold(args.external_data_threshold, model_path, output)  # the input's layout
    stream = report_stream(output)  # stderr when the .mir goes to stdout
    if not args.output and changes_graph(pipeline):
        raise MaseIRError(f"{pipeline.source}: this pipeline changes the graph; give -o OUT to write the result")
    graph = load_valid(model_path)
    width = max((len(str(s)) for s in pipeline.steps), default=0)

    def progress(outcome) -> None:
        if not args.json:
            print(f"[{outcome.index}] {outcome.step:<{width}}  {outcome.summary}", file=stream, flush=True)

    result, outcomes = run_pipeline(graph, pipeline, seed=args.seed, on_step=progress)
    if output:
        save(result, output, external_data_threshold=threshold)
    if args.json:
        print(json.dumps({"input": model_path, "output": args.output,
                          "steps": [vars(o) for o in outcomes]}, indent=2), file=stream)
    elif args.output:
        print(f"wrote {args.output}", file=stream)
    return 0


def _pipeline_and_model(args):
    """(Pipeline, model path) from the command line, the pipeline validated (before the model
    is loaded, so a mistake in it costs no time). A pipeline without steps is refused, with or
    without -o: it can only mean the wrong file, or every step commented out."""
    from ..passes import validate

    files = [f for f in (args.pipeline, args.model) if f is not None]
    if args.step:
        if len(files) != 1:
            raise MaseIRError("with -e, give only the model file (got: " + (" ".join(files) or "none") + ")")
        pipeline, model = parse("\n".join(args.step) + "\n", "-e"), files[0]
    else:
        if len(files) != 2:
            raise MaseIRError("give a pipeline file and a model file, or -e STEP and a model file")
        pipeline, model = read_pipeline(args.pipeline), args.model
    if not pipeline.steps:
        raise MaseIRError(f"{pipeline.source}: the pipeline has no steps (only blank lines and comments)")
    validate(pipeline, args.seed)
    return pipeline, model
