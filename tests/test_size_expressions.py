"""Size expressions end to end: torch.export's sympy sizes become IR expressions, ONNX
shape arithmetic (the legacy exporter's BERT files) reads back as them, and both lowerings
compute them: random expressions round-trip through save/load and the text form and
evaluate to the same ints in torch and ONNX Runtime."""

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import maseir
from conftest import bert_inputs
from maseir.lowering.onnx import save_onnx
from maseir.ir import Graph, Node, Sym, TensorType, Value
from maseir.symbolic import evaluate, parse
from maseir.text import format_attr, format_type, parse_dim, parse_shape, show, to_json
from test_symbolic import SYMBOLS, build, reference, trees


# --- torch.export: sizes computed from input sizes ---------------------------------------------
class Reshapes(torch.nn.Module):
    """What GPT-2's Conv1D, a prepended token and a chunked view do to sizes."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 6)
        self.token = torch.nn.Parameter(torch.randn(1, 1, 6))

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        flat = self.proj(x.view(-1, x.size(-1)))                   # batch*seq rows, as GPT-2's Conv1D
        h = flat.view(b, s, -1)
        rows = h.reshape(b * s, 6).sum(-1)                          # a size stated as batch*seq
        with_token = torch.cat([self.token.expand(b, 1, 6), h], 1)  # seq+1 positions
        chunks = h.view(b, s // 4, 4, 6).mean(2)                    # seq//4 chunks
        positions = torch.arange(s + 1)
        return with_token.sum(-1) + positions, chunks, rows


@pytest.fixture(scope="module")
def reshapes():
    torch.manual_seed(0)
    model = Reshapes().eval()
    graph = maseir.export(model, (torch.randn(2, 8, 8),), dynamic_dims={"x": {0: "batch", 1: "seq"}})
    return model, graph


def test_torch_export_sizes_become_expressions(reshapes):
    _, graph = reshapes
    text = show(graph)
    assert "float32[batch*seq, 6] = linear(" in text
    assert "float32[batch, seq+1]" in text and "int64[seq+1] = arange() end=seq+1" in text
    assert "shape=[-1, 8]" in text and "shape=[batch*seq, 6]" in text and "float32[batch, seq//4, 6]" in text
    assert maseir.check(graph) == []
    as_json = json.loads(json.dumps(to_json(graph)))  # maseir show --json
    assert ["batch*seq", 6] in [v["shape"] for n in as_json["nodes"] for v in n["outputs"]]


def test_check_names_a_symbol_no_input_binds(reshapes):
    _, graph = reshapes
    bad = graph.copy()
    node = next(n for n in bad.nodes if n.op == "arange")
    node.attrs = {**node.attrs, "end": parse("seq+heads")}
    problems = maseir.check(bad)
    assert any(p.startswith(f"node {node.name}: uses symbolic dim heads, bound to no graph input") for p in problems)


def test_expressions_lower_to_torch_and_onnx_and_survive_save_and_load(reshapes, tmp_path):
    model, graph = reshapes
    maseir.save(graph, tmp_path / "m.mir")
    loaded = maseir.load(tmp_path / "m.mir")
    assert show(loaded) == show(graph) and maseir.check(loaded) == []
    lowered, runner = maseir.to_torch(loaded), maseir.ort_session(loaded)
    onnx.checker.check_model(maseir.to_onnx(loaded), full_check=True)
    save_onnx(loaded, tmp_path / "m.onnx")  # and the ONNX file's shape arithmetic reads back as expressions
    again = maseir.import_onnx(tmp_path / "m.onnx")
    assert maseir.check(again) == [] and "float32[batch, seq//4, 4, 6] = reshape(" in show(again)
    from_onnx = maseir.to_torch(again)
    for batch, seq in [(2, 8), (5, 12), (1, 4), (3, 36)]:
        x = torch.randn(batch, seq, 8)
        with torch.no_grad():
            expected = model(x)
            got, got_again = lowered(x), from_onnx(x)
        for want, a, b, c in zip(expected, got, runner(x), got_again):
            assert a.shape == want.shape == b.shape == c.shape
            assert torch.allclose(a, want, atol=1e-5) and np.allclose(b, want.numpy(), atol=1e-5)
            assert torch.allclose(c, want, atol=1e-5)


def test_onnx_dim_params_of_expressions_are_their_text(reshapes):
    _, graph = reshapes
    model = maseir.to_onnx(graph)
    params = {d.dim_param for v in [*model.graph.value_info, *model.graph.output]
              for d in v.type.tensor_type.shape.dim if d.dim_param}
    assert {"batch*seq", "seq+1", "seq//4"} <= params


# --- property: random expressions in both lowerings -------------------------------------------
def _expression_graph(value, size) -> Graph:
    """Inputs x[batch, heads, seq]; outputs [value] (int64) and ones of shape [size]."""
    x = Value("x", TensorType("float32", ("batch", "heads", "seq")))
    fill = Sym(value) if isinstance(value, str) else value
    nodes = [Node("value", "full", [], [], {"size": (1,), "fill_value": fill, "dtype": maseir.ir.DType("int64")}),
             Node("ones", "full", [], [], {"size": (size,), "fill_value": 1.0})]
    from maseir import ops
    for node in nodes:
        node.outputs = [Value(node.name, t) for t in ops.infer_types(ops.get(node.op), [], node.attrs)]
    return Graph([x], ["value", "ones"], nodes, {}, {"batch": ("x", 0), "heads": ("x", 1), "seq": ("x", 2)})


@settings(max_examples=25, deadline=None)
@given(trees(max_leaves=6), trees(nonnegative=True, max_leaves=4),
       st.lists(st.fixed_dictionaries({s: st.integers(1, 6) for s in SYMBOLS}), min_size=2, max_size=2))
def test_random_size_expressions_evaluate_the_same_in_torch_and_onnx_runtime(tmp_path_factory, value, size,
                                                                            points):
    graph = _expression_graph(build(value), build(size))
    assert maseir.check(graph) == []
    path = tmp_path_factory.mktemp("expr") / "e.mir"
    maseir.save(graph, path)
    loaded = maseir.load(path)
    assert [n.attrs for n in loaded.nodes] == [n.attrs for n in graph.nodes]
    assert [n.outputs for n in loaded.nodes] == [n.outputs for n in graph.nodes]
    value_node, ones_node = loaded.nodes  # what the text form shows reads back
    assert parse_dim(format_attr(value_node.attrs["fill_value"])) == build(value)
    assert parse_shape(format_attr(ones_node.attrs["size"])) == (build(size),)
    ones_type = ones_node.outputs[0].type  # the type rule's dim: the size, or what it simplifies to
    assert parse_shape(format_type(ones_type).removeprefix("float32")) == ones_type.shape
    lowered, runner = maseir.to_torch(loaded), maseir.ort_session(loaded)
    for sizes in points:
        x = torch.zeros(sizes["batch"], sizes["heads"], sizes["seq"])
        want_value, want_size = reference(value, sizes), reference(size, sizes)
        assert evaluate(build(value), sizes) == want_value
        t_value, t_ones = lowered(x)
        o_value, o_ones = runner(x)
        assert t_value.tolist() == [want_value] and o_value.tolist() == [want_value]
        assert tuple(t_ones.shape) == (want_size,) == o_ones.shape == (evaluate(ones_type.shape[0], sizes),)


# --- ONNX import: shape arithmetic ------------------------------------------------------------
def _ort(model_or_path, feeds):
    data = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def test_onnx_shape_arithmetic_reads_back_as_size_expressions(tmp_path):
    c = lambda name, value: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=np.int64)))
    nodes = [
        c("zero", 0), c("one", 1), c("two", 2), c("axes0", [0]), c("sixteen", [16]), c("eight", [8]),
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
        helper.make_node("Mul", ["b", "n"], ["bn"]),                       # batch*seq
        helper.make_node("Unsqueeze", ["bn", "axes0"], ["bn1"]),
        helper.make_node("Concat", ["bn1", "sixteen"], ["rows"], axis=0),
        helper.make_node("Reshape", ["x", "rows"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "bias"], ["proj"], transB=1),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["b1", "n1", "eight"], ["back"], axis=0),
        helper.make_node("Reshape", ["proj", "back"], ["y"]),
        helper.make_node("Div", ["n", "two"], ["half"]),                   # seq//2
        helper.make_node("Add", ["half", "one"], ["half1"]),
        helper.make_node("Range", ["zero", "half1", "one"], ["pos"]),       # int64[seq//2+1]
        helper.make_node("Flatten", ["mask"], ["mask_rows"], axis=2),       # [batch*seq, 1], as the legacy BERT's
        helper.make_node("Size", ["mask"], ["count"]),
    ]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bias")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 16]),
                                           helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "seq"])],
                              [helper.make_tensor_value_info(n, t, None) for n, t in
                               (("y", TensorProto.FLOAT), ("pos", TensorProto.INT64), ("mask_rows", TensorProto.INT64),
                                ("count", TensorProto.INT64))], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=8)
    path = tmp_path / "shapes.onnx"
    onnx.save(model, str(path))
    imported = maseir.import_onnx(path)
    assert maseir.check(imported) == []
    text = show(imported)
    assert "reshape(x) shape=[batch*seq, 16]" in text and "int64[seq//2+1] = arange()" in text
    assert "int64[batch*seq, 1] = reshape(mask) shape=[batch*seq, 1]" in text
    lowered, runner = maseir.to_torch(imported), maseir.ort_session(imported)
    for batch, seq in [(1, 3), (4, 7), (2, 10)]:
        feeds = {"x": rng.standard_normal((batch, seq, 16)).astype(np.float32),
                 "mask": rng.integers(0, 2, (batch, seq)).astype(np.int64)}
        expected = _ort(model, feeds)
        with torch.no_grad():
            got = lowered(*[torch.from_numpy(v) for v in feeds.values()])
        again = runner(**feeds)
        for want, a, b in zip(expected, got, again):
            assert a.shape == want.shape == b.shape
            assert np.allclose(a.numpy(), want, atol=1e-5) and np.allclose(b, want, atol=1e-5)


# --- the legacy exporter's BERT (torch.onnx.export(dynamo=False)) ---------------------------------
@pytest.fixture(scope="module")
def legacy_files(tiny_bert, tmp_path_factory):
    """Exports the bert-tiny model with the legacy exporter on demand: (opset, axes) -> path."""
    model, _ = tiny_bert
    folder = tmp_path_factory.mktemp("legacy")
    made = {}

    def export(opset: int, axes: dict | list) -> str:
        key = (opset, repr(axes))
        if key not in made:
            path = folder / f"bert_{len(made)}.onnx"
            ids, mask = bert_inputs(2, 16)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (ids, mask), str(path), dynamo=False, opset_version=opset,
                                  input_names=["input_ids", "attention_mask"], output_names=["logits"],
                                  dynamic_axes={"input_ids": axes, "attention_mask": axes})
            made[key] = str(path)
        return made[key]
    return model, export


_BATCH_AND_SEQ = [(1, 1), (2, 16), (5, 37)]


@pytest.mark.parametrize("opset, axes, sizes", [
    *((opset, {0: "batch", 1: "seq"}, _BATCH_AND_SEQ) for opset in range(14, 21)),
    *((opset, {1: "seq"}, [(2, 1), (2, 16), (2, 37)]) for opset in range(14, 21)),
    (17, [0, 1], _BATCH_AND_SEQ),  # dims the exporter names itself (input_ids_dynamic_axes_1, ...)
], ids=[*(f"batch-and-seq-{o}" for o in range(14, 21)), *(f"seq-only-{o}" for o in range(14, 21)),
        "generated-names-17"])
def test_legacy_exporter_bert_imports_and_agrees(legacy_files, opset, axes, sizes):
    model, export = legacy_files
    path = export(opset, axes)
    graph = maseir.import_onnx(path)
    assert maseir.check(graph) == []
    dynamic_batch = 0 in axes
    assert graph.dims == ({"batch": ("input_ids", 0)} if dynamic_batch else {}) | {"seq": ("input_ids", 1)}
    lowered, runner = maseir.to_torch(graph), maseir.ort_session(graph)
    for batch, seq in sizes:
        ids, mask = bert_inputs(batch, seq)
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
            from_torch = lowered(ids, mask).numpy()
        (original,) = _ort(path, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        for got in (from_torch, runner(ids, mask), original):
            assert np.abs(got - expected).max() <= 1e-4
