"""``calibrate``: the ranges of the activations that quantized ops read, from real examples.

Runs ``samples`` examples of a dataset through the PyTorch lowering (eval
mode) and records, on the node computing each value that a node of ``ops``
reads, its range: the min and max seen (``method=minmax``), or the
``(100 - p)``-th and ``p``-th percentiles (``method=percentile``, from a
fixed-seed sample of each batch's values, within the min and max). The
ranges are annotations in the graph (maseir/passes/quantize/ranges.py), so a
later ``quantize frac=auto`` chooses each activation's format from them.
A range that is not finite is recorded as it is; ``quantize`` refuses to make
a format of it.
"""

from __future__ import annotations

import math

from ...ir import Graph
from ..registry import ArgSpec, PassResult, PassSpec, StepArgs, register
from .quantize import QUANTIZABLE_OPS
from .ranges import record, record_input

_SAMPLE_PER_BATCH = 8192


def observed_values(graph: Graph, ops: tuple[str, ...]) -> dict[str, str | None]:
    """Value name -> the node that computes it (None for a graph input), for every
    float activation a node of ``ops`` reads (through a ``quantize`` node: its source)."""
    producers = graph.producers()
    params = set(graph.params)
    inputs = {v.name: v for v in graph.inputs}
    out: dict[str, str | None] = {}
    for node in graph.nodes:
        if node.op not in ops:
            continue
        for value in node.inputs:
            if not value or value in params:
                continue
            source = producers.get(value)
            if source is not None and source.op == "quantize":
                value = source.inputs[0]
                source = producers.get(value)
            if source is None:
                if value in inputs and inputs[value].type.dtype.startswith(("float", "bfloat")):
                    out[value] = None
            elif len(source.outputs) == 1 and source.outputs[0].type.dtype.startswith(("float", "bfloat")):
                out[value] = source.name
    return out


def calibrate(graph: Graph, batches, *, ops: tuple[str, ...], method: str, percentile: float,
              seed: int = 0, total: int | None = None) -> tuple[Graph, dict]:
    """A copy of ``graph`` with the ranges of the activations ``ops`` read recorded.

    ``batches`` yields dicts of graph inputs (numpy). Returns the graph and a
    report (values recorded, examples, the widest and non-finite ranges)."""
    import torch

    from ...lowering.torch import to_torch

    watched = observed_values(graph, ops)
    module = to_torch(graph)
    wanted = {n: v for n in module.graph.nodes if (v := n.meta.get("maseir_value")) in watched}
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    samples: dict[str, list] = {v: [] for v in watched}
    generator = torch.Generator().manual_seed(seed)
    names = [v.name for v in graph.inputs]
    seen = 0

    class Observer(torch.fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            value = wanted.get(n)
            if value is not None and isinstance(result, torch.Tensor):
                flat = result.detach().reshape(-1).float()
                lows[value] = min(lows.get(value, float("inf")), float(flat.min()))
                highs[value] = max(highs.get(value, float("-inf")), float(flat.max()))
                if method == "percentile":
                    pick = torch.randint(0, flat.numel(), (min(_SAMPLE_PER_BATCH, flat.numel()),),
                                         generator=generator)
                    samples[value].append(flat[pick])
            return result

    from ...progress import progress_bar

    observer = Observer(module)
    with torch.inference_mode(), progress_bar(total=total or 0, desc="calibrate", unit="ex") as bar:
        for batch in batches:
            observer.run(*(torch.from_numpy(batch[n]) for n in names))
            seen += len(batch[names[0]])
            bar.update(len(batch[names[0]]))
    new = graph.copy()
    by_name = {n.name: n for n in new.nodes}
    for value, node_name in watched.items():
        if value not in lows:
            continue
        low, high = lows[value], highs[value]
        # a range that is not finite stays as seen: percentiles of the finite samples would turn a
        # mask's -inf into a finite range, and quantize would make a format of it
        if method == "percentile" and samples[value] and math.isfinite(low) and math.isfinite(high):
            pool = torch.cat(samples[value]).double()
            finite = pool[torch.isfinite(pool)]
            if finite.numel():
                low = max(low, float(torch.quantile(finite, (100 - percentile) / 100)))
                high = min(high, float(torch.quantile(finite, percentile / 100)))
        how = method if method == "minmax" else f"percentile {percentile:g}"
        if node_name is None:
            record_input(new, value, low, high, how, seen)
        else:
            record(by_name[node_name], low, high, how, seen)
    infinite = sorted(v for v in lows if not (abs(lows[v]) < float("inf") and abs(highs[v]) < float("inf")))
    report = {"values": len(lows), "examples": seen, "method": method, "not_finite": infinite,
              "ranges": {v: [lows[v], highs[v]] for v in sorted(lows)}}
    return new, report


def _calibrate(graph: Graph, args: StepArgs) -> PassResult:
    from ... import data

    encoder = data.Encoder(graph, args["seq_len"])
    examples = data.load_split(args["dataset"], args["split"], limit=args["samples"],
                               text_column=args["text_column"], label_column=args["label_column"])
    labels = None
    if encoder.needs_labels:
        labels = data.label_ids(examples, data.head_labels(graph), data.num_labels(graph))
    batches = encoder.batches(examples.texts, args["batch"], labels)
    new, report = calibrate(graph, batches, ops=tuple(args["ops"]), method=args["method"],
                            percentile=args["percentile"], seed=args.seed, total=len(examples))
    summary = (f"ranges of {report['values']} activations from {report['examples']:,} examples "
               f"({examples.split} of {args['dataset']}, {report['method']})")
    if report["not_finite"]:
        summary += f"; {len(report['not_finite'])} not finite (quantize will skip them)"
    details = {"dataset": args["dataset"], "split": examples.split, "examples": len(examples),
               "examples_sha256": examples.digest()}
    return PassResult(new, report, summary, details)


register(PassSpec("calibrate", _calibrate, "record the ranges of the activations quantized ops read, from real "
                  "examples (for quantize frac=auto)", args=(
                      ArgSpec("dataset", "str", "imdb", "imdb, rotten_tomatoes, hf:NAME[:CONFIG] or a data file"),
                      ArgSpec("split", "str", "train", "the split the examples come from"),
                      ArgSpec("samples", "int", 256, "examples to run", min=1),
                      ArgSpec("method", "str", "minmax", "minmax: the extremes seen; percentile: the "
                                                         "(100-p)th and pth percentiles", choices=("minmax", "percentile")),
                      ArgSpec("percentile", "float", 99.99, "p for method=percentile", min=50.0, max=100.0),
                      ArgSpec("batch", "int", 32, "examples per forward pass", min=1),
                      ArgSpec("seq_len", "int", 128, "truncate each text to this many tokens", min=2),
                      ArgSpec("ops", "list", tuple(o for o in QUANTIZABLE_OPS if o != "embedding"),
                              "record the inputs of these ops", choices=QUANTIZABLE_OPS),
                      ArgSpec("text_column", "str", None, "column holding the text (default: text)"),
                      ArgSpec("label_column", "str", None, "column holding the label (default: label)"),
                  )))
