"""BERT of the bert-tiny shape: exact outputs over batch sizes and lengths, dropout count, symbolic dims."""

import pytest
import torch

import maseir
from conftest import bert_inputs, tiny_bert_config


@pytest.mark.parametrize("batch,seq", [(1, 1), (2, 16), (5, 37), (3, 128), (1, 512)])
def test_outputs_equal_transformers(tiny_bert, batch, seq):
    model, graph = tiny_bert
    lowered = maseir.to_torch(graph)
    ids, mask = bert_inputs(batch, seq)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        got = lowered(ids, mask)
    assert got.shape == (batch, 2)
    assert (got - expected).abs().max() <= 1e-5


def test_six_dropout_nodes_and_attention_dropout(tiny_bert):
    _, graph = tiny_bert
    assert sum(n.op == "dropout" for n in graph.nodes) == 6
    attention = [n for n in graph.nodes if n.op == "scaled_dot_product_attention"]
    assert len(attention) == 2 and all(n.attrs["dropout_p"] == 0.1 for n in attention)


def test_symbolic_dims_survive_save_and_load(tiny_bert, tmp_path):
    _, graph = tiny_bert
    assert graph.dims == {"batch": ("input_ids", 0), "seq": ("input_ids", 1)}
    assert [v.type.shape for v in graph.inputs] == [("batch", "seq"), ("batch", "seq")]
    maseir.save(graph, tmp_path / "b.mir")
    loaded = maseir.load(tmp_path / "b.mir")
    assert loaded == graph and maseir.check(loaded) == []
    ids, mask = bert_inputs(5, 37)
    assert maseir.to_torch(loaded)(ids, mask).shape == (5, 2)


def test_names_come_from_module_scopes(tiny_bert):
    _, graph = tiny_bert
    names = {n.name for n in graph.nodes}
    assert "bert.encoder.layer.0.attention.self.query.linear" in names
    assert "bert.encoder.layer.1.output.dropout.dropout" in names
    node = graph.node("bert.encoder.layer.0.attention.self.query.linear")
    assert node.scope == "bert.encoder.layer.0.attention.self.query"
    assert node.inputs[1] == "bert.encoder.layer.0.attention.self.query.weight"
    assert graph.outputs == ["logits"]


def test_train_mode_gradients_reach_every_trainable_param(tiny_bert):
    _, graph = tiny_bert
    lowered = maseir.to_torch(graph).train()
    ids, mask = bert_inputs(2, 8)
    lowered(ids, mask).sum().backward()
    grads = {n: p.grad for n, p in lowered.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for n, g in grads.items() if "pooler" not in n or True)


def test_export_pretrained_from_config_folder_is_seeded(tmp_path):
    folder = tmp_path / "my-bert"
    tiny_bert_config(vocab_size=200, max_position_embeddings=64).save_pretrained(folder)
    a = maseir.export_pretrained(str(folder), random_init=True, seed=3)
    b = maseir.export_pretrained(str(folder), random_init=True, seed=3)
    c = maseir.export_pretrained(str(folder), random_init=True, seed=4)
    assert a == b and a != c
    assert a.metadata["init"] == "random" and a.metadata["labels"] == '["LABEL_0", "LABEL_1"]'


def test_labels_input_adds_the_loss(tmp_path):
    folder = tmp_path / "my-bert"
    tiny_bert_config(vocab_size=200, max_position_embeddings=64).save_pretrained(folder)
    graph = maseir.export_pretrained(str(folder), random_init=True,
                                     inputs=("input_ids", "attention_mask", "labels"))
    assert graph.outputs == ["loss", "logits"]
    assert graph.nodes[-1].op == "cross_entropy"
    ids, mask = bert_inputs(4, 10, vocab=200)
    loss, logits = maseir.to_torch(graph)(ids, mask, torch.tensor([0, 1, 1, 0]))
    assert loss.dim() == 0 and logits.shape == (4, 2)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1, 0]))
    assert torch.allclose(loss, expected)


def test_token_type_ids_input(tmp_path):
    folder = tmp_path / "my-bert"
    tiny_bert_config(vocab_size=200, max_position_embeddings=64).save_pretrained(folder)
    graph = maseir.export_pretrained(str(folder), random_init=True, inputs=("input_ids", "token_type_ids"))
    assert [v.name for v in graph.inputs] == ["input_ids", "token_type_ids"]
    assert maseir.check(graph) == []
