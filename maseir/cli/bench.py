"""``maseir bench MODEL --runtime onnxruntime``: latency and throughput of a .mir."""

from __future__ import annotations

import argparse
import json

from ..runtime import RUNTIMES
from . import load_valid


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure latency (p50/p90) and throughput with onnxruntime or torch",
        description="Run MODEL on generated inputs (batch x seq-len token ids within the vocabulary, "
                    "attention masks of ones) and report latency percentiles and throughput. Warm-up "
                    "runs are excluded; the ONNX Runtime session is built once (graph optimisation "
                    "level all) and reused.",
        epilog="examples:\n"
               "  maseir bench m.mir --runtime onnxruntime --batch 1 --seq-len 128\n"
               "  maseir bench m.mir --runtime torch --threads 2 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="the .mir file")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime", help="(default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=128,
                   help="size of every symbolic dim other than batch (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the usable cores)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..runtime import bench

    graph = load_valid(args.model)
    result = bench(graph, args.runtime, batch=args.batch, seq_len=args.seq_len, threads=args.threads,
                   warmup=args.warmup, repeats=args.repeats)
    if args.json:
        print(json.dumps(dict(result.as_dict(), model=args.model), indent=2))
    else:
        print(f"{args.model}: {result.runtime}, batch {result.batch}, seq-len {result.seq_len}, "
              f"{result.threads} thread{'s' if result.threads != 1 else ''}, "
              f"{result.repeats} runs after {result.warmup} warm-up")
        print(f"  latency p50 {result.p50_ms:.2f} ms, p90 {result.p90_ms:.2f} ms; "
              f"throughput {result.samples_per_s:.1f} samples/s")
    return 0
