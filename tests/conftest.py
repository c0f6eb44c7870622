"""Shared fixtures: tiny models that export in a second, and the offline setting."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

import maseir

BERT_DIMS = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}


def tiny_bert_config(**overrides):
    """The bert-tiny shape: hidden 128, 2 layers, 2 heads."""
    from transformers import BertConfig
    kwargs = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                  vocab_size=1000, max_position_embeddings=512)
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def bert_inputs(batch: int, seq: int, vocab: int = 1000, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row in range(1, batch):  # ragged padding, as a real batch has
        mask[row, max(1, seq - row * 3):] = 0
    return ids, mask


@pytest.fixture(scope="session")
def tiny_bert():
    """(model, graph) for a seeded BertForSequenceClassification of the bert-tiny shape."""
    from transformers import BertForSequenceClassification
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config()).eval()
    ids, mask = bert_inputs(2, 16)
    graph = maseir.export(model, {"input_ids": ids, "attention_mask": mask}, dynamic_dims=BERT_DIMS)
    return model, graph
