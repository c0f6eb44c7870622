"""A random bert of the bert-tiny shape for the prune and compact tests, shared by both."""

from __future__ import annotations

import pytest
import torch

import maseir

from conftest import BERT_DIMS, bert_inputs, tiny_bert_config


def sharp_bert(**overrides):
    """(graph, (input_ids, attention_mask)): a random BertForSequenceClassification of the
    bert-tiny shape (tiny_bert_config) whose weights are large enough (initializer_range
    0.2) that attention is far from uniform and the logits far from zero. With the default
    0.02 a head computed with the wrong head size gives the same logits to 1e-5, so
    comparing outputs would prove little."""
    from transformers import BertForSequenceClassification
    torch.manual_seed(0)
    config = tiny_bert_config(**{"initializer_range": 0.2, **overrides})
    model = BertForSequenceClassification(config).eval()
    ids, mask = bert_inputs(2, 16, vocab=config.vocab_size)
    graph = maseir.export(model, {"input_ids": ids, "attention_mask": mask}, dynamic_dims=BERT_DIMS)
    return graph, bert_inputs(3, 11, vocab=config.vocab_size, seed=1)


@pytest.fixture(scope="session")
def sharp_tiny_bert():
    """sharp_bert() of the bert-tiny shape (hidden 128, 2 layers, 2 heads), exported once."""
    return sharp_bert()
