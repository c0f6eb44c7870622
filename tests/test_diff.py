"""Structural diff: empty for equal graphs, local after a rewrite, values for params."""

import difflib

import torch

import maseir
from maseir.diff import diff
from maseir.dsl import parse
from maseir.passes import run_pipeline


def test_equal_graphs_have_an_empty_diff(tiny_bert):
    _, graph = tiny_bert
    d = diff(graph, graph.copy())
    assert d.empty and d.summary() == "same" and d.lines() == []


def test_remove_dropout_diff_is_the_dropouts_and_their_consumers(tiny_bert):
    _, graph = tiny_bert
    out, _ = run_pipeline(graph, parse("remove dropout"))
    d = diff(graph, out)
    dropouts = [n for n in graph.nodes if n.op == "dropout"]
    dropout_values = {n.outputs[0].name for n in dropouts}
    consumers = {n.name for n in graph.nodes if set(n.inputs) & dropout_values}
    attention = {n.name for n in graph.nodes if n.op == "scaled_dot_product_attention"}
    assert len(d.nodes_removed) == len(dropouts) == 6
    assert all(line.split(":")[0].removeprefix("node ") in {n.name for n in dropouts} for line in d.nodes_removed)
    assert set(d.nodes_changed) == consumers | attention
    for name in consumers:
        assert all(change.startswith("input ") for change in d.nodes_changed[name])
    for name in attention:
        assert d.nodes_changed[name] == ["dropout_p 0.1 -> (default)"]
    assert not (d.nodes_added or d.params_added or d.params_removed or d.params_changed or d.interface)
    assert d.history_added == ["remove dropout"]


def test_text_form_diff_is_just_as_local(tiny_bert):
    _, graph = tiny_bert
    out, _ = run_pipeline(graph, parse("remove dropout"))
    changed = [line for line in difflib.unified_diff(maseir.show(graph).splitlines(),
                                                     maseir.show(out).splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    d = diff(graph, out)
    nodes = len(d.nodes_removed) + 2 * len(d.nodes_changed)  # a changed node: one line out, one in
    assert len(changed) == nodes + len(d.history_added)


def test_param_changes_report_the_max_abs_difference(tiny_bert):
    _, graph = tiny_bert
    other = graph.copy()
    name = "classifier.bias"
    old = other.params[name]
    other.params[name] = maseir.tensors.to_ir(name, maseir.tensors.to_torch(old) + 0.25, old.trainable)
    other.params[name + ".extra"] = maseir.tensors.to_ir(name + ".extra", torch.zeros(2), False)
    d = diff(graph, other)
    assert d.params_changed[name]["max_abs_diff"] == 0.25
    assert d.params_added == [name + ".extra"] and not d.nodes_changed
    assert "max abs diff 0.25" in "\n".join(d.lines())
