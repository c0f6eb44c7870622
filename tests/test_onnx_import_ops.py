"""ONNX import of what common exporters write (issue 11, case 5 and the dims of Deliver 4).

- op level (hypothesis, random shapes): pad, upsample_nearest2d, upsample_bilinear2d,
  conv_transpose2d, hardsigmoid, flip, lstm and gru lower to ONNX Runtime in agreement
  with the torch lowering, and maseir's own ONNX of them imports back to the same op;
- real exporters' files: torch.onnx.export(dynamo=True) and the legacy exporter of small
  modules with Pad, Resize, ConvTranspose, HardSigmoid, a negative-step Slice, LSTM and
  GRU import, and the import computes what ONNX Runtime computes on the original file;
- the attribute variants exporters seldom write, made with onnx.helper: asymmetric pads,
  negative steps, reverse and batch-major recurrent layers, ...; and what is refused;
- names of symbolic dims (batch, seq, --dim-names);
- (the legacy exporter's transformer files, case 4, are tests/test_size_expressions.py's);
- spec/onnx-import.md is generated from the importer's table of handlers.
"""

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import maseir
from maseir.cli.main import main
from maseir.errors import MaseIRError, UnsupportedOpError
from maseir.frontends.onnx import handlers
from maseir.frontends.onnx.importer import _Importer
from maseir.lowering.onnx import save_onnx
from models import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
# Each example exports, lowers and imports a model: few examples, and no shrinking (minutes per failure).
FEW = settings(SETTINGS, max_examples=5, phases=(Phase.explicit, Phase.reuse, Phase.generate))


def ort_run(model, feeds: dict) -> list:
    data = str(model) if isinstance(model, Path) else model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.fixture(autouse=True)
def emitted_ops_are_declared(monkeypatch):
    """Every IR op an ONNX node becomes in these tests is one its handler declares (the ops
    column of spec/onnx-import.md)."""
    made = set()
    original = _Importer.emit_outputs

    def recording(self, op_name, *args, **kwargs):
        made.add((self.cur.op_type, op_name))
        return original(self, op_name, *args, **kwargs)

    monkeypatch.setattr(_Importer, "emit_outputs", recording)
    yield
    undeclared = sorted((onnx_op, op) for onnx_op, op in made if op not in handlers.HANDLERS[onnx_op].ops)
    assert undeclared == [], f"handlers emit ops they do not declare: {undeclared}"


def imported_agrees(path: Path, feeds: list[dict], atol: float = 1e-5, reference: Path | None = None, **kwargs):
    """Import ``path``; on each feed, ORT on the original file (or on ``reference``, a file
    computing the same that ORT can run), the torch lowering of the import and ORT on the
    import's own ONNX agree. Returns the graph."""
    graph = maseir.import_onnx(path, **kwargs)
    assert maseir.check(graph) == []
    lowered, runner = maseir.to_torch(graph), maseir.ort_session(graph)
    original = ort.InferenceSession(str(reference or path), providers=["CPUExecutionProvider"])
    for feed in feeds:
        expected = original.run(None, feed)
        with torch.no_grad():
            got = as_tuple(lowered(*[torch.from_numpy(v) for v in feed.values()]))
        again = as_tuple(runner(*feed.values()))
        assert len(got) == len(expected) == len(again)
        for e, g, a in zip(expected, got, again):
            assert g.shape == e.shape and np.abs(g.numpy() - e).max() <= atol, np.abs(g.numpy() - e).max()
            assert np.abs(a - e).max() <= atol
    return graph


# --- the table of handlers -------------------------------------------------------------
def test_onnx_import_md_is_generated_from_the_handler_table():
    assert (ROOT / "spec" / "onnx-import.md").read_text() == handlers.markdown(), \
        "spec/onnx-import.md is stale: regenerate it with python -m maseir.frontends.onnx > spec/onnx-import.md"


def test_every_importer_handler_is_in_the_table_with_real_ops():
    methods = {name[4:] for name in dir(_Importer) if name.startswith("_op_")}
    assert methods == set(handlers.HANDLERS)
    from maseir import ops
    for handler in handlers.HANDLERS.values():
        assert all(op in ops.REGISTRY for op in handler.ops), handler
        assert handler.first_opset >= 1 and handler.takes


def test_an_op_newer_than_the_file_is_refused_with_its_opset(tmp_path):
    node = helper.make_node("LayerNormalization", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.ones(3, np.float32), "w")])
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(UnsupportedOpError, match=r"LayerNormalization before opset 17 \(the file's opset is 13\)"):
        maseir.import_onnx(path)


# --- op level: random shapes, both lowerings, and back through maseir's own ONNX --------
class Fn(nn.Module):
    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, *xs):
        return self.fn(self, *xs)


def lowerings_agree_and_round_trip(module, inputs, op: str, tmp_path, atol=1e-5):
    """torch and ORT lowerings of the export agree; maseir's ONNX imports back to ``op`` computing the same."""
    graph = maseir.export(module.eval(), inputs, dynamic_dims={})
    assert maseir.check(graph) == [] and op in {n.op for n in graph.nodes}
    with torch.no_grad():
        expected = [t.numpy() for t in as_tuple(maseir.to_torch(graph)(*inputs))]
    got = as_tuple(maseir.ort_session(graph)(*inputs))
    for g, e in zip(got, expected):
        assert g.shape == e.shape and np.abs(g - e).max() <= atol, np.abs(g - e).max()
    path = tmp_path / f"{op}.onnx"
    save_onnx(graph, path)
    back = maseir.import_onnx(path)
    assert maseir.check(back) == [] and op in {n.op for n in back.nodes}
    with torch.no_grad():
        again = [t.numpy() for t in as_tuple(maseir.to_torch(back)(*inputs))]
    for a, e in zip(again, expected):
        assert a.shape == e.shape and np.abs(a - e).max() <= atol


def _randn(draw, shape, scale=1.0):
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    return torch.randn(shape, generator=gen) * scale


@FEW
@given(st.data())
def test_pad_agrees_and_round_trips(tmp_path, data):
    draw = data.draw
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    padded = draw(st.integers(1, 3))
    rank = padded + (draw(st.integers(0, 1)) if mode == "constant" else draw(st.integers(1, 2)))
    shape = [draw(st.integers(1, 3)) for _ in range(rank - padded)] + [draw(st.integers(2, 5)) for _ in range(padded)]
    pad = []
    for i in range(padded):  # (before, after) from the last dim backwards
        size = shape[rank - 1 - i]
        low, high = {"constant": (-1, 3), "reflect": (0, size - 1), "replicate": (0, 3), "circular": (0, size)}[mode]
        pad += [draw(st.integers(low, high)), draw(st.integers(low, high))]
    if not any(pad):  # all-zero pads are no pad node once imported
        pad[0] = 1
    value = draw(st.sampled_from([0.0, 1.5, -2.0]))
    fn = (lambda m, x: F.pad(x, pad, value=value)) if mode == "constant" else (lambda m, x: F.pad(x, pad, mode=mode))
    lowerings_agree_and_round_trip(Fn(fn), (_randn(draw, shape),), "pad", tmp_path)


@FEW
@given(st.data())
def test_upsample_agrees_and_round_trips(tmp_path, data):
    draw = data.draw
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    bilinear = draw(st.booleans())
    align = bilinear and draw(st.booleans())
    kwargs = {"mode": "bilinear", "align_corners": align} if bilinear else {"mode": "nearest"}
    if draw(st.booleans()):
        kwargs["size"] = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    else:  # scales that keep both output sizes at least 1
        kwargs["scale_factor"] = tuple(draw(st.sampled_from([s for s in (0.5, 1.0, 1.5, 2.0, 3.0) if n * s >= 1]))
                                       for n in shape[2:])
    op = "upsample_bilinear2d" if bilinear else "upsample_nearest2d"
    lowerings_agree_and_round_trip(Fn(lambda m, x: F.interpolate(x, **kwargs)), (_randn(draw, shape),), op, tmp_path)


@FEW
@given(st.data())
def test_conv_transpose2d_agrees_and_round_trips(tmp_path, data):
    draw = data.draw
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, d * (k - 1) // 2)) for k, d in zip(kernel, dilation))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    layer = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=padding, output_padding=output_padding,
                               groups=groups, bias=draw(st.booleans()), dilation=dilation)
    x = _randn(draw, (draw(st.integers(1, 2)), cin, draw(st.integers(1, 5)), draw(st.integers(1, 5))))
    lowerings_agree_and_round_trip(Fn(lambda m, x: m.layer(x), layer=layer), (x,), "conv_transpose2d", tmp_path)


@FEW
@given(st.data())
def test_hardsigmoid_and_flip_agree_and_round_trip(tmp_path, data):
    draw = data.draw
    shape = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4)))]
    dims = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    x = _randn(draw, shape, scale=5.0)  # beyond both clamps of hardsigmoid
    lowerings_agree_and_round_trip(Fn(lambda m, x: F.hardsigmoid(x)), (x,), "hardsigmoid", tmp_path)
    lowerings_agree_and_round_trip(Fn(lambda m, x: torch.flip(x, dims)), (x,), "flip", tmp_path)


@FEW
@given(st.data())
def test_lstm_and_gru_agree_and_round_trip(tmp_path, data):
    draw = data.draw
    kind = draw(st.sampled_from(["lstm", "gru"]))
    size, hidden, layers = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 2))
    bidirectional, batch_first = draw(st.booleans()), draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    layer = (nn.LSTM if kind == "lstm" else nn.GRU)(size, hidden, num_layers=layers, bias=draw(st.booleans()),
                                                   bidirectional=bidirectional, batch_first=batch_first)
    seq, batch = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    x = _randn(draw, (batch, seq, size) if batch_first else (seq, batch, size))
    states = layers * (2 if bidirectional else 1), batch, hidden
    if draw(st.booleans()):  # initial states given, else zeros (aten.zeros in the export)
        h0, c0 = _randn(draw, states), _randn(draw, states)
        if kind == "lstm":
            module, inputs = Fn(lambda m, x, h, c: (lambda y, s: (y, *s))(*m.layer(x, (h, c))), layer=layer), (x, h0, c0)
        else:
            module, inputs = Fn(lambda m, x, h: m.layer(x, h), layer=layer), (x, h0)
    else:
        module = Fn(lambda m, x: (lambda y, s: (y, *s) if kind == "lstm" else (y, s))(*m.layer(x)), layer=layer)
        inputs = (x,)
    lowerings_agree_and_round_trip(module, inputs, kind, tmp_path, atol=1e-5)


# --- real exporters' files ---------------------------------------------------------------------------
class Images(nn.Module):
    """F.pad, F.interpolate, ConvTranspose2d, hardsigmoid and flip as exporters see them."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return (F.pad(x, (1, 2, 0, 3), value=0.5), F.pad(x, (1, 2, 2, 1), mode="reflect"),
                F.pad(x, (2, 1, 1, 0), mode="replicate"),
                F.interpolate(x, scale_factor=2, mode="nearest"), F.interpolate(x, size=(7, 9), mode="nearest"),
                F.interpolate(x, scale_factor=1.5, mode="bilinear"),
                F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=True),
                self.up(x), F.hardsigmoid(x * 4), torch.flip(x, [1, 3]))


class Sequences(nn.Module):
    """A two-layer bidirectional LSTM and a batch-first GRU over one (seq, batch, 4) input."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(4, 6, batch_first=True)

    def forward(self, x, s):
        y, (h, c) = self.lstm(s)
        z, hz = self.gru(s.transpose(0, 1))
        return (*self.images(x), y, h, c, z, hz)


def _both_modules():
    torch.manual_seed(0)
    model = Sequences()
    model.images = Images()
    return model.eval()


@pytest.fixture(scope="module")
def exported_files(tmp_path_factory):
    """(model, {exporter: path}): one torch.onnx.export(dynamo=True) file with torch.export's own dim
    names (s17, ...), and the legacy exporter's file at opset 17 with named dynamic axes."""
    folder = tmp_path_factory.mktemp("exported")
    model = _both_modules()
    x, s = torch.randn(2, 3, 5, 6), torch.randn(5, 2, 4)
    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x, s), dynamo=True, verbose=False,
                                    dynamic_shapes={"x": {0: torch.export.Dim.DYNAMIC},
                                                    "s": {1: torch.export.Dim.DYNAMIC}})
        files["dynamo"] = folder / "dynamo.onnx"
        program.save(str(files["dynamo"]))
        for opset in (17,):
            files[f"legacy{opset}"] = folder / f"legacy{opset}.onnx"
            torch.onnx.export(model, (x, s), str(files[f"legacy{opset}"]), dynamo=False, opset_version=opset,
                              input_names=["x", "s"], dynamic_axes={"x": {0: "batch"}, "s": {0: "seq", 1: "n"}})
    return model, files


def _feeds(sizes):
    """Inputs of Sequences for each (image batch, sequence length, sequence batch)."""
    gen = np.random.default_rng(0)
    return [{"x": gen.standard_normal((b, 3, 5, 6)).astype(np.float32),
             "s": gen.standard_normal((n, b2, 4)).astype(np.float32)} for b, n, b2 in sizes]


def test_dynamo_file_with_every_case_5_op_imports_and_agrees_with_onnx_runtime(exported_files):
    model, files = exported_files
    graph = imported_agrees(files["dynamo"], _feeds([(1, 5, 3), (3, 5, 1)]))
    assert {"pad", "upsample_nearest2d", "upsample_bilinear2d", "conv_transpose2d", "hardsigmoid", "flip", "lstm",
            "gru"} <= {n.op for n in graph.nodes}
    # torch.export's symbols s.. are named after their axes; the LSTM's batch is a second, independent size
    assert graph.dims == {"batch": ("x", 0), "s_batch": ("s", 1)}
    assert any(name.startswith("lstm.weight_ih_l1") for name in graph.params)
    x, s = torch.randn(3, 3, 5, 6), torch.randn(5, 1, 4)
    with torch.no_grad():
        expected = model(x, s)
        got = maseir.to_torch(graph)(x, s)
    assert all(np.abs(g.numpy() - e.numpy()).max() <= 1e-5 for g, e in zip(got, expected))


@pytest.mark.parametrize("opset", [17])
def test_legacy_exporter_files_import_and_agree_with_onnx_runtime(exported_files, opset):
    _, files = exported_files
    graph = imported_agrees(files[f"legacy{opset}"], _feeds([(1, 2, 3), (3, 7, 1)]))
    assert graph.dims == {"batch": ("x", 0), "seq": ("s", 0), "n": ("s", 1)}
    lstm = [n for n in graph.nodes if n.op == "lstm"]
    assert len(lstm) == 2 and lstm[1].inputs[3] == "lstm.weight_ih_l1"  # the legacy exporter's layers, renamed


# --- attribute variants, made with onnx.helper ------------------------------------------------------------
def _model(nodes, inputs, outputs, inits=(), opset=21):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _save(model, tmp_path, name="hand.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_asymmetric_pads_of_conv_and_pools(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[0, 1, 2, 0], strides=[2, 1]),
             helper.make_node("Conv", ["x", "w2"], ["same"], auto_pad="SAME_UPPER", kernel_shape=[2, 2]),
             helper.make_node("MaxPool", ["x"], ["mp"], kernel_shape=[3, 2], pads=[1, 0, 0, 1]),
             helper.make_node("AveragePool", ["x"], ["ap"], kernel_shape=[2, 3], pads=[0, 2, 1, 0],
                              count_include_pad=1),
             helper.make_node("MaxPool", ["x"], ["mp_same"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER")]
    inits = [("w", _normal(4, 3, 3, 3)), ("b", _normal(4)), ("w2", _normal(2, 3, 2, 2, seed=1))]
    model = _model(nodes, [_float("x", ["n", 3, 7, 6])], [_float(o, None) for o in ("c", "same", "mp", "ap", "mp_same")],
                   inits)
    graph = imported_agrees(_save(model, tmp_path), [{"x": _normal(b, 3, 7, 6, seed=b)} for b in (1, 2)])
    assert [n.op for n in graph.nodes].count("pad") == 5


def test_negative_step_slices_are_flips(tmp_path):
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))  # noqa: E731
    big = 2**63 - 1
    nodes = [c("s1", [-1]), c("e1", [-big - 1]), c("a1", [1]), c("m1", [-1]),
             helper.make_node("Slice", ["x", "s1", "e1", "a1", "m1"], ["reversed"]),      # x[:, ::-1] (symbolic dim)
             c("s2", [big, 3]), c("e2", [-big - 1, 0]), c("a2", [2, 0]), c("m2", [-2, -1]),
             helper.make_node("Slice", ["x", "s2", "e2", "a2", "m2"], ["strided"]),       # x[3:0:-1, :, ::-2]
             c("s3", [-2, 1]), c("e3", [-5, 6]), c("a3", [1, 2]), c("m3", [-1, 2]),
             helper.make_node("Slice", ["x", "s3", "e3", "a3", "m3"], ["mixed"])]         # x[:, -2:-5:-1, 1:6:2]
    model = _model(nodes, [_float("x", [5, "seq", 7])], [_float(o, None) for o in ("reversed", "strided", "mixed")])
    graph = imported_agrees(_save(model, tmp_path), [{"x": _normal(5, n, 7, seed=n)} for n in (2, 3, 6)])
    assert graph.dims == {"seq": ("x", 1)} and "flip" in {n.op for n in graph.nodes}


BOUNDS = st.one_of(st.integers(-8, 8), st.sampled_from([2**63 - 1, -2**63]))


@settings(SETTINGS, max_examples=25)
@given(st.data())
def test_random_slices_with_any_steps_agree_with_onnx_runtime(tmp_path, data):
    draw = data.draw
    shape = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(1, 3)))]
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    starts, ends = [draw(BOUNDS) for _ in axes], [draw(BOUNDS) for _ in axes]
    steps = [draw(st.sampled_from([-3, -2, -1, 1, 2])) for _ in axes]
    if any(len(range(*slice(s, e, st).indices(shape[a]))) == 0 for a, s, e, st in zip(axes, starts, ends, steps)):
        return  # empty results: nothing to compare
    inits = [(n, np.array(v, np.int64)) for n, v in (("s", starts), ("e", ends), ("a", axes), ("m", steps))]
    model = _model([helper.make_node("Slice", ["x", "s", "e", "a", "m"], ["y"])], [_float("x", shape)],
                   [_float("y", None)], inits)
    imported_agrees(_save(model, tmp_path), [{"x": _normal(*shape)}])


@settings(SETTINGS, max_examples=15)
@given(st.data())
def test_random_asymmetric_pads_of_conv_and_max_pool_agree_with_onnx_runtime(tmp_path, data):
    draw = data.draw
    kernel = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    strides = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    pads = [draw(st.integers(0, k - 1)) for k in kernel + kernel]
    if draw(st.booleans()):  # pads past half the kernel, which ATen's pools refuse
        kernel, pads = [3, 3], [2, draw(st.integers(0, 2)), 2, draw(st.integers(0, 2))]
    size = [draw(st.integers(k, 6)) for k in kernel]
    op = draw(st.sampled_from(["Conv", "MaxPool", "AveragePool"]))
    if op == "Conv":
        node = helper.make_node("Conv", ["x", "w"], ["y"], pads=pads, strides=strides)
        inits = [("w", _normal(2, 3, *kernel))]
    else:
        extra = {"count_include_pad": 1} if op == "AveragePool" else {}
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=kernel, pads=pads, strides=strides, **extra)
        inits = []
    model = _model([node], [_float("x", ["n", 3, *size])], [_float("y", None)], inits)
    imported_agrees(_save(model, tmp_path), [{"x": _normal(2, 3, *size)}])


def test_a_backward_slice_from_an_index_of_a_symbolic_dim_is_refused(tmp_path):
    inits = [("s", np.array([3], np.int64)), ("e", np.array([0], np.int64)), ("a", np.array([1], np.int64)),
             ("m", np.array([-1], np.int64))]
    model = _model([helper.make_node("Slice", ["x", "s", "e", "a", "m"], ["y"], name="back")],
                   [_float("x", [2, "seq"])], [_float("y", None)], inits)
    with pytest.raises(UnsupportedOpError, match=r"node back \(Slice\): slices backwards from index 3 of a symbolic"):
        maseir.import_onnx(_save(model, tmp_path))


def test_pad_variants(tmp_path):
    inits = [("pads", np.array([0, 1, 2, 0, 0, 2, -1, 1], np.int64)), ("value", np.array(-0.5, np.float32)),
             ("axes_pads", np.array([2, 1], np.int64)), ("axes", np.array([-1], np.int64)),
             ("edge_pads", np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64))]
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["const"]),      # a negative pad crops
             helper.make_node("Pad", ["x", "axes_pads", "", "axes"], ["wrap"], mode="wrap"),
             helper.make_node("Pad", ["x", "edge_pads"], ["edge"], mode="edge")]
    model = _model(nodes, [_float("x", ["n", 2, 4, 5])], [_float(o, None) for o in ("const", "wrap", "edge")], inits)
    imported_agrees(_save(model, tmp_path), [{"x": _normal(b, 2, 4, 5)} for b in (1, 3)])
    old = _model([helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 0, 2], mode="reflect")], [_float("x", [3, 4])],
                 [_float("y", None)], opset=10)
    imported_agrees(_save(old, tmp_path, "old.onnx"), [{"x": _normal(3, 4)}])


def test_resize_variants_and_refusals(tmp_path):
    inits = [("scales", np.array([1, 1, 2, 3], np.float32)), ("sizes", np.array([8, 10], np.int64)),
             ("down", np.array([1, 1, 0.5, 0.5], np.float32))]
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["half_pixel_nearest"], mode="nearest"),  # ONNX's defaults
             helper.make_node("Resize", ["x", "", "", "sizes"], ["linear_sizes"], mode="linear", axes=[2, 3],
                              coordinate_transformation_mode="pytorch_half_pixel"),
             helper.make_node("Resize", ["x", "", "down"], ["down_linear"], mode="linear")]
    model = _model(nodes, [_float("x", ["n", 2, 4, 5])],
                   [_float(o, None) for o in ("half_pixel_nearest", "linear_sizes", "down_linear")], inits)
    imported_agrees(_save(model, tmp_path), [{"x": _normal(b, 2, 4, 5)} for b in (1, 2)])
    for attrs, match in [({"mode": "cubic"}, "mode 'cubic'"),
                         ({"mode": "nearest", "coordinate_transformation_mode": "half_pixel"},
                          "nearest resize with coordinate_transformation_mode=half_pixel"),
                         ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"},
                          "linear resize with coordinate_transformation_mode=asymmetric")]:
        bad = _model([helper.make_node("Resize", ["x", "", "down"], ["y"], name="resize", **attrs)],
                     [_float("x", [1, 2, 4, 5])], [_float("y", None)], inits)
        with pytest.raises(UnsupportedOpError, match=rf"node resize \(Resize\): {match}"):
            maseir.import_onnx(_save(bad, tmp_path, "bad.onnx"))


@settings(SETTINGS, max_examples=25)
@given(st.data())
def test_random_resizes_agree_with_onnx_runtime(tmp_path, data):
    draw = data.draw
    size = [draw(st.integers(1, 6)), draw(st.integers(1, 6))]
    mode, transform, rounding = draw(st.sampled_from([
        ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
        ("nearest", "pytorch_half_pixel", "round_prefer_ceil"), ("linear", "half_pixel", None),
        ("linear", "align_corners", None), ("linear", "pytorch_half_pixel", None)]))
    by_scales = mode == "linear" and transform != "align_corners" and draw(st.booleans()) or transform == "asymmetric"
    whole = mode == "nearest" and transform != "asymmetric"  # half-pixel nearest: whole upscaling factors only
    if by_scales:
        choices = [1.0, 2.0, 3.0] if whole else [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
        scales = [draw(st.sampled_from([c for c in choices if n * c >= 1])) for n in size]
        inputs, inits = ["x", "", "scales"], [("scales", np.array([1, 1, *scales], np.float32))]
        out = [int(n * c) for n, c in zip(size, scales)]
    else:
        out = [n * draw(st.integers(1, 3)) if whole else draw(st.integers(1, 9)) for n in size]
        inputs, inits = ["x", "", "", "sizes"], [("sizes", np.array(out, np.int64))]
    if transform == "pytorch_half_pixel" and min(out) == 1:
        out = [max(n, 2) for n in out]  # output size 1 is refused there (ATen would use half_pixel)
        inputs, inits = ["x", "", "", "sizes"], [("sizes", np.array(out, np.int64))]
    attrs = dict(mode=mode, coordinate_transformation_mode=transform, **({"nearest_mode": rounding} if rounding else {}))
    if inputs[-1] == "sizes":
        attrs["axes"] = [2, 3]
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    model = _model([node], [_float("x", ["n", 2, *size])], [_float("y", None)], inits)
    imported_agrees(_save(model, tmp_path), [{"x": _normal(2, 2, *size)}], atol=1e-5)


def test_conv_transpose_pads_output_shape_and_auto_pad(tmp_path):
    inits = [("w", _normal(3, 2, 3, 2)), ("b", _normal(2))]
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["asym"], strides=[2, 2], pads=[0, 1, 2, 0]),
             helper.make_node("ConvTranspose", ["x", "w"], ["shaped"], strides=[2, 3], output_shape=[8, 13]),
             helper.make_node("ConvTranspose", ["x", "w", "b"], ["same"], strides=[2, 2], auto_pad="SAME_UPPER")]
    model = _model(nodes, [_float("x", ["n", 3, 4, 5])], [_float(o, None) for o in ("asym", "shaped", "same")], inits)
    imported_agrees(_save(model, tmp_path), [{"x": _normal(b, 3, 4, 5)} for b in (1, 2)], atol=1e-4)


def test_hardsigmoid_with_other_constants(tmp_path):
    model = _model([helper.make_node("HardSigmoid", ["x"], ["y"], alpha=0.2, beta=0.4),
                    helper.make_node("HardSigmoid", ["x"], ["z"], alpha=1 / 6)],
                   [_float("x", ["n", 5])], [_float("y", None), _float("z", None)])
    graph = imported_agrees(_save(model, tmp_path), [{"x": _normal(4, 5) * 5}])
    assert [n.op for n in graph.nodes] == ["mul", "add", "clamp", "hardsigmoid"]


def _gates(kind, hidden, size, dirs, seed):
    n = 4 if kind == "LSTM" else 3
    return [("w", _normal(dirs, n * hidden, size, seed=seed)), ("r", _normal(dirs, n * hidden, hidden, seed=seed + 1)),
            ("b", _normal(dirs, 2 * n * hidden, seed=seed + 2))]


def _recurrent_model(kind, direction, layout, states, bias, inits):
    """One LSTM/GRU node (hidden 3, input size 2) reading x, h0[, c0], and its outputs.

    ONNX Runtime runs only layout 0, so the layout-1 file comes with a layout-0 reference:
    the same node between the transposes that layout 1 stands for."""
    hidden, size, dirs = 3, 2, 2 if direction == "bidirectional" else 1
    names = ["x", "w", "r", "b" if bias else "", ""] + (["h0"] + (["c0"] if kind == "LSTM" else []) if states else [])
    # Layout 0 has no dim_params: the LSTM/GRU says which axis is the batch and which the sequence.
    inputs = [_float("x", ["batch", "seq", size] if layout else ["", "", size])]
    inputs += [_float(n, ["batch", dirs, hidden] if layout else [dirs, "", hidden]) for n in names[5:]]
    outputs = ["y", "y_h"] + (["y_c"] if kind == "LSTM" else [])
    extra = {"linear_before_reset": 1} if kind == "GRU" else {}
    attrs = dict(hidden_size=hidden, direction=direction, **extra)
    node = helper.make_node(kind, names, outputs, name="rnn", layout=layout, **attrs)
    model = _model([node], inputs, [_float(o, None) for o in outputs], inits)
    if not layout:
        return model, None
    swap = [helper.make_node("Transpose", ["x"], ["x0"], perm=[1, 0, 2])]
    swap += [helper.make_node("Transpose", [n], [f"{n}0"], perm=[1, 0, 2]) for n in names[5:]]
    inner = ["x0"] + names[1:5] + [f"{n}0" for n in names[5:]]
    swap.append(helper.make_node(kind, inner, [f"{o}0" for o in outputs], name="rnn", **attrs))
    swap.append(helper.make_node("Transpose", ["y0"], ["y"], perm=[2, 0, 1, 3]))
    swap += [helper.make_node("Transpose", [f"{o}0"], [o], perm=[1, 0, 2]) for o in outputs[1:]]
    return model, _model(swap, inputs, [_float(o, None) for o in outputs], inits)


@pytest.mark.parametrize("kind,direction,layout,states,bias", [
    ("LSTM", "reverse", 0, True, True), ("LSTM", "bidirectional", 1, True, False), ("LSTM", "forward", 1, False, True),
    ("GRU", "reverse", 1, True, True), ("GRU", "bidirectional", 0, False, False)])
def test_recurrent_variants(tmp_path, kind, direction, layout, states, bias):
    dirs = 2 if direction == "bidirectional" else 1
    inits = _gates(kind, 3, 2, dirs, seed=len(direction) + layout)
    model, reference = _recurrent_model(kind, direction, layout, states, bias, inits if bias else inits[:2])
    feeds = []
    for batch, seq in ((1, 2), (3, 4)):
        feed = {"x": _normal(*((batch, seq, 2) if layout else (seq, batch, 2)), seed=batch)}
        for i, n in enumerate(["h0", "c0"][:(2 if kind == "LSTM" else 1) if states else 0]):
            feed[n] = _normal(*((batch, dirs, 3) if layout else (dirs, batch, 3)), seed=seq + i)
        feeds.append(feed)
    graph = imported_agrees(_save(model, tmp_path), feeds,
                            reference=_save(reference, tmp_path, "reference.onnx") if reference else None)
    assert graph.dims == ({"batch": ("x", 0), "seq": ("x", 1)} if layout else {"seq": ("x", 0), "batch": ("x", 1)})
    assert "rnn.weight_ih_l0" in graph.params and ("rnn.weight_ih_l0_reverse" in graph.params) == (dirs == 2)


@pytest.mark.parametrize("kind,attrs,extra,match", [
    ("GRU", {"linear_before_reset": 0}, {}, "linear_before_reset=0"),
    ("LSTM", {"clip": 2.0}, {}, "the clip attribute"),
    ("LSTM", {"activations": ["Sigmoid", "Relu", "Tanh"]}, {}, "activations"),
    ("LSTM", {"input_forget": 1}, {}, "input_forget=1"),
    ("LSTM", {}, {"p": np.ones((1, 9), np.float32)}, "peephole"),
    ("LSTM", {}, {"lengths": np.array([3, 1], np.int32)}, "sequence_lens")])
def test_recurrent_features_aten_lacks_are_refused_naming_the_node(tmp_path, kind, attrs, extra, match):
    inits = _gates(kind, 3, 2, 1, seed=0) + [(k, v) for k, v in extra.items()]
    inputs = ["x", "w", "r", "b", "lengths" if "lengths" in extra else "", "", ""] + (["p"] if "p" in extra else [])
    attrs = {"linear_before_reset": 1, **attrs} if kind == "GRU" else attrs
    node = helper.make_node(kind, inputs[:5] if kind == "GRU" else inputs, ["y"], name="rnn", hidden_size=3, **attrs)
    model = _model([node], [_float("x", [3, 2, 2])], [_float("y", None)], inits)
    with pytest.raises(UnsupportedOpError, match=rf"node rnn \({kind}\): .*{match}"):
        maseir.import_onnx(_save(model, tmp_path))


# --- names of symbolic dims ------------------------------------------------------------------------------------
def _dims_model(inputs: dict, nodes=None):
    """A model adding the inputs' last dims: inputs maps name -> (elem type, shape)."""
    infos = [helper.make_tensor_value_info(n, t, shape) for n, (t, shape) in inputs.items()]
    nodes = nodes or [helper.make_node("Identity", [n], [f"{n}_out"]) for n in inputs]
    return _model(nodes, infos, [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in nodes])


def test_generated_dim_names_are_named_after_their_axes(tmp_path):
    model = _dims_model({"input_ids": (TensorProto.INT64, ["input_ids_dynamic_axes_1", "input_ids_dynamic_axes_2"]),
                         "attention_mask": (TensorProto.INT64, ["attention_mask_dynamic_axes_1", ""]),
                         "pixels": (TensorProto.FLOAT, ["s17", 3, "s27", "s28"]),
                         "features": (TensorProto.FLOAT, ["s17", "unk__4", 8]),
                         "other": (TensorProto.FLOAT, ["s99", 4, 4, 4, "s5"])})
    graph = maseir.import_onnx(_save(model, tmp_path))
    assert graph.dims == {"batch": ("input_ids", 0), "seq": ("input_ids", 1), "height": ("pixels", 2),
                          "width": ("pixels", 3), "other_batch": ("other", 0), "other_dim4": ("other", 4)}
    assert graph.inputs[1].type.shape == ("batch", "seq") and graph.inputs[3].type.shape == ("batch", "seq", 8)


def test_common_spellings_become_batch_and_seq_and_chosen_names_are_kept(tmp_path):
    model = _dims_model({"ids": (TensorProto.INT64, ["batch_size", "sequence_length"]),
                         "boxes": (TensorProto.FLOAT, ["Batch", "num_boxes", 4])})
    graph = maseir.import_onnx(_save(model, tmp_path))
    assert graph.dims == {"batch": ("ids", 0), "seq": ("ids", 1), "num_boxes": ("boxes", 1)}


def test_dim_names_choose_by_dim_param_or_input_axis(tmp_path):
    model = _dims_model({"a": (TensorProto.FLOAT, ["s3", "s4"]), "b": (TensorProto.FLOAT, ["s3", "", 2])})
    path = _save(model, tmp_path)
    graph = maseir.import_onnx(path, dim_names={"s3": "n", "b:1": "tokens"})
    # b:1 has no dim_param, so by default it is the seq that a:1 is; naming it renames that size
    assert graph.dims == {"n": ("a", 0), "tokens": ("a", 1)}
    graph = maseir.import_onnx(path, dim_names={"a:1": "rows", "b:1": "tokens"})  # naming both splits them
    assert graph.dims == {"batch": ("a", 0), "rows": ("a", 1), "tokens": ("b", 1)}
    with pytest.raises(MaseIRError, match=r"cannot name dim 'nope'.*its symbolic dims: a:0, a:1, b:0, b:1, s3, s4"):
        maseir.import_onnx(path, dim_names={"nope": "x"})
    with pytest.raises(TypeError, match="dim_names"):
        maseir.import_onnx(path, dim_names=["s3"])


def test_naming_one_input_axis_renames_the_size_other_inputs_share(tmp_path):
    """The legacy exporter's dynamic_axes names say nothing about which sizes are equal: the ids'
    and the mask's seq are one size, and naming it through one input renames it for both."""
    ids, mask = (np.arange(12, dtype=np.int64).reshape(3, 4), np.ones((3, 4), np.int64))
    add = helper.make_node("Add", ["input_ids", "attention_mask"], ["y"])
    model = _model([add], [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                                         ["input_ids_dynamic_axes_1", "input_ids_dynamic_axes_2"]),
                           helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                                         ["attention_mask_dynamic_axes_1",
                                                          "attention_mask_dynamic_axes_2"])],
                   [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    graph = maseir.import_onnx(_save(model, tmp_path), dim_names={"input_ids:1": "length"})
    assert graph.dims == {"batch": ("input_ids", 0), "length": ("input_ids", 1)}
    assert graph.inputs[1].type.shape == ("batch", "length")
    assert (maseir.to_torch(graph)(torch.tensor(ids), torch.tensor(mask)).numpy() == ids + mask).all()


def test_cli_dim_names(tmp_path, capsys):
    import json
    path = _save(_dims_model({"a": (TensorProto.FLOAT, ["s3", "s4"])}), tmp_path, "a.onnx")
    out = tmp_path / "a.mir"
    assert main(["import", str(path), "-o", str(out), "--dim-names", "s3=rows,a:1=cols", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dims"] == {"rows": "a[0]", "cols": "a[1]"}
    for bad, match in [("s3", "--dim-names: 's3' is not OLD=NEW"), ("s3=1x", "--dim-names: s3=1x: a dim name is"),
                       ("zz=rows", "cannot name dim 'zz'")]:
        assert main(["import", str(path), "-o", str(out), "--dim-names", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("maseir: error: ") and match in err and err.count("\n") == 1, err


class Flip(nn.Module):
    def forward(self, x):
        return torch.flip(x, [1]) * 2


def test_a_file_maseir_lowered_keeps_its_dim_names(tmp_path):
    graph = maseir.export(Flip(), (torch.randn(2, 3, 4),), dynamic_dims={"x": {0: "n", 1: "x_dim1"}})
    save_onnx(graph, tmp_path / "m.onnx")
    assert maseir.import_onnx(tmp_path / "m.onnx").dims == graph.dims == {"n": ("x", 0), "x_dim1": ("x", 1)}
