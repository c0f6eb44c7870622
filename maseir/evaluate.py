"""Accuracy, latency and size of a classification graph on a dataset, with either runtime.

``evaluate(graph, dataset="imdb", split="test")`` checks everything that can
be checked first (runtime, sizes, the graph's logits output and tokenizer,
the dataset, split and columns, that the labels fit the head), then
tokenises the examples in batches (:class:`maseir.data.Encoder`), runs each
batch through ONNX Runtime (``maseir.runtime.ort_session``, one session per
graph) or the torch lowering (eval mode, ``torch.inference_mode``), and
returns a dict of plain values (JSON-ready unless ``return_logits``).

Latency is the wall time of each batch's model call alone (tokenisation
excluded), after one untimed warm-up call on the first batch; throughput is
examples over the summed batch times.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from .data import Encoder, default_split, head_labels, label_ids, load_split, logits_output
from .errors import MaseIRError
from .ir import DTYPE_ITEMSIZE, Graph
from .progress import progress_bar
from .runtime import RUNTIMES


_FORMAT_BITS = {"float32": 32, "float16": 16, "bfloat16": 16}


def weight_params(graph: Graph) -> list[str]:
    """Names of the params that are weights: those with a number format (every float
    param of an exported graph, and quantized ones); integer buffers such as
    ``position_ids`` have none."""
    return [name for name, t in graph.params.items() if t.type.format is not None]


def bits_per_weight(graph: Graph) -> float:
    """Average stored bits per weight element: 8 x stored bytes / elements, over
    :func:`weight_params` (32.0 for a float32 graph). Raises MaseIRError for a
    graph with no weights."""
    names = weight_params(graph)
    elements = sum(graph.params[n].type.numel() for n in names)
    if not elements:
        raise MaseIRError("the graph has no weights")
    return 8 * sum(graph.params[n].nbytes for n in names) / elements


def format_bits_per_weight(graph: Graph) -> float:
    """Average bits per weight element that the weights' number formats call for
    (``fixed<8,4>`` counts 8 even while stored as float32), over :func:`weight_params`."""
    names = weight_params(graph)
    elements = sum(graph.params[n].type.numel() for n in names)
    if not elements:
        raise MaseIRError("the graph has no weights")
    total = 0
    for n in names:
        t = graph.params[n]
        fmt = t.type.format
        bits = fmt.width if fmt.kind in ("fixed", "int") and fmt.width else \
            _FORMAT_BITS.get(fmt.kind, 8 * DTYPE_ITEMSIZE[t.type.dtype])
        total += bits * t.type.numel()
    return total / elements


def macro_f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Unweighted mean over classes of F1 = 2TP / (2TP + FP + FN), over the classes
    that occur in ``labels`` or ``predictions`` (scikit-learn's
    ``f1_score(average="macro")`` with its default labels)."""
    classes = sorted(set(labels) | set(predictions))
    if not classes:
        raise MaseIRError("macro-F1 of no examples")
    scores = []
    for c in classes:
        tp = sum(1 for y, p in zip(labels, predictions) if y == c and p == c)
        fp = sum(1 for y, p in zip(labels, predictions) if y != c and p == c)
        fn = sum(1 for y, p in zip(labels, predictions) if y == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def file_bytes(path: str | os.PathLike) -> int:
    """Bytes a saved graph takes on disk: the .mir plus its external data file, if any."""
    path = Path(path)
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def evaluate(graph: Graph | str | os.PathLike, dataset: str = "imdb", split: str | None = None, *,
             limit: int | None = None, batch_size: int = 32, seq_len: int = 128, runtime: str = "onnxruntime",
             threads: int | None = None, progress: bool | None = None, text_column: str | None = None,
             label_column: str | None = None, seed: int = 0, path: str | os.PathLike | None = None,
             return_logits: bool = False) -> dict:
    """Evaluate a sequence-classification graph on one split of a dataset.

    ``graph`` is a Graph or the path of a .mir (then loaded, and its size
    reported); ``path`` names the file a given Graph was loaded from, for the
    size. ``dataset``, ``split``, ``limit``, ``seed``, ``text_column`` and
    ``label_column`` are as in :func:`maseir.data.load_split`; ``split=None``
    takes ``test`` where the dataset has it, else its only split (a local
    file: all of it). ``seq_len`` truncates each text (in tokens);
    ``threads`` is the runtimes' intra-op thread count (default: the usable
    cores). ``progress``: a tqdm bar on stderr; None shows it when stderr is a
    terminal and the run lasts over a second.

    Returns a dict: ``accuracy`` and ``macro_f1`` (fractions), ``examples``,
    ``label_counts``, ``dataset``, ``source``, ``split``, ``split_size``,
    ``digest`` (of the examples, :meth:`maseir.data.Examples.digest`),
    ``runtime``, ``threads``, ``batch_size``, ``seq_len``, ``batches``,
    ``latency_ms`` (``median`` and ``p90`` per batch), ``throughput``
    (examples/s), ``seconds`` (wall time from the first batch's tokenisation
    to the last result), ``setup_seconds`` (building the ONNX Runtime session
    or the torch module), ``file_bytes`` (None without a path),
    ``parameters``, ``bits_per_weight`` (stored) and
    ``format_bits_per_weight`` (both None for a graph without weights). With
    ``return_logits`` also ``predictions`` and ``label_ids`` (lists of ints)
    and ``logits`` (float32 numpy array [examples, classes]).

    Raises MaseIRError, before any tokenisation or model run, for a bad
    runtime or size, a graph without a logits output or tokenizer, a bad
    dataset, split or column, or labels that do not fit the head; and for a
    model that cannot run a batch (naming the batch).
    """
    import numpy as np

    if runtime not in RUNTIMES:
        raise MaseIRError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    for name, value in (("batch size", batch_size), ("threads", threads), ("limit", limit)):
        if value is not None and value < 1:
            raise MaseIRError(f"{name} must be at least 1 (got {value})")
    if isinstance(graph, (str, os.PathLike)):
        from .io import load
        path, graph = graph, load(graph)
    from .runtime import default_threads

    threads = threads or default_threads()
    output = logits_output(graph)
    names = head_labels(graph)
    encoder = Encoder(graph, seq_len)
    split = split or default_split(dataset)
    examples = load_split(dataset, split, limit=limit, seed=seed, text_column=text_column,
                          label_column=label_column)
    targets = label_ids(examples, names, len(names))
    has_weights = bool(weight_params(graph))
    bits = round(bits_per_weight(graph), 4) if has_weights else None
    format_bits = round(format_bits_per_weight(graph), 4) if has_weights else None

    batches = encoder.batches(examples.texts, batch_size, targets if encoder.needs_labels else None)
    logits, times = [], []
    setup_began = time.perf_counter()
    with _runner(graph, runtime, threads, output) as run, \
            progress_bar(total=len(examples), desc="eval", unit="ex", enabled=progress) as bar:
        setup = time.perf_counter() - setup_began
        start = time.perf_counter()
        for index, batch in enumerate(batches):
            if index == 0:
                _call(run, batch, index, runtime)  # warm-up: the first call allocates and plans
            began = time.perf_counter()
            logits.append(_call(run, batch, index, runtime))
            times.append(time.perf_counter() - began)
            bar.update(len(batch["input_ids"]))
    seconds = time.perf_counter() - start
    scores = np.concatenate(logits).astype(np.float32, copy=False)
    predictions = scores.argmax(axis=1).tolist()
    correct = sum(p == y for p, y in zip(predictions, targets))
    ms = [t * 1000 for t in times]
    result = {
        "accuracy": correct / len(targets),
        "macro_f1": macro_f1(targets, predictions),
        "examples": len(examples),
        "label_counts": examples.label_counts(),
        "dataset": dataset,
        "source": examples.source,
        "split": examples.split,
        "split_size": examples.split_size,
        "digest": examples.digest(),
        "runtime": runtime,
        "threads": threads,
        "batch_size": batch_size,
        "seq_len": encoder.seq_len,
        "batches": len(times),
        "latency_ms": {"median": round(statistics.median(ms), 3),
                       "p90": round(float(np.percentile(np.asarray(ms), 90)), 3)},
        "throughput": round(len(examples) / sum(times), 2),
        "seconds": round(seconds, 3),
        "setup_seconds": round(setup, 3),
        "file_bytes": file_bytes(path) if path is not None else None,
        "parameters": graph.param_count(),
        "bits_per_weight": bits,
        "format_bits_per_weight": format_bits,
    }
    if return_logits:
        result.update(predictions=predictions, label_ids=targets, logits=scores)
    return result


@contextlib.contextmanager
def _runner(graph: Graph, runtime: str, threads: int, output: str):
    """A function from one batch (dict of numpy arrays) to the logits (numpy array),
    valid inside the ``with`` block (torch's thread count is restored after it)."""
    if runtime == "onnxruntime":
        from .runtime import ort_session

        session = ort_session(graph, threads=threads).session
        yield lambda batch: session.run([output], batch)[0]
        return

    import torch

    from .lowering.torch import to_torch

    module = to_torch(graph)  # lowered in eval mode
    names = [v.name for v in graph.inputs]
    index = graph.outputs.index(output)
    several = len(graph.outputs) > 1

    def run(batch):
        with torch.inference_mode():
            out = module(*(torch.from_numpy(batch[n]) for n in names))
        return (out[index] if several else out).float().numpy()

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield run
    finally:
        torch.set_num_threads(previous)


def _call(run, batch: dict, index: int, runtime: str):
    try:
        return run(batch)
    except MaseIRError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shape = "x".join(str(d) for d in batch["input_ids"].shape)
        raise MaseIRError(f"the model cannot run batch {index} ({shape} tokens) with {runtime}: "
                          f"{first[:300]}") from None
