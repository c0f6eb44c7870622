"""``maseir bench MODEL --runtime onnxruntime``: latency and throughput of a .mir."""

from __future__ import annotations

import json

from ..errors import MaseIRError
from ..runtime import RUNTIMES
from . import load_valid
from .arguments import input_shape, non_negative_int, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure latency (p50/p90) and throughput with onnxruntime or torch",
        description="Run MODEL on generated inputs and report latency percentiles and throughput. "
                    "Inputs: float inputs standard normal, integer inputs within the embedding they "
                    "index, attention masks of ones. The batch dim is --batch, the seq dim --seq-len; "
                    "any other symbolic dim (an image's height, an imported model's dims) needs --shape. "
                    "Warm-up runs are excluded; the ONNX Runtime session is built once (graph "
                    "optimisation level all) and reused.",
        epilog="examples:\n"
               "  maseir bench m.mir --runtime onnxruntime --batch 1 --seq-len 128\n"
               "  maseir bench m.mir --runtime torch --threads 2 --json\n"
               "  maseir bench vit.mir --shape pixel_values=1,3,224,224",
)
    p.add_argument("model", metavar="MODEL", help="the .mir file")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime",
                   help="onnxruntime: the ONNX lowering in ONNX Runtime (CPU); torch: the torch.fx "
                        "lowering in eval mode under inference_mode (default: %(default)s)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="size of the batch dim (default: 1, or what --shape gives)")
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="size of the seq dim, for models that have one (default: 128, or what --shape gives)")
    p.add_argument("--shape", type=input_shape, action="append", default=[], metavar="NAME=D1,D2,...",
                   help="the shape of graph input NAME (repeatable); sizes its symbolic dims for every input")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="intra-op threads (default: the usable cores)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed runs first (default: %(default)s)")
    p.add_argument("--repeats", type=positive_int, default=30, help="timed runs (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..runtime import bench, input_shapes

    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in args.shape:
        if shapes.setdefault(name, shape) != shape:
            raise MaseIRError(f"--shape {name} is given twice, with different shapes")
    graph = load_valid(args.model)
    try:  # sizes are checked before the runtime is set up
        input_shapes(graph, batch=args.batch, seq_len=args.seq_len, shapes=shapes)
    except MaseIRError as exc:
        raise MaseIRError(f"{args.model}: {exc}") from None
    result = bench(graph, args.runtime, batch=args.batch, seq_len=args.seq_len, shapes=shapes,
                   threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    if args.json:
        print(json.dumps(dict(result.as_dict(), model=args.model), indent=2))
        return 0
    sizes = [f"batch {result.batch}" if result.batch is not None else "no batch dim",
             f"seq-len {result.seq_len}" if result.seq_len is not None else "no seq dim"]
    print(f"{args.model}: {result.runtime}, {', '.join(sizes)}, "
          f"{result.threads} thread{'s' if result.threads != 1 else ''}, "
          f"{result.repeats} runs after {result.warmup} warm-up")
    print("  inputs " + ", ".join(f"{name} [{','.join(map(str, shape))}]" for name, shape in result.shapes.items()))
    print(f"  latency p50 {result.p50_ms:.2f} ms, p90 {result.p90_ms:.2f} ms; "
          f"throughput {result.samples_per_s:.1f} samples/s")
    return 0
