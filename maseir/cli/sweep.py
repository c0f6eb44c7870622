"""``maseir sweep PIPELINE MODEL --vary STEP.ARG=V1,V2,...``: one pipeline run and evaluation per point."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import MaseIRError
from . import load_valid
from .arguments import positive_int
from .eval import add_evaluation_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a pipeline once per value of varied arguments, evaluate each, write a table and a plot",
        usage="maseir sweep [options] PIPELINE MODEL --vary STEP.ARG=V1,V2,... [--vary ...]",
        description="Run PIPELINE over MODEL once per point of a grid of argument values (several --vary "
                    "give every combination, the first varying slowest), evaluate every result on a dataset "
                    "as 'maseir eval' does, and write a table: a CSV (--out) and a JSON record next to it, "
                    "rewritten after every point, so an interrupted sweep continues with --resume. Every "
                    "point's pipeline is validated before any work. The steps before the first varied step "
                    "run once; their result is the reference row (e.g. the unquantized model) and every "
                    "point starts from it. MODEL is never modified.\n\n"
                    "STEP names a step of the pipeline: its verb (quantize), VERB#K for the K-th step with "
                    "that verb (quantize#2), VERB:OBJECT for a step written with an object (fuse:lora), or "
                    "its number (2, as 'maseir apply' numbers the steps). ARG is an argument of that step's "
                    "pass ('maseir passes'); when the step does not write it, each point adds it. Values "
                    "are written as in a pipeline (4, 0.5, l1, \"a b\"), one point per comma-separated "
                    "value.\n\n"
                    "Table columns: point (0: the reference), reference, one per varied argument, accuracy, "
                    "macro_f1, examples, file_bytes (each point's .mir on disk), bits_per_weight, "
                    "format_bits_per_weight, parameters, latency_ms_median, latency_ms_p90, throughput, "
                    "threads, seconds, eval_seconds, digest, file (with --keep), pipeline.",
        epilog="examples:\n"
               "  maseir sweep ptq.pass m-sft.mir --vary quantize.bits=4,6,8,12,16 --dataset imdb --limit 1000 \\\n"
               "      --plot acc_vs_bits.png\n"
               "  maseir sweep prune.pass m-sft.mir --vary prune.sparsity=0.1,0.3,0.5,0.7,0.9 \\\n"
               "      --vary prune.method=random,l1 --dataset imdb --limit 1000 --plot acc_vs_sparsity.png\n"
               "  maseir sweep lora.pass m.mir --vary lora.rank=2,4,8 --jobs 2 -o rank.csv --keep points/\n"
               "  maseir sweep lora.pass m.mir --vary lora.rank=2,4,8 -o rank.csv --resume",
)
    p.add_argument("pipeline", metavar="PIPELINE", help="the .pass file with the steps")
    p.add_argument("model", metavar="MODEL", help="the .mir file (never modified)")
    p.add_argument("--vary", action="append", default=[], metavar="STEP.ARG=V1,V2,...", required=True,
                   help="an argument and its values; repeat for a grid")
    p.add_argument("-o", "--out", default=None, metavar="TABLE.csv",
                   help="the CSV table; the JSON table is TABLE.json next to it (default: the --plot file's "
                        "name with .csv, else sweep.csv)")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished points of an existing table made by the same sweep (same model, "
                        "pipeline, seed, varied values and evaluation settings) and run the others")
    p.add_argument("--keep", metavar="DIR", default=None,
                   help="save each point's .mir (and reference.mir) in DIR, created if missing (default: each "
                        "is saved to a temporary file to measure its size, then removed)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw --y against --x, one line per combination of the other varied arguments, the "
                        "reference as a dashed line (.png, .svg or .pdf)")
    p.add_argument("--x", default=None, help="the plot's x column (default: the first varied argument)")
    p.add_argument("--y", default=None, help="the plot's y column (default: accuracy)")
    add_evaluation_options(p)
    p.add_argument("--seed", type=int, default=0, help="the pipeline seed, as in 'maseir apply' (default: %(default)s)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="points run at once, in worker processes (default: %(default)s: in this process)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="intra-op threads per job (default: the usable cores // --jobs)")
    p.add_argument("--json", action="store_true", help="print the table's rows as JSON at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no line per point")
    p.set_defaults(run=run)


def default_table(plot: str | None) -> str:
    """The table's name when --out is not given: next to the plot, else sweep.csv."""
    return str(Path(plot).with_suffix(".csv")) if plot else "sweep.csv"


def run(args) -> int:
    from ..dsl import read_pipeline
    from ..plot import check_axes, plot, plot_output, read_table
    from ..progress import write_line
    from ..sweep import parse_vary, plan_sweep, sweep, table_outputs

    pipeline = read_pipeline(args.pipeline)
    vary: dict = {}
    for text in args.vary:
        key, values = parse_vary(text)
        if key in vary:
            raise MaseIRError(f"--vary {key} given twice")
        vary[key] = values
    plan = plan_sweep(pipeline, vary, args.seed)  # every point validated before any file is read
    keys = [v.key for v in plan.varies]
    if args.plot or args.x or args.y:
        check_axes(keys, args.x, args.y)
    out = args.out or default_table(args.plot)
    inputs = (args.model, args.pipeline)
    table_outputs(out, *inputs)
    picture = plot_output(args.plot, *inputs) if args.plot else None
    if picture is not None and os.path.realpath(picture.name) in {os.path.realpath(out),
                                                                 os.path.realpath(Path(out).with_suffix(".json"))}:
        raise MaseIRError(f"{args.plot}: the plot must not be the table")
    graph = load_valid(args.model)
    chatty = not (args.quiet or args.json)

    def said(row: dict, done: int, total: int) -> None:
        if not chatty:
            return
        what = "reference" if row["reference"] else ", ".join(f"{k}={_value(row[k])}" for k in keys)
        write_line(f"[{done}/{total}] {what}: accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}, "
                   f"{row['file_bytes'] / 1e6:.2f} MB, {_bits(row['bits_per_weight'])} bits/weight, "
                   f"median batch {row['latency_ms_median']:.1f} ms, {row['seconds']:.1f} s")

    rows = sweep(graph, pipeline, vary, dataset=args.dataset, split=args.split, limit=args.limit,
                 runtime=args.runtime, batch_size=args.batch_size, seq_len=args.seq_len,
                 text_column=args.text_column, label_column=args.label_column, seed=args.seed, jobs=args.jobs,
                 threads=args.threads, table=out, resume=args.resume, keep=args.keep,
                 progress=False if not chatty else None, model_name=os.path.basename(args.model), on_row=said)
    json_out = str(Path(out).with_suffix(".json"))
    if picture is not None:
        plot(read_table(json_out), picture, x=args.x, y=args.y)
    if args.json:
        print(json.dumps({"table": out, "record": json_out, "plot": args.plot, "rows": rows}, indent=2))
    else:
        written = ", ".join(filter(None, (out, json_out, args.plot)))
        print(f"wrote {written}: {len(rows) - 1} point{'s' if len(rows) != 2 else ''} and the reference",
              file=sys.stdout)
    return 0


def _value(value) -> str:
    from ..dsl import print_value
    return print_value(tuple(value) if isinstance(value, list) else value)


def _bits(value) -> str:
    return "-" if value is None else f"{value:.2f}"
