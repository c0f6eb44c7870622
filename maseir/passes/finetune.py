"""``finetune``: supervised fine-tuning as a pipeline step.

A thin adapter: it checks that the graph can be trained (a tokenizer, a
logits output, trainable params) and that the dataset's labels fit its head,
all before any data is tokenised, then hands the examples to the training
loop (``maseir.train``) and records what it did: the loss curve, examples/s
and wall time in the report; the dataset, its size and the digest of the
examples used in the file's history entry, so the step can be reproduced.
After ``lora`` only the adapters and the head train.
"""

from __future__ import annotations

from ..errors import MaseIRError
from ..ir import Graph
from .registry import ArgSpec, PassResult, PassSpec, StepArgs, register


def finetune(graph: Graph, args: StepArgs) -> PassResult:
    from .. import data
    from ..train import TrainConfig, TrainError, train

    output = data.logits_output(graph)
    names = data.head_labels(graph)
    encoder = data.Encoder(graph, args["seq_len"])
    if not any(t.trainable for t in graph.params.values()):
        raise TrainError("the graph has no trainable params (all are frozen); nothing to fine-tune")
    seed = args["seed"] if args["seed"] is not None else args.seed
    examples = data.load_split(args["dataset"], args["split"], limit=args["limit"], seed=0,
                               text_column=args["text_column"], label_column=args["label_column"])
    if not len(examples):
        raise MaseIRError(f"{examples.describe()}: no examples to train on")
    labels = data.label_ids(examples, names, data.num_labels(graph))
    texts = examples.texts
    config = TrainConfig(epochs=args["epochs"], lr=args["lr"], batch=args["batch"],
                         weight_decay=args["weight_decay"], warmup=args["warmup"],
                         grad_accum=args["grad_accum"], seed=seed, threads=args["threads"],
                         log_every=args["log_every"])

    def batches(order):
        for start in range(0, len(order), config.batch):
            chosen = order[start:start + config.batch]
            targets = [labels[i] for i in chosen]
            feeds = encoder.encode([texts[i] for i in chosen], targets if encoder.needs_labels else None)
            yield feeds, targets

    result = train(graph, batches, len(examples), config, logits_output=output)
    report = {
        "dataset": args["dataset"], "source": examples.source, "split": examples.split,
        "examples": len(examples), "label_counts": examples.label_counts(), "digest": examples.digest(),
        "epochs": config.epochs, "steps": result.steps, "trained_parameters": result.trained_params,
        "loss_curve": result.loss_curve, "first_loss": round(result.first_loss, 6),
        "final_loss": round(result.final_loss, 6), "examples_per_s": round(result.examples_per_s, 2),
        "seconds": round(result.seconds, 2), "seed": seed, "threads": config.threads,
    }
    summary = (f"{result.trained_params:,} params on {len(examples):,} examples ({examples.split} of "
               f"{args['dataset']}), {config.epochs} epoch{'s' if config.epochs != 1 else ''}, "
               f"{result.steps} steps: loss {result.first_loss:.3f} -> {result.final_loss:.3f}, "
               f"{result.examples_per_s:.1f} examples/s, {result.seconds:.0f} s")
    if args["eval_limit"]:
        from ..evaluate import evaluate
        scores = evaluate(result.graph, args["dataset"], None, limit=args["eval_limit"], seq_len=args["seq_len"],
                          threads=args["threads"], text_column=args["text_column"],
                          label_column=args["label_column"])
        report["eval"] = {k: scores[k] for k in ("accuracy", "macro_f1", "examples", "split")}
        summary += f"; {scores['split']} accuracy {scores['accuracy']:.4f} on {scores['examples']:,}"
    details = {"dataset": args["dataset"], "source": examples.source, "split": examples.split,
               "examples": len(examples), "examples_sha256": examples.digest()}
    return PassResult(result.graph, report, summary, details)


register(PassSpec("finetune", finetune, "supervised fine-tuning of the trainable params (AdamW, linear warm-up "
                  "and decay); after lora: adapters and head only, after quantize: QAT", args=(
                      ArgSpec("dataset", "str", "imdb", "imdb, rotten_tomatoes, hf:NAME[:CONFIG], or a "
                                                        ".csv/.jsonl/.json/.parquet file with text and label"),
                      ArgSpec("split", "str", "train", "the split to train on"),
                      ArgSpec("epochs", "int", 1, "passes over the examples", min=1, max=1000),
                      ArgSpec("lr", "float", 5e-5, "peak learning rate", min=0.0, max=10.0),
                      ArgSpec("batch", "int", 16, "examples per forward pass", min=1, max=65536),
                      ArgSpec("seq_len", "int", 128, "truncate each text to this many tokens", min=2,
                              max=1_000_000),
                      ArgSpec("limit", "int", None, "train on the first N examples of the split "
                                                    "(default: all)", min=1),
                      ArgSpec("seed", "int", None, "seed for shuffling and dropout (default: apply --seed)",
                              min=0),
                      ArgSpec("weight_decay", "float", 0.01, "AdamW weight decay (matrices only)", min=0.0),
                      ArgSpec("warmup", "float", 0.1, "fraction of the steps spent warming the learning "
                                                      "rate up from 0", min=0.0, max=1.0),
                      ArgSpec("grad_accum", "int", 1, "forward passes per optimizer step", min=1, max=65536),
                      ArgSpec("threads", "int", None, "intra-op threads (default: the usable cores)", min=1),
                      ArgSpec("eval_limit", "int", None, "after training, the accuracy on the first N test "
                                                         "examples", min=1),
                      ArgSpec("log_every", "int", None, "optimizer steps per loss-curve point "
                                                        "(default: 20 points)", min=1),
                      ArgSpec("text_column", "str", None, "column holding the text (default: text)"),
                      ArgSpec("label_column", "str", None, "column holding the label (default: label)"),
                  )))
