"""Tiny text classifiers for tests: a word-level tokenizer and a random bert-tiny that carries it.

``tiny_text_bert(folder)`` exports, the way ``maseir export FOLDER --random-init``
does, a BertForSequenceClassification of the bert-tiny shape whose vocabulary
is :data:`WORDS` (plus [PAD], [UNK], [CLS], [SEP]), so a graph reads text
with the tokenizer stored in it; ``reviews(n)`` gives short labelled texts
in those words.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import maseir

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
GOOD = ["good", "great", "fine", "lovely", "superb", "fun", "moving", "clever"]
BAD = ["bad", "awful", "dull", "boring", "poor", "weak", "silly", "tedious"]
OTHER = ["the", "a", "film", "movie", "was", "is", "very", "plot", "acting", "and", "not", "quite"]
WORDS = GOOD + BAD + OTHER


def tiny_tokenizer_json() -> str:
    """A BERT-style word-level tokenizer.json: lower-cased, split on whitespace and
    punctuation, ``[CLS] text [SEP]``, unknown words as [UNK] (id 1), [PAD] id 0."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return tokenizer.to_str()


def tiny_text_bert(folder: Path, *, num_labels: int = 2, labels: list[str] | None = None,
                   inputs: tuple[str, ...] = ("input_ids", "attention_mask"), seed: int = 0):
    """A .mir-ready Graph: random bert-tiny (hidden 128, 2 layers) with the tiny tokenizer."""
    from transformers import BertConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                        vocab_size=len(SPECIALS) + len(WORDS), max_position_embeddings=64, num_labels=num_labels)
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {name: i for i, name in enumerate(labels)}
    config.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(tiny_tokenizer_json())
    return maseir.export_pretrained(str(folder), num_labels=num_labels, random_init=True, inputs=inputs, seed=seed)


def reviews(n: int, seed: int = 0, num_labels: int = 2) -> list[tuple[str, int]]:
    """``n`` (text, label) pairs of 3 to 12 words; label 1 texts lean on GOOD words,
    label 0 on BAD ones (labels beyond 1 use OTHER words only)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % num_labels
        pool = {0: BAD, 1: GOOD}.get(label, OTHER)
        words = [rng.choice(pool if rng.random() < 0.4 else OTHER) for _ in range(rng.randint(3, 12))]
        out.append((" ".join(words).capitalize() + rng.choice([".", "!", "", " (really)"]), label))
    return out


def write_rows(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a .csv, .jsonl, .json (a list of objects) or .parquet file, by suffix."""
    path = Path(path)
    if path.suffix == ".csv":
        import csv
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise ValueError(path)
    return path
