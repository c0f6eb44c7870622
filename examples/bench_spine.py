"""Benchmark of the maseir spine on a BERT-base-sized random model (CPU).

    .venv/bin/python examples/bench_spine.py [--layers 12 --hidden 768 --repeats 5
                                              --export-repeats 3 --json]

What it measures, each as the median of several runs (seconds):

1. export: ``maseir.export`` (torch.export capture + conversion to the IR)
   against a plain non-strict ``torch.export.export`` of the same model with
   the same dynamic dims (batch, seq as ``Dim.DYNAMIC``). The ratio is the
   cost of the conversion on top of the capture; aim <= 1.5. The runs
   alternate after one untimed warm-up of each, so neither side pays for
   first-call initialisation.
2. I/O: ``maseir.save`` / ``maseir.load`` of the exported graph against
   ``onnx.save`` / ``onnx.load`` of a ModelProto holding the same weights as
   initializers (one per param, a trivial Identity graph). Both files live in
   one temp dir; each file is read once before timing, so the numbers are
   WARM (page cache hot), not cold-disk numbers. Note the differences in
   work: maseir.save fsyncs and renames atomically, maseir.load verifies a
   sha256 per tensor; the onnx calls do neither. Aim <= 1.0 for both ratios.
   "save, first call" is the first save of the freshly exported graph,
   which also hashes every tensor (hashes are computed lazily, then kept).
3. text/check: ``maseir.show`` of the loaded graph (aim < 1 s) and
   ``maseir.check`` (all checks, tensor checksums included), for information.

A ratio is maseir time / reference time: below 1 maseir is faster.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import onnx
import torch
import transformers
from onnx import helper, numpy_helper

import maseir


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` calls, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        result = None  # free the previous result first: no two 400 MB graphs alive at once
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build_model(layers: int, hidden: int, seed: int = 0):
    transformers.logging.set_verbosity_error()
    config = transformers.BertConfig(hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=hidden // 64, intermediate_size=4 * hidden)
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(config).eval()
    gen = torch.Generator().manual_seed(seed)
    inputs = {"input_ids": torch.randint(0, config.vocab_size, (2, 16), generator=gen),
              "attention_mask": torch.ones((2, 16), dtype=torch.long)}
    return model, inputs


def onnx_with_weights(graph) -> onnx.ModelProto:
    """An ONNX model whose initializers are the graph's params (the graph itself is trivial)."""
    inits = [numpy_helper.from_array(np.frombuffer(t.data, dtype=t.type.dtype).reshape(t.type.shape), name)
             for name, t in graph.params.items()]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "weights", [x], [y], inits)
    return helper.make_model(g)


def run(args) -> dict:
    model, inputs = build_model(args.layers, args.hidden)
    dims = {name: {0: "batch", 1: "seq"} for name in inputs}
    dyn = {name: {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC} for name in inputs}

    def plain():
        return torch.export.export(model, (), inputs, dynamic_shapes=dyn, strict=False)

    def ours():
        return maseir.export(model, inputs, dynamic_dims=dims)

    plain(), ours()  # warm-up
    t_plain, t_ours, graph = [], [], None
    for _ in range(args.export_repeats):
        t_plain.append(timed(plain, 1)[0])
        t, graph = timed(ours, 1)
        t_ours.append(t)
    r = {"export": {"maseir": statistics.median(t_ours), "torch.export": statistics.median(t_plain)}}

    proto = onnx_with_weights(graph)
    with tempfile.TemporaryDirectory() as tmp:
        mir, onx = os.path.join(tmp, "bert.mir"), os.path.join(tmp, "bert.onnx")
        r["save_first"] = timed(lambda: maseir.save(graph, mir), 1)[0]
        r["save"] = {"maseir": timed(lambda: maseir.save(graph, mir), args.repeats)[0],
                     "onnx": timed(lambda: onnx.save(proto, onx), args.repeats)[0]}
        del proto
        maseir.load(mir), onnx.load(onx)  # warm the page cache
        r["load"] = {"maseir": timed(lambda: maseir.load(mir), args.repeats)[0],
                     "onnx": timed(lambda: onnx.load(onx), args.repeats)[0]}
        r["size_mb"] = {"maseir": os.path.getsize(mir) / 1e6, "onnx": os.path.getsize(onx) / 1e6}
        loaded = maseir.load(mir)
    r["show"], text = timed(lambda: maseir.show(loaded), args.repeats)
    r["check"], problems = timed(lambda: maseir.check(loaded), args.repeats)
    for key in ("export", "save", "load"):
        ref = r[key]["torch.export" if key == "export" else "onnx"]
        r[key]["ratio"] = r[key]["maseir"] / ref
    r["graph"] = {"nodes": len(loaded.nodes), "params": len(loaded.params),
                  "param_count": loaded.param_count(), "show_lines": text.count("\n"),
                  "check_problems": len(problems)}
    r["machine"] = {"cores": os.cpu_count(), "torch": torch.__version__, "onnx": onnx.__version__,
                    "transformers": transformers.__version__, "python": platform.python_version(),
                    "platform": platform.platform()}
    r["settings"] = {"layers": args.layers, "hidden": args.hidden, "repeats": args.repeats,
                     "export_repeats": args.export_repeats}
    return r


def table(r: dict) -> str:
    m, g, s = r["machine"], r["graph"], r["settings"]
    aims = {"export": "<= 1.5", "save": "<= 1.0", "load": "<= 1.0"}
    rows = [f"maseir spine benchmark: BERT layers={s['layers']} hidden={s['hidden']}, "
            f"{g['param_count'] / 1e6:.1f}M params, {g['nodes']} nodes, {g['params']} tensors",
            f"machine: {m['cores']} cores, torch {m['torch']}, onnx {m['onnx']}, "
            f"transformers {m['transformers']}, python {m['python']}",
            f"medians: export over {s['export_repeats']} runs, the rest over {s['repeats']}; "
            "I/O is warm (files read once before timing)", "",
            f"{'step':<8}{'maseir s':>10}{'reference':>15}{'ref s':>9}{'ratio':>8}  aim"]
    for key, ref in (("export", "torch.export"), ("save", "onnx.save"), ("load", "onnx.load")):
        row = r[key]
        ok = "ok" if row["ratio"] <= float(aims[key].split()[1]) else "MISSED"
        ref_s = row["torch.export" if key == "export" else "onnx"]
        rows.append(f"{key:<8}{row['maseir']:>10.3f}{ref:>15}{ref_s:>9.3f}{row['ratio']:>8.2f}"
                    f"  {aims[key]} {ok}")
    rows += ["", f"save, first call (hashes every tensor): {r['save_first']:.3f} s",
             f"show:  {r['show']:.3f} s ({g['show_lines']} lines)  aim < 1 s "
             f"{'ok' if r['show'] < 1 else 'MISSED'}",
             f"check: {r['check']:.3f} s ({g['check_problems']} problems; checksums included)",
             f"file size: .mir {r['size_mb']['maseir']:.1f} MB, .onnx {r['size_mb']['onnx']:.1f} MB"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768, help="a multiple of 64 (head size)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per I/O, show and check timing")
    parser.add_argument("--export-repeats", type=int, default=3, help="runs per export timing")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
