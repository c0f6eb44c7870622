"""The training loop: supervised fine-tuning of a graph's trainable params.

Not a pass itself: the ``finetune`` pass (maseir/passes/finetune.py) reads its
arguments, loads and encodes the data, calls ``train`` and records the result.
Training runs through the PyTorch lowering (``to_torch``) in train mode, so
dropout is live where the graph has it, and only params marked trainable
learn (LoRA freezes everything but its adapters and the head). A pruned
param (annotated ``prune.*``) keeps its zeros: its gradient is masked and
its pruned weights are set to zero again after every step.

The recipe is the one Hugging Face's Trainer uses for fine-tuning BERT
(Devlin et al. 2019, sec. 4/A.3; transformers ``get_linear_schedule_with_warmup``):
AdamW (Loshchilov & Hutter 2019) with weight decay on matrices only (not on
biases and norm weights), a learning rate that rises linearly from 0 over the
warm-up steps and then falls linearly to 0, gradient-norm clipping at 1.0,
and cross-entropy on the logits (or the graph's own loss output when it was
exported with ``labels``).

Deterministic on CPU: the same graph, data, config and seed give the same
weights, bit for bit (seeded shuffling and dropout, deterministic kernels,
a fixed thread count).
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .errors import MaseIRError
from .ir import Graph

Batch = tuple[dict[str, np.ndarray], np.ndarray]
"""A batch: the graph's inputs by name (int64 arrays [batch, seq]) and the label ids [batch]."""


class TrainError(MaseIRError):
    """A graph or configuration that cannot be trained."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tuning run.

    ``batch`` examples per forward pass, ``grad_accum`` passes per optimizer
    step; ``lr`` is the peak learning rate; ``warmup`` the fraction of the
    optimizer steps spent rising to it; ``threads`` the intra-op threads
    (None: the usable cores); ``log_every`` optimizer steps per loss-curve point.
    """

    epochs: int = 1
    lr: float = 5e-5
    batch: int = 16
    weight_decay: float = 0.01
    warmup: float = 0.1
    grad_accum: int = 1
    seed: int = 0
    threads: int | None = None
    max_grad_norm: float = 1.0
    log_every: int | None = None


@dataclass
class TrainResult:
    """The trained graph and what the run measured: the loss curve as (optimizer
    step, mean loss since the previous point), examples/s and wall seconds.
    ``first_loss`` is the first batch's loss, ``final_loss`` the mean over the
    last ``log_every`` optimizer steps' batches."""

    graph: Graph
    steps: int
    examples: int
    seconds: float
    examples_per_s: float
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    first_loss: float = float("nan")
    final_loss: float = float("nan")
    trained_params: int = 0


def loss_mode(graph: Graph) -> str:
    """``"graph"`` when the graph takes labels and outputs a loss (exported with
    ``labels``), else ``"logits"`` (cross-entropy on the logits output)."""
    names = [v.name for v in graph.inputs]
    return "graph" if "labels" in names and "loss" in graph.outputs else "logits"


def train(graph: Graph, batches: Callable[[np.ndarray], Iterator[Batch]], n_examples: int,
          config: TrainConfig, *, logits_output: str, progress: bool | None = None) -> TrainResult:
    """Fine-tune the trainable params of ``graph``; returns a new graph (``graph``
    is not modified) with the trained weights.

    ``batches(order)`` yields the batches of one epoch for the example indices
    in ``order`` (a permutation of range(n_examples), ``config.batch`` at a
    time). ``logits_output`` names the graph output holding the logits
    [batch, num_labels]. Raises TrainError when nothing is trainable.
    """
    import torch

    from . import tensors
    from .lowering.torch import to_torch
    from .progress import progress_bar
    from .runtime import default_threads

    trainable = [name for name, t in graph.params.items() if t.trainable]
    if not trainable:
        raise TrainError("the graph has no trainable params (all are frozen); nothing to fine-tune")
    if n_examples < 1:
        raise TrainError("no training examples")
    threads = config.threads or default_threads()
    mode = loss_mode(graph)
    input_names = [v.name for v in graph.inputs]
    out_index = graph.outputs.index("loss" if mode == "graph" else logits_output)
    batches_per_epoch = math.ceil(n_examples / config.batch)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup * total_steps))
    log_every = config.log_every or max(1, total_steps // 20)

    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode by default also NaN-fills every torch.empty: 2-3 % of a
    # MiniLM step on 2 idle cores, ~13 % on busy ones. No kernel reads memory it has
    # not written, so the weights are the same bytes without it (see the
    # torch.utils.deterministic docs); deterministic kernels stay on.
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            module = to_torch(graph).train()
            params = dict(module.named_parameters())
            learn = [params[n] for n in trainable if n in params]
            # pruned params (annotated prune.*): their zeros are the mask and stay exactly zero
            masks = [(params[n], params[n].detach() != 0) for n in trainable
                     if n in params and any(k.startswith("prune.") for k in graph.params[n].annotations)]
            decay = [p for p in learn if p.ndim >= 2]
            no_decay = [p for p in learn if p.ndim < 2]
            optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                           {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: _linear_schedule(step, warmup_steps, total_steps))
            rng = np.random.default_rng(config.seed)
            curve: list[tuple[int, float]] = []
            window: list[float] = []
            recent: collections.deque = collections.deque(maxlen=log_every * config.grad_accum)
            first = float("nan")
            step = seen = 0
            bar = progress_bar(total=total_steps, desc="finetune", unit="step", enabled=progress)
            start = time.perf_counter()
            for _epoch in range(config.epochs):
                order = rng.permutation(n_examples)
                pending = 0
                for feeds, labels in batches(order):
                    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
                    args = [torch.from_numpy(feeds[n]) if n != "labels" else target for n in input_names]
                    out = module(*args)
                    out = out[out_index] if isinstance(out, tuple) else out
                    loss = out if mode == "graph" else torch.nn.functional.cross_entropy(out, target)
                    (loss / config.grad_accum).backward()
                    value = float(loss.detach())
                    first = value if math.isnan(first) else first
                    window.append(value)
                    recent.append(value)
                    seen += len(labels)
                    pending += 1
                    if pending == config.grad_accum:
                        step = _step(optimizer, schedule, learn, config.max_grad_norm, step, masks)
                        pending = 0
                        if step % log_every == 0 or step == total_steps:
                            _log(curve, window, step)
                        bar.update(1)
                        bar.set_postfix(loss=f"{np.mean(recent):.4f}",
                                        ex_s=f"{seen / (time.perf_counter() - start):.1f}")
                if pending:  # the last, partial accumulation of the epoch
                    step = _step(optimizer, schedule, learn, config.max_grad_norm, step, masks)
                    bar.update(1)
            seconds = time.perf_counter() - start
            bar.close()
            if window:
                _log(curve, window, step)
            last = float(np.mean(recent))
            new = graph.copy()
            for name in trainable:
                if name in params:
                    old = graph.params[name]  # a quantized weight is stored in its format again (QAT)
                    new.params[name] = tensors.to_ir(name, params[name].detach(), True, old.type.format).replace(
                        annotations=old.annotations)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill
    return TrainResult(new, step, seen, seconds, seen / seconds if seconds else 0.0, curve, first, last,
                       sum(graph.params[n].type.numel() for n in trainable))


def _linear_schedule(step: int, warmup: int, total: int) -> float:
    """transformers' get_linear_schedule_with_warmup: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at ``total``."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def _step(optimizer, schedule, params, max_grad_norm: float, step: int, masks=()) -> int:
    import torch
    for param, keep in masks:  # no gradient, so no Adam moment, reaches a pruned weight
        if param.grad is not None:
            param.grad.mul_(keep)
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for param, keep in masks:  # and it is exactly zero after the step, whatever the optimizer did
            param.mul_(keep)
    return step + 1


def _log(curve: list, window: list[float], step: int) -> float:
    mean = float(np.mean(window))
    curve.append((step, round(mean, 6)))
    window.clear()
    return mean
