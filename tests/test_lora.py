"""LoRA: insertion changes no output, trainable counts are r*(in+out) plus the
head, fuse equals the unfused graph, and maseir agrees with PEFT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import maseir
from maseir import tensors
from maseir.dsl import DSLError, parse
from maseir.passes import PassError, run_pipeline
from maseir.passes.lora import OF, ROLE
from maseir.serialize import digest

from conftest import BERT_DIMS, bert_inputs, tiny_bert_config
from models import SETTINGS, mlps


def lora_step(rank, alpha, extra=""):
    return parse(f"lora rank={rank} alpha={alpha!r} {extra}\n")


@SETTINGS
@given(mlps(), st.integers(1, 16), st.floats(0.1, 64), st.integers(0, 2**16))
def test_lora_keeps_eval_outputs_on_random_mlps(case, rank, alpha, seed):
    model, (width,) = case
    graph = maseir.export(model, (torch.randn(2, width),))
    linears = [n for n in graph.nodes if n.op == "linear"]
    if len(linears) < 2:
        return  # the only linear is the head
    before = digest(graph)
    out, (outcome,) = run_pipeline(graph, lora_step(rank, alpha, "ops=linear"), seed=seed)  # all but the head
    again, _ = run_pipeline(graph, lora_step(rank, alpha, "ops=linear"), seed=seed)
    assert digest(graph) == before and digest(out) == digest(again)  # pure and deterministic
    assert maseir.check(out) == []
    x = torch.randn(5, width)
    with torch.no_grad():
        torch.testing.assert_close(maseir.to_torch(out)(x), maseir.to_torch(graph)(x), rtol=0, atol=1e-6)
    adapted = linears[:-1]
    expected = sum(rank * (n.outputs[0].type.shape[-1] + graph.params[n.inputs[1]].type.shape[1])
                   for n in adapted)
    head = linears[-1]
    expected += sum(graph.params[p].type.numel() for p in head.inputs[1:] if p)
    assert outcome.report["trainable_parameters"] == expected


@pytest.fixture(scope="module")
def bert():
    from transformers import BertForSequenceClassification
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config()).eval()
    ids, mask = bert_inputs(2, 16)
    return model, maseir.export(model, {"input_ids": ids, "attention_mask": mask}, dynamic_dims=BERT_DIMS)


@SETTINGS
@given(st.integers(1, 32), st.sampled_from([1.0, 8.0, 16.0, 32.0]),
       st.sampled_from(["targets=query,value", "targets=query,key,value,dense", "ops=linear"]))
def test_lora_keeps_bert_outputs_and_counts_trainable_params(bert, rank, alpha, where):
    _, graph = bert
    out, (outcome,) = run_pipeline(graph, lora_step(rank, alpha, where))
    ids, mask = bert_inputs(3, 20)
    with torch.no_grad():
        torch.testing.assert_close(maseir.to_torch(out)(ids, mask), maseir.to_torch(graph)(ids, mask),
                                   rtol=0, atol=1e-6)
    adapted = [graph.node(name) for name in outcome.report["layers"]]
    per_layer = sum(rank * sum(graph.params[n.inputs[1]].type.shape) for n in adapted)
    head = graph.params["classifier.weight"].type.numel() + graph.params["classifier.bias"].type.numel()
    assert outcome.report["trainable_parameters"] == per_layer + head
    assert all(not t.trainable for name, t in out.params.items()
               if ROLE not in t.annotations and not name.startswith("classifier."))


def test_fuse_after_training_equals_the_unfused_graph(bert):
    _, graph = bert
    adapted, _ = run_pipeline(graph, parse("lora rank=4 alpha=8 targets=query,value,dense"))
    trained = _pretend_trained(adapted)
    fused, (outcome,) = run_pipeline(trained, parse("fuse lora"))
    assert outcome.report["fused"] == 2 * 5 + 1  # query, value and three dense per layer, and the pooler
    assert sorted(n.op for n in fused.nodes) == sorted(n.op for n in graph.nodes)
    assert [n.name for n in fused.nodes] == [n.name for n in graph.nodes]
    assert set(fused.params) == set(graph.params)
    assert {n for n, t in fused.params.items() if t.trainable} == {n for n, t in graph.params.items() if t.trainable}
    assert maseir.check(fused) == []
    ids, mask = bert_inputs(3, 20)
    with torch.no_grad():
        torch.testing.assert_close(maseir.to_torch(fused)(ids, mask), maseir.to_torch(trained)(ids, mask),
                                   rtol=0, atol=1e-5)


def test_fuse_of_fresh_adapters_gives_back_the_graph(bert):
    _, graph = bert
    adapted, _ = run_pipeline(graph, parse("lora rank=8 alpha=16"))
    fused, _ = run_pipeline(adapted, parse("fuse lora"))
    fused.history = []
    assert digest(fused) == digest(graph)  # B is zero: W + 0 is W, and the trainable flags come back


def _pretend_trained(graph, seed=0):
    """``graph`` with random adapter B matrices, as after training."""
    gen = torch.Generator().manual_seed(seed)
    new = graph.copy()
    for name, t in graph.params.items():
        if t.annotations.get(ROLE) == "B":
            value = torch.randn([int(d) for d in t.type.shape], generator=gen) * 0.05
            new.params[name] = tensors.to_ir(name, value, True).replace(annotations=t.annotations)
    return new


def test_lora_matches_peft(bert):
    """Same model, config and adapter weights: PEFT's trainable count and outputs."""
    peft = pytest.importorskip("peft")
    model, graph = bert
    adapted, (outcome,) = run_pipeline(graph, parse("lora rank=4 alpha=8 dropout=0.1 targets=query,value"))
    adapted = _pretend_trained(adapted)
    import copy
    reference = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["query", "value"]))
    trainable, _total = reference.get_nb_trainable_parameters()
    assert outcome.report["trainable_parameters"] == trainable
    state = {}
    for name, t in adapted.params.items():
        if ROLE in t.annotations:
            scope, role = name.rsplit(".", 2)[0], name.rsplit(".", 2)[1]
            state[f"base_model.model.{scope}.{role}.default.weight"] = tensors.to_torch(t)
    missing = set(state) - {n for n, _ in reference.named_parameters()}
    assert not missing
    reference.load_state_dict(state, strict=False)
    reference.eval()
    ids, mask = bert_inputs(4, 24)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        got = maseir.to_torch(adapted)(ids, mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_annotations_survive_save_and_load(bert, tmp_path):
    _, graph = bert
    adapted, _ = run_pipeline(graph, parse("lora rank=2"))
    maseir.save(adapted, tmp_path / "a.mir")
    loaded = maseir.load(tmp_path / "a.mir")
    assert loaded == adapted and digest(loaded) == digest(adapted)
    assert [n.annotations for n in loaded.nodes] == [n.annotations for n in adapted.nodes]
    fused, _ = run_pipeline(loaded, parse("fuse lora"))  # fuse needs nothing but the file
    assert not any(OF in n.annotations for n in fused.nodes)


@pytest.mark.parametrize("text,fragment", [
    ("lora rank=0", "rank=0: out of range"),
    ("lora alpha=0", "alpha=0: out of range"),
    ("lora targets=nothing_here", "matches no node"),
    ("lora targets=query ops=linear", "not both"),
    ("lora scope=\"(\"", "not a regular expression"),
    ("fuse lora", "no LoRA adapters"),
    ("fuse dropout", "unknown object 'dropout'"),
])
def test_bad_lora_steps_are_one_line_errors(bert, text, fragment):
    _, graph = bert
    with pytest.raises((DSLError, PassError)) as info:
        run_pipeline(graph, parse(text + "\n", "x.pass"))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_lora_twice_on_the_same_layer_is_refused(bert):
    _, graph = bert
    adapted, _ = run_pipeline(graph, parse("lora targets=query"))
    with pytest.raises(PassError, match="already has a LoRA adapter"):
        run_pipeline(adapted, parse("lora targets=query"))
    both, _ = run_pipeline(adapted, parse("lora targets=value"))  # another layer is fine
    assert len({n.annotations[OF] for n in both.nodes if OF in n.annotations}) == 4


def test_lora_and_fuse_agree_between_runtimes(bert):
    _, graph = bert
    adapted = _pretend_trained(run_pipeline(graph, parse("lora rank=4 targets=query,value,dense"))[0])
    ids, mask = bert_inputs(3, 20)
    with torch.no_grad():
        expected = maseir.to_torch(adapted)(ids, mask).numpy()
    np.testing.assert_allclose(maseir.ort_session(adapted)(ids, mask), expected, rtol=0, atol=1e-5)
