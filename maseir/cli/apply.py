"""``maseir apply PIPELINE MODEL -o OUT``: run a pipeline as a pure file-to-file rewrite."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..dsl import parse
from ..errors import MaseIRError
from ..io import save
from . import check_output, load_valid, report_stream


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
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="the .pass file (unless -e is given), then the .mir file to rewrite")
    p.add_argument("-e", "--step", action="append", default=[], metavar="STEP",
                   help="a pipeline step given inline; repeatable, used instead of a .pass file")
    p.add_argument("-o", "--output", help="the .mir file to write (a FIFO or '-' for standard output are "
                                          "written through)")
    p.add_argument("--seed", type=int, default=0, help="seed for passes that draw random numbers "
                                                       "(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the step reports as JSON")
    p.add_argument("--force", action="store_true",
                   help="write even when the output's extension names another format (.onnx, .pass, .data)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..passes import changes_graph, run_pipeline

    pipeline, model_path = _pipeline_and_model(args)
    output = None if args.output is None else check_output(args.output, model_path, kind="mir", force=args.force)
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
        save(result, output)
    if args.json:
        print(json.dumps({"input": model_path, "output": args.output,
                          "steps": [vars(o) for o in outcomes]}, indent=2), file=stream)
    elif args.output:
        print(f"wrote {args.output}", file=stream)
    return 0


def _pipeline_and_model(args):
    if args.step:
        if len(args.files) != 1:
            raise MaseIRError("with -e, give only the model file (got: " + " ".join(args.files) + ")")
        return parse("\n".join(args.step) + "\n", "-e"), args.files[0]
    if len(args.files) != 2:
        raise MaseIRError("give a pipeline file and a model file, or -e STEP and a model file")
    source, model = args.files
    try:
        text = Path(source).read_text()
    except FileNotFoundError:
        raise MaseIRError(f"{source}: no such pipeline file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MaseIRError(f"{source}: cannot read the pipeline: {exc}") from None
    return parse(text, source), model
