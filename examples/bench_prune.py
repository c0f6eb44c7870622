"""Pruning that shrinks the model (embedded MiniLM, CPU): stored bytes of pruned tensors,
the compacted model's size and latency against the dense one, and how long prune takes.

    .venv/bin/python examples/bench_prune.py [--threads 2 --rounds 10 --per-round 10 --json]

1. Unstructured l1 pruning of the linear weights at 50% and 90%: the bytes the
   pruned tensors take in the .mir (a bitmask plus the non-zero values) over
   their dense bytes (aims: <= 0.6x and <= 0.2x), and the whole .mir's size.
2. Structured: 50% of the feed-forward neurons pruned (l1 norm of their rows)
   and removed by ``compact``: .mir size, and ONNX Runtime and PyTorch latency
   at batch 1 x 128 tokens against the dense model, the two taking turns round
   by round (aim: ORT latency <= 0.8x); the logits of the compacted model
   against the masked (pruned, not compacted) one.
3. Seconds ``prune`` takes on MiniLM (aim: under a second), median of 3.

``os.getloadavg()`` is printed before and after: timings from a loaded machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import maseir
from maseir import sparse
from maseir.dsl import parse
from maseir.passes import run_pipeline
from maseir.runtime import example_inputs, ort_session


def apply(graph, text: str):
    return run_pipeline(graph, parse(text + "\n"))[0]


def stored_ratio(graph, names) -> float:
    """Bytes the named params take in a .mir (sparse where smaller) over their dense bytes."""
    dense = stored = 0
    for name in names:
        tensor = graph.params[name]
        encoded = sparse.encode(tensor.data, sparse.unit_of(tensor.type))
        dense += tensor.nbytes
        stored += len(encoded) if encoded is not None else tensor.nbytes
    return stored / dense


def file_bytes(graph, folder: str, name: str) -> int:
    path = os.path.join(folder, name)
    maseir.save(graph, path)
    return os.path.getsize(path)


def latencies(runs: dict, rounds: int, per_round: int) -> dict:
    for run in runs.values():
        for _ in range(3):
            run()
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(t) * 1000, 2) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    results: dict = {"loadavg_before": [round(x, 2) for x in os.getloadavg()], "threads": args.threads}
    graph = apply(maseir.export_pretrained("minilm"), "remove dropout")
    linear_weights = [n.inputs[1] for n in graph.nodes if n.op == "linear"]
    with tempfile.TemporaryDirectory() as folder:
        dense_bytes = file_bytes(graph, folder, "dense.mir")
        results["dense_mir_bytes"] = dense_bytes
        results["unstructured"] = {}
        for sparsity in (0.5, 0.9):
            pruned = apply(graph, f"prune sparsity={sparsity} method=l1")
            results["unstructured"][sparsity] = {
                "pruned_tensors_stored_over_dense": round(stored_ratio(pruned, linear_weights), 4),
                "mir_bytes": file_bytes(pruned, folder, "pruned.mir")}
        masked = apply(graph, "prune sparsity=0.5 granularity=neuron targets=ffn")
        compacted = apply(masked, "compact")
        results["ffn50"] = {"mir_bytes": file_bytes(compacted, folder, "compact.mir")}
    ids, mask = example_inputs(graph, 1, 128)
    torch.set_num_threads(args.threads)
    dense_ort, compact_ort = (ort_session(g, threads=args.threads) for g in (graph, compacted))
    dense_torch, compact_torch = (maseir.to_torch(g) for g in (graph, compacted))
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

    def torch_run(module):
        def run():
            with torch.inference_mode():
                return module(tids, tmask)
        return run
    lat = latencies({"dense_ort": lambda: dense_ort(ids, mask), "compact_ort": lambda: compact_ort(ids, mask),
                     "dense_torch": torch_run(dense_torch), "compact_torch": torch_run(compact_torch)},
                    args.rounds, args.per_round)
    results["ffn50"].update(latency_ms=lat, ort_ratio=round(lat["compact_ort"] / lat["dense_ort"], 3),
                            torch_ratio=round(lat["compact_torch"] / lat["dense_torch"], 3))
    review_ids, review_mask = example_inputs(graph, 4, 128, seed=1)
    masked_logits = ort_session(masked, threads=args.threads)(review_ids, review_mask)
    results["ffn50"]["max_abs_diff_vs_masked"] = float(np.abs(compact_ort(review_ids, review_mask)
                                                              - masked_logits).max())
    times = []
    for _ in range(3):
        start = time.perf_counter()
        apply(graph, "prune sparsity=0.5 method=l1")
        times.append(time.perf_counter() - start)
    results["prune_seconds"] = round(statistics.median(times), 3)
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"MiniLM, {args.threads} threads; load average before {results['loadavg_before']}, "
          f"after {results['loadavg_after']}\n")
    print("| linear weights pruned (l1, local) | pruned tensors: stored / dense bytes | aim | .mir MB |")
    print("|---|---|---|---|")
    for sparsity, aim in ((0.5, 0.6), (0.9, 0.2)):
        r = results["unstructured"][sparsity]
        ok = "ok" if r["pruned_tensors_stored_over_dense"] <= aim else "MISSED"
        print(f"| {sparsity:.0%} | {r['pruned_tensors_stored_over_dense']:.3f} | <= {aim} {ok} "
              f"| {r['mir_bytes'] / 1e6:.1f} |")
    print(f"| 0% (dense) | 1.000 | | {dense_bytes / 1e6:.1f} |\n")
    f = results["ffn50"]
    print("| model | .mir MB | ORT ms (b1, 128) | torch ms (b1, 128) |\n|---|---|---|---|")
    print(f"| dense | {dense_bytes / 1e6:.1f} | {f['latency_ms']['dense_ort']:.2f} | {f['latency_ms']['dense_torch']:.2f} |")
    print(f"| 50% FFN neurons pruned + compact | {f['mir_bytes'] / 1e6:.1f} | {f['latency_ms']['compact_ort']:.2f} "
          f"| {f['latency_ms']['compact_torch']:.2f} |")
    print(f"\ncompact / dense latency: ORT {f['ort_ratio']:.3f} (aim <= 0.8 "
          f"{'ok' if f['ort_ratio'] <= 0.8 else 'MISSED'}), torch {f['torch_ratio']:.3f}; "
          f"compacted vs masked logits max abs diff {f['max_abs_diff_vs_masked']:.1e}")
    print(f"prune sparsity=0.5 on MiniLM: {results['prune_seconds']:.2f} s (aim < 1 s "
          f"{'ok' if results['prune_seconds'] < 1 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
