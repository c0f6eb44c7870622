"""ONNX lowering: every op has a rule, the model is valid and named after the IR, and
ONNX Runtime computes what the torch lowering computes (bert-tiny, random MLP/CNN stacks,
the less common ops one by one, number formats)."""

import dataclasses
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from torch import nn

import maseir
from maseir import ops
from maseir.errors import MaseIRError
from maseir.ir import NumberFormat, TensorType
from maseir.lowering import onnx as lowering
from conftest import bert_inputs
from models import SETTINGS, cnns, mlps



def run_ort(model: onnx.ModelProto | str, *inputs):
    session = ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: np.asarray(x) for n, x in zip(names, inputs)})


def assert_agree(graph, *inputs, atol=1e-4):
    """ORT on to_onnx(graph) equals the torch lowering on the same inputs."""
    with torch.no_grad():
        expected = maseir.to_torch(graph)(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = run_ort(maseir.to_onnx(graph), *[x.numpy() for x in inputs])
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        e = e.numpy()
        assert g.shape == e.shape and g.dtype == e.dtype
        if e.dtype == np.bool_ or np.issubdtype(e.dtype, np.integer):
            assert np.array_equal(g, e)
        else:
            assert np.allclose(g, e, atol=atol, rtol=0, equal_nan=True), np.abs(g - e).max()


# --- the registry ----------------------------------------------------------------
def test_every_registered_op_has_an_onnx_rule():
    missing = [name for name, op in ops.REGISTRY.items() if op.onnx is None]
    assert missing == [], f"ops without an ONNX rule: {missing}"


def test_ops_md_says_every_op_lowers_to_onnx():
    assert "| - |" not in ops.markdown()


# --- bert-tiny -----------------------------------------------------------------------
def test_bert_model_is_valid_onnx_named_after_the_ir(tiny_bert):
    _, graph = tiny_bert
    model = maseir.to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 21)]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input]
    assert dims == [["batch", "seq"], ["batch", "seq"]]
    assert [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output] \
        == [["batch", 2]]
    node_names = {n.name for n in model.graph.node}
    assert "bert.encoder.layer.0.attention.self.query.linear" in node_names
    assert "dims/batch" in node_names and "dims/seq" in node_names
    produced = {o for n in model.graph.node for o in n.output}
    assert "bert.encoder.layer.0.attention.self.query.linear" in produced
    used = {name for node in graph.nodes for name in node.inputs}
    assert set(graph.params) & used <= {i.name for i in model.graph.initializer}
    assert not [n for n in model.graph.node if n.op_type == "Dropout"]  # eval semantics
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata == graph.metadata and model.producer_name == "maseir"


def test_bert_agrees_with_torch_from_one_file(tiny_bert, tmp_path):
    _, graph = tiny_bert
    path = tmp_path / "bert.onnx"
    lowering.save_onnx(graph, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lowered = maseir.to_torch(graph)
    for batch, seq in [(1, 1), (2, 16), (5, 37), (3, 128), (1, 512)]:
        ids, mask = bert_inputs(batch, seq)
        (got,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        with torch.no_grad():
            expected = lowered(ids, mask).numpy()
        assert np.abs(got - expected).max() <= 1e-4


def test_runner_is_cached_per_graph_and_called_like_the_torch_module(tiny_bert):
    model, graph = tiny_bert
    runner = maseir.ort_session(graph)
    assert maseir.ort_session(graph) is runner
    ids, mask = bert_inputs(3, 20)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
    assert np.abs(runner(ids, mask) - expected).max() <= 1e-4
    assert np.abs(runner(input_ids=ids.numpy(), attention_mask=mask.numpy()) - expected).max() <= 1e-4
    with pytest.raises(MaseIRError, match="missing graph inputs: attention_mask"):
        runner(ids)


def test_external_data_is_relative_and_valid(tiny_bert, tmp_path):
    _, graph = tiny_bert
    path = tmp_path / "bert.onnx"
    lowering.save_onnx(graph, path, external_data_threshold=1024)
    assert (tmp_path / "bert.onnx.data").is_file()
    assert path.stat().st_size < 100_000 < (tmp_path / "bert.onnx.data").stat().st_size
    model = onnx.load(str(path), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"bert.onnx.data"}
    onnx.checker.check_model(str(path), full_check=True)
    ids, mask = bert_inputs(2, 9)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("bert.onnx", "bert.onnx.data"):
        os.replace(tmp_path / name, moved / name)  # the pair works from any folder
    (got,) = run_ort(str(moved / "bert.onnx"), ids.numpy(), mask.numpy())
    with torch.no_grad():
        assert np.abs(got - maseir.to_torch(graph)(ids, mask).numpy()).max() <= 1e-4
    assert sorted(os.listdir(tmp_path)) == ["elsewhere"]  # no temporary files left behind


def test_saving_is_deterministic_and_refuses_a_missing_folder(tiny_bert, tmp_path):
    _, graph = tiny_bert
    lowering.save_onnx(graph, tmp_path / "a.onnx")
    lowering.save_onnx(graph, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    with pytest.raises(MaseIRError, match="does not exist"):
        lowering.save_onnx(graph, tmp_path / "missing" / "c.onnx")


def test_opset_outside_the_supported_range_is_refused(tiny_bert):
    _, graph = tiny_bert
    with pytest.raises(MaseIRError, match="opset 16 is not supported: choose 17 to"):
        maseir.to_onnx(graph, opset=16)
    with pytest.raises(MaseIRError, match="opset 99 is not supported"):
        maseir.to_onnx(graph, opset=99)


@SETTINGS
@given(mlps())
def test_random_mlp_agrees_with_torch(case):
    model, shape = case
    graph = maseir.export(model, (torch.randn(2, *shape),))
    for batch in (1, 3, 7):
        assert_agree(graph, torch.randn(batch, *shape))


@SETTINGS
@given(cnns())
def test_random_cnn_agrees_with_torch(case):
    model, shape = case
    graph = maseir.export(model, (torch.randn(2, *shape),))
    onnx.checker.check_model(maseir.to_onnx(graph), full_check=True)
    for batch in (1, 4):
        assert_agree(graph, torch.randn(batch, *shape))


# --- the less common ops, one by one ------------------------------------------------------
class Fn(nn.Module):
    """A module computing ``fn(self, *inputs)``; ``tensors`` become params (floats) or buffers p0, p1, ..."""

    def __init__(self, fn, tensors=()):
        super().__init__()
        self.fn = fn
        for i, t in enumerate(tensors):
            if t.is_floating_point():
                self.register_parameter(f"p{i}", nn.Parameter(t))
            else:
                self.register_buffer(f"p{i}", t)

    def forward(self, *xs):
        return self.fn(self, *xs)


def _attn_mask(x):
    b, _, s, _ = x.shape
    return torch.arange(s).view(1, 1, 1, s) < torch.full((b, 1, 1, 1), s - 1)


CASES = {
    "attention_bool_mask": (lambda m, q: F.scaled_dot_product_attention(q, q * 2, q + 1, attn_mask=_attn_mask(q)),
                            [(2, 3, 5, 8)]),
    "attention_float_mask_scale": (lambda m, q: F.scaled_dot_product_attention(q, q, q, attn_mask=m.p0, scale=0.3),
                                   [(2, 2, 4, 8)], [torch.randn(4, 4)]),
    "attention_causal": (lambda m, q: F.scaled_dot_product_attention(q, q * 0.5, q, is_causal=True),
                         [(1, 2, 6, 4)]),
    "attention_gqa": (lambda m, q, k: F.scaled_dot_product_attention(q, k, k, enable_gqa=True),
                      [(2, 4, 5, 8), (2, 2, 5, 8)]),
    "index_two_tensors": (lambda m, x: x[torch.arange(x.shape[0]).unsqueeze(1), m.p0], [(3, 4, 5)],
                          [torch.tensor([[0, -2]])]),
    "index_middle_dim": (lambda m, x: x[:, m.p0], [(2, 4, 3)], [torch.tensor([[3, 0], [1, 1]])]),
    "gather_smaller_index": (lambda m, x: torch.gather(x, 1, m.p0), [(2, 5)], [torch.tensor([[0, 2], [1, 1]])]),
    "slice_step_select": (lambda m, x: x[:, 1::2, -1] + x[:, :1, 0], [(2, 7, 3)]),
    "cat_mixed": (lambda m, x: torch.cat([x, x * 2, x[:, :1]], dim=1), [(2, 3)]),
    "arange_full_new_ones": (lambda m, x: x + torch.arange(x.shape[1]) + torch.full((x.shape[0], 1), 2.5)
                             + x.new_ones(x.shape[1]), [(3, 4)]),
    "reductions": (lambda m, x: x.mean(dim=(1, 2), keepdim=True).sum(dim=(0, 1)) + x.sum(dim=-1).mean(0),
                   [(2, 3, 4)]),
    "flatten_middle": (lambda m, x: torch.flatten(x, 1, 2) * 2, [(2, 3, 4, 5)]),
    "flatten_all": (lambda m, x: torch.flatten(x), [(2, 3, 4)]),
    "permute_transpose_squeeze": (lambda m, x: x.permute(2, 0, 1).transpose(0, 1).unsqueeze(0).squeeze(0)
                                  .squeeze(1), [(3, 1, 4)]),
    "elementwise": (lambda m, x: torch.maximum(x, -x).rsqrt() + torch.minimum(x, x * 2) + x.abs().log()
                    + torch.erf(x) + x.exp().reciprocal() + torch.clamp(x, min=-0.5) - x.neg().sqrt(),
                    [(2, 5)]),
    "comparisons": (lambda m, x: torch.where(torch.bitwise_or(x > 0, x <= -1), x, x * 0)
                    + (x != x * 2).float() + (x >= 0.5).float() + torch.isnan(x).float()
                    + (~(x < 0)).float(), [(3, 4)]),
    "masked_fill_pow_div": (lambda m, x: x.masked_fill(x > 0.3, -2.0) ** 2 / (x.abs() + 1) - x ** x.abs(),
                            [(2, 6)]),
    "softmaxes": (lambda m, x: F.softmax(x, dim=0) + F.log_softmax(x, dim=-1), [(3, 4)]),
    "casts": (lambda m, x: (x * 10).to(torch.int64).to(torch.float32) + (x > 0).to(torch.float32), [(4,)]),
    "adaptive_pool_uneven": (lambda m, x: F.adaptive_avg_pool2d(x, (3, 2)), [(2, 3, 7, 5)]),
    "avg_pool_options": (lambda m, x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
                         + F.avg_pool2d(x, 3, stride=2, padding=1, divisor_override=4), [(1, 2, 8, 8)]),
    "max_pool_dilation": (lambda m, x: F.max_pool2d(x, 2, stride=1, dilation=2, padding=1), [(1, 2, 6, 6)]),
    "conv_groups": (lambda m, x: F.conv2d(x, m.p0, stride=2, padding=1, dilation=1, groups=2), [(1, 4, 7, 7)],
                    [torch.randn(6, 2, 3, 3)]),
    "embedding_layer_norm": (lambda m, x: F.layer_norm(F.embedding(x, m.p0), (4,)), [("ids", 3, 5)],
                             [torch.randn(10, 4)]),
    "cross_entropy": (lambda m, x, y: F.cross_entropy(x, y) + F.cross_entropy(x, y, reduction="sum", ignore_index=1),
                      [(6, 3), ("labels", 6)]),
}


def _case_inputs(shapes):
    gen = torch.Generator().manual_seed(0)
    out = []
    for shape in shapes:
        if shape[0] == "ids":
            out.append(torch.randint(0, 10, shape[1:], generator=gen))
        elif shape[0] == "labels":
            out.append(torch.randint(0, 3, shape[1:], generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    return tuple(out)


@pytest.mark.parametrize("name", list(CASES))
def test_op_agrees_with_torch(name):
    fn, shapes, *params = CASES[name]
    module = Fn(fn, params[0] if params else ()).eval()
    inputs = _case_inputs(shapes)
    graph = maseir.export(module, inputs, dynamic_dims={})
    assert maseir.check(graph) == []
    onnx.checker.check_model(maseir.to_onnx(graph), full_check=True)
    assert_agree(graph, *inputs)


def test_symbolic_sizes_are_read_once_per_dim(tiny_bert):
    _, graph = tiny_bert
    model = maseir.to_onnx(graph)
    shape_nodes = [n for n in model.graph.node if n.op_type == "Shape" and n.name.startswith("dims/")]
    assert sorted(n.name for n in shape_nodes) == ["dims/batch", "dims/seq"]


# --- number formats ------------------------------------------------------------------
def _with_formats(graph, param_formats=None, value_formats=None):
    graph = graph.copy()
    from maseir import tensors
    for name, fmt in (param_formats or {}).items():  # a fixed-point param stores its codes
        tensor = graph.params[name]
        graph.params[name] = tensors.to_ir(name, tensors.to_torch(tensor), tensor.trainable, fmt)
    for node in graph.nodes:
        node.outputs = [maseir.Value(v.name, dataclasses.replace(v.type, format=value_formats[v.name]))
                        if v.name in (value_formats or {}) else v for v in node.outputs]
    return graph


def _fixed(x: torch.Tensor, width: int, frac: int) -> torch.Tensor:
    """The design's fixed-point rounding, in torch."""
    q = torch.clamp(torch.round(x * 2.0**frac), -(2 ** (width - 1)), 2 ** (width - 1) - 1)
    return q * 2.0**-frac


@pytest.mark.parametrize("width,frac", [(8, 4), (6, 3), (4, 2), (16, 10)])
def test_fixed_point_formats_round_weights_and_values(width, frac):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    graph = maseir.export(model, (torch.randn(2, 8),))
    first = graph.nodes[0].outputs[0].name
    fmt = NumberFormat("fixed", width, frac)
    formatted = _with_formats(graph, {"0.weight": fmt}, {first: fmt})
    onnx_model = maseir.to_onnx(formatted)
    onnx.checker.check_model(onnx_model, full_check=True)
    stored = {t.name: t.data_type for t in onnx_model.graph.initializer}
    container = {4: onnx.TensorProto.INT4, 6: onnx.TensorProto.INT8, 8: onnx.TensorProto.INT8,
                 16: onnx.TensorProto.INT16}[width]
    assert stored["0.weight/codes"] == container  # weights stored as integers
    x = torch.randn(5, 8) * 4
    with torch.no_grad():
        hidden = _fixed(F.linear(x, _fixed(model[0].weight, width, frac), model[0].bias), width, frac)
        expected = model[2](model[1](hidden)).numpy()
    (got,) = run_ort(onnx_model, x.numpy())
    assert np.abs(got - expected).max() <= 1e-5


def test_float16_format_on_float32_values_rounds_through_half():
    model = nn.Sequential(nn.Linear(4, 4)).eval()
    graph = maseir.export(model, (torch.randn(2, 4),))
    out = graph.nodes[0].outputs[0].name
    formatted = _with_formats(graph, value_formats={out: NumberFormat("float16")})
    x = torch.randn(3, 4)
    (got,) = run_ort(maseir.to_onnx(formatted), x.numpy())
    with torch.no_grad():
        assert np.array_equal(got, model(x).half().float().numpy())


def test_unknown_format_is_an_error_naming_the_value():
    model = nn.Sequential(nn.Linear(4, 4)).eval()
    graph = maseir.export(model, (torch.randn(2, 4),))
    formatted = _with_formats(graph, {"0.weight": NumberFormat("minifloat", 8, 3)})
    with pytest.raises(MaseIRError, match=r"0\.weight.*minifloat"):
        maseir.to_onnx(formatted)
    assert TensorType("float32", (1,), NumberFormat("float32")).format.kind == "float32"
