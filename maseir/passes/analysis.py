"""Analysis passes: ``count [OP]`` and ``report``. They return their input graph."""

from __future__ import annotations

from collections import Counter

from ..ir import Graph
from .registry import OP, PassResult, PassSpec, StepArgs, register


def op_histogram(graph: Graph) -> dict[str, int]:
    """Node count per op, most frequent first (ties by name)."""
    counts = Counter(n.op for n in graph.nodes)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def count(graph: Graph, args: StepArgs) -> PassResult:
    if args.object:
        n = sum(node.op == args.object for node in graph.nodes)
        return PassResult(graph, {args.object: n}, f"{args.object}: {n}")
    histogram = op_histogram(graph)
    summary = f"{len(graph.nodes)} nodes: " + ", ".join(f"{op} {n}" for op, n in histogram.items())
    return PassResult(graph, histogram, summary)


def report(graph: Graph, args: StepArgs) -> PassResult:
    by_format: Counter = Counter()
    for tensor in graph.params.values():
        fmt = str(tensor.type.format) if tensor.type.format else tensor.type.dtype
        by_format[fmt] += tensor.nbytes
    elements = graph.param_count()
    parameters, trainable = parameter_counts(graph)
    total_bytes = sum(by_format.values())
    result = {
        "nodes": len(graph.nodes),
        "ops": op_histogram(graph),
        "params": len(graph.params),
        "elements": elements,
        "parameters": parameters,
        "trainable_parameters": trainable,
        "trainable_elements": trainable,
        "bytes": total_bytes,
        "bytes_by_format": dict(sorted(by_format.items())),
    }
    pruned = [name for name, t in graph.params.items() if any(k.startswith("prune.") for k in t.annotations)]
    if pruned and graph.has_weights:
        zeros = _zeros(graph, pruned)
        elements_pruned = sum(graph.params[n].type.numel() for n in pruned)
        result["sparsity"] = {n: round(zeros[n] / graph.params[n].type.numel(), 6) for n in pruned}
        result["sparsity_overall"] = round(sum(zeros.values()) / max(1, elements_pruned), 6)
    formats = ", ".join(f"{k} {_size(v)}" for k, v in sorted(by_format.items()))
    summary = (f"{len(graph.nodes)} nodes, {parameters:,} parameters ({trainable:,} trainable), "
               f"{_size(total_bytes)}: {formats}")
    if "sparsity_overall" in result:
        summary += f"; {len(pruned)} pruned tensors, sparsity {result['sparsity_overall']:.4f}"
    return PassResult(graph, result, summary)


def _zeros(graph: Graph, names) -> dict[str, int]:
    import numpy as np

    from ..arrays import to_numpy
    return {n: int(np.count_nonzero(to_numpy(graph.params[n]) == 0)) for n in names}


def parameter_counts(graph: Graph) -> tuple[int, int]:
    """(parameters, trainable parameters): elements of the params that hold learnable
    numbers (floating point, or stored in a number format), each param counted once;
    integer index buffers (position ids) are not parameters."""
    weights = [t for t in graph.params.values()
               if t.type.format is not None or t.type.dtype.startswith(("float", "bfloat"))]
    return (sum(t.type.numel() for t in weights),
            sum(t.type.numel() for t in graph.params.values() if t.trainable))


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"



register(PassSpec("count", count, "count the nodes of an op, or of every op without one",
                  objects=OP, object_help="an op name (spec/ops.md); omit for a histogram", analysis=True))
register(PassSpec("report", report, "summarise ops, parameters (each counted once; index buffers apart), "
                  "trainable parameters and bytes by number format",
                  analysis=True))
