"""maseir.check finds every kind of problem, and none in a good graph."""


import pytest
import torch
from torch import nn

import maseir
from maseir.ir import TensorType, Value


@pytest.fixture()
def graph():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    return maseir.export(model, (torch.randn(2, 4),))


def test_valid_graph_has_no_problems(graph):
    assert maseir.check(graph) == []


def test_nodes_out_of_order(graph):
    bad = graph.copy()
    bad.nodes[0], bad.nodes[1] = bad.nodes[1], bad.nodes[0]
    problems = maseir.check(bad)
    assert any("not defined before it" in p for p in problems)


def test_wrong_recorded_type(graph):
    bad = graph.copy()
    out = bad.nodes[0].outputs[0]
    bad.nodes[0].outputs = [Value(out.name, TensorType("float32", ("batch", 9)))]
    problems = maseir.check(bad)
    assert any("type rule gives float32[batch, 8]" in p for p in problems)


def test_every_problem_is_listed(graph):
    bad = graph.copy()
    bad.nodes[0].op = "no_such_op"
    bad.nodes[2].inputs[1] = "missing.weight"
    bad.outputs.append("nowhere")
    bad.dims["seq"] = ("x", 1)
    problems = maseir.check(bad)
    assert len(problems) == 4, problems
    assert any("unknown op 'no_such_op'" in p for p in problems)
    assert any("missing.weight" in p for p in problems)
    assert any("output nowhere" in p for p in problems)
    assert any(p.startswith("dim seq") for p in problems)


def test_duplicate_value_and_unknown_attribute(graph):
    bad = graph.copy()
    bad.nodes[1].outputs = list(bad.nodes[0].outputs)
    bad.nodes[2].attrs["bogus"] = 1
    problems = maseir.check(bad)
    assert any("defined twice" in p for p in problems)
    assert any("no attribute bogus" in p for p in problems)


def test_checksum_mismatch_is_a_problem(graph):
    bad = graph.copy()
    name = "0.weight"
    tensor = bad.params[name]
    flipped = bytearray(tensor.data)
    flipped[0] ^= 1
    bad.params[name] = maseir.Tensor(name, tensor.type, bytes(flipped), tensor.trainable, tensor.sha256)
    assert maseir.check(bad) == [f"param {name}: bytes do not match the recorded sha256"]
