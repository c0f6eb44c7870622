"""maseir's ONNX as ONNX tools read it: a linear layer is MatMul(x, W^T) on an initializer
then Add(bias), ONNX Runtime's quant_pre_process (symbolic shape inference, optimisation)
and quantize_dynamic work on it as they are, and the importer reads that form back."""

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import maseir
from maseir.lowering.onnx import save_onnx
from conftest import bert_inputs


def run_ort(model, *inputs) -> list:
    data = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: np.asarray(x) for i, x in zip(session.get_inputs(), inputs)})


def _readers(model: onnx.ModelProto) -> dict[str, list]:
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for slot, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, slot))
    return readers


# --- the lowering --------------------------------------------------------------------------
def test_linear_layers_are_matmuls_on_transposed_initializers(tiny_bert):
    _, graph = tiny_bert
    model = maseir.to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    readers = _readers(model)
    linears = [n for n in graph.nodes if n.op == "linear"]
    assert len(linears) == 6 * 2 + 2  # q, k, v, attention output, intermediate, output per layer; pooler, head
    for node in linears:
        weight, bias = node.inputs[1], node.inputs[2]
        ((matmul, slot),) = readers[weight]
        assert matmul.op_type == "MatMul" and slot == 1 and matmul.name == f"{node.name}/MatMul"
        param = graph.params[weight]
        stored = np.frombuffer(param.data, np.float32).reshape(param.type.shape)
        assert np.array_equal(inits[weight], stored.T)  # [in, out], under the param's name
        ((add, _),) = readers[matmul.output[0]]
        assert add.op_type == "Add" and add.name == node.name and list(add.input) == [matmul.output[0], bias]
    assert not [n for n in model.graph.node if n.op_type in ("Transpose", "Gemm") and set(n.input) & set(inits)]


class _SharedAndComputed(nn.Module):
    """Linear layers whose weight is not theirs alone: tied to an embedding, or computed."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 8)
        self.proj = nn.Parameter(torch.randn(8, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        h = F.linear(self.embedding(ids), self.proj * 0.5)   # a computed weight
        tied = F.linear(h, self.embedding.weight)            # the embedding's weight, tied
        pooled = F.linear(h[:, 0], self.embedding.weight)    # tied, on a 2-D input
        return tied, pooled, self.head(h[:, 0])


def test_weights_that_are_not_the_layers_alone_are_transposed_in_the_graph():
    torch.manual_seed(0)
    module = _SharedAndComputed().eval()
    graph = maseir.export(module, (torch.randint(0, 10, (2, 5)),), dynamic_dims={"ids": {0: "batch", 1: "seq"}})
    model = maseir.to_onnx(graph)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert inits["embedding.weight"].shape == (10, 8) and inits["proj"].shape == (8, 8)  # stored as they are
    assert inits["head.weight"].shape == (8, 3)  # the head's own: transposed
    ops_reading = {(n.op_type, slot) for n, slot in _readers(model)["embedding.weight"]}
    assert ops_reading == {("Gather", 0), ("Transpose", 0), ("Gemm", 1)}
    ids = torch.randint(0, 10, (3, 7))
    with torch.no_grad():
        expected = [t.numpy() for t in module(ids)]
    for got, want in zip(run_ort(model, ids.numpy()), expected):
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5


# --- ONNX Runtime's quantization tools ----------------------------------------------------------
def _ort_quantize(graph, tmp_path, caplog) -> tuple[str, onnx.ModelProto]:
    """quant_pre_process then quantize_dynamic (int8 weights) of graph's ONNX, as ORT's docs do it."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    source, pre, quantized = (str(tmp_path / name) for name in ("m.onnx", "pre.onnx", "q.onnx"))
    save_onnx(graph, source)
    with caplog.at_level(logging.ERROR):
        quant_pre_process(source, pre)  # raises when symbolic shape inference is incomplete
    # quant_pre_process only logs a failed optimisation and carries on: there must be none
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert not [n for n in onnx.load(pre).graph.node if n.op_type == "Identity"]  # ORT's optimiser ran
    quantize_dynamic(pre, quantized, weight_type=QuantType.QInt8)
    return quantized, onnx.load(quantized)


def quantized_weights(model: onnx.ModelProto) -> set[str]:
    """The weights that ORT's dynamic quantization turned into int8 MatMulInteger inputs."""
    inits = {t.name for t in model.graph.initializer}
    return {n.input[1].removesuffix("_quantized") for n in model.graph.node
            if n.op_type == "MatMulInteger" and n.input[1] in inits}


def test_onnx_runtime_preprocesses_and_quantizes_every_linear_layer(tiny_bert, tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ORT's shape inference leaves temporary files in the working folder when it fails
    _, graph = tiny_bert
    path, model = _ort_quantize(graph, tmp_path, caplog)
    assert quantized_weights(model) == {n.inputs[1] for n in graph.nodes if n.op == "linear"}
    lowered = maseir.to_torch(graph)
    for batch, seq in [(1, 7), (3, 40)]:
        ids, mask = bert_inputs(batch, seq)
        (got,) = run_ort(path, ids.numpy(), mask.numpy())
        with torch.no_grad():
            expected = lowered(ids, mask).numpy()
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 0.05  # int8 weights


def test_slice_of_a_buffer_by_a_symbolic_size_has_that_size_in_shape_inference(tiny_bert, tmp_path, monkeypatch):
    """position_ids[:, :seq] of the [1, 512] buffer is [1, seq], not min(512, seq)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    monkeypatch.chdir(tmp_path)
    _, graph = tiny_bert
    inferred = SymbolicShapeInference.infer_shapes(maseir.to_onnx(graph))
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in inferred.graph.value_info}
    sliced = [n for n in graph.nodes if n.op == "slice" and n.inputs[0] == "bert.embeddings.position_ids"]
    assert sliced and all(shapes[n.outputs[0].name] == [1, "seq"] for n in sliced)
    assert all(shapes[v.name] == list(v.type.shape) for n in graph.nodes for v in n.outputs if v.name in shapes)


# --- the importer ---------------------------------------------------------------------------
def _matmul_model(case: str) -> onnx.ModelProto:
    """y = x @ B + bias with B [4, 3] an initializer; ``two layers``: z = x @ B too;
    ``read otherwise``: w = B @ v reads B as a matrix, not a layer's weight."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "B"], ["xB"], name="fc/MatMul"),
             helper.make_node("Add", ["xB", "bias"], ["y"], name="fc")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if case == "two layers":
        nodes.append(helper.make_node("MatMul", ["x", "B"], ["z"], name="again"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    if case == "read otherwise":
        nodes.append(helper.make_node("MatMul", ["B", "v"], ["w"], name="other"))
        inputs.append(helper.make_tensor_value_info("v", TensorProto.FLOAT, [3, 2]))
        outputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, None))
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "B"),
             numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bias")]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("case", ["alone", "two layers", "read otherwise"])
def test_matmul_on_an_initializer_imports_as_a_linear_layer(tmp_path, case):
    model = _matmul_model(case)
    onnx.save(model, str(tmp_path / "m.onnx"))
    graph = maseir.import_onnx(tmp_path / "m.onnx")
    assert maseir.check(graph) == []
    if case == "read otherwise":  # B is read as it is elsewhere: ordinary matmuls
        assert [n.op for n in graph.nodes] == ["matmul", "add", "matmul"]
        assert graph.params["B"].type.shape == (4, 3)
    else:
        linear = graph.nodes[0]
        assert linear.op == "linear" and linear.name == "fc" and linear.inputs == ["x", "B", "bias"]
        if case == "two layers":
            assert [(n.op, n.inputs) for n in graph.nodes[1:]] == [("linear", ["x", "B"])]
        weight = graph.params["B"]
        assert weight.type.shape == (3, 4) and weight.trainable
        b = numpy_helper.to_array(model.graph.initializer[0])
        assert np.array_equal(np.frombuffer(weight.data, np.float32).reshape(3, 4), b.T)
    feeds = [np.random.default_rng(1).standard_normal(shape).astype(np.float32)
             for shape in [(5, 4), (3, 2)][:len(model.graph.input)]]
    expected = run_ort(model, *feeds)
    with torch.no_grad():
        got = maseir.to_torch(graph)(*[torch.from_numpy(f) for f in feeds])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert np.abs(g.numpy() - e).max() <= 1e-6
