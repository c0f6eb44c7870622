"""ONNX import: a torch.onnx dynamo export of BERT imports and agrees three ways, import(to_onnx(g))
computes what g computes, hand-made graphs exercise the op mappings, and bad files are one-line errors."""

import hashlib
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given
from onnx import TensorProto, helper, numpy_helper

import maseir
from maseir.errors import FileFormatError, UnsupportedOpError
from maseir.lowering.onnx import save_onnx
from conftest import bert_inputs
from models import SETTINGS, cnns, mlps


def ort_run(model, feeds: dict) -> list:
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.fixture(scope="module")
def dynamo_bert(tiny_bert, tmp_path_factory):
    """(transformers model, path of its torch.onnx.export(dynamo=True) file) for the bert-tiny shape."""
    model, _ = tiny_bert
    path = tmp_path_factory.mktemp("dynamo") / "bert.onnx"
    ids, mask = bert_inputs(2, 16)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "attention_mask": mask}, dynamo=True,
                                    dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                    "attention_mask": {0: batch, 1: seq}},
                                    input_names=["input_ids", "attention_mask"], output_names=["logits"],
                                    verbose=False)
    program.save(str(path))
    return model, path


# --- a real exporter's file ------------------------------------------------------------
def test_dynamo_bert_imports_and_agrees_three_ways(dynamo_bert):
    model, path = dynamo_bert
    graph = maseir.import_onnx(path)
    assert maseir.check(graph) == []
    assert graph.dims == {"batch": ("input_ids", 0), "seq": ("input_ids", 1)}
    assert graph.outputs == ["logits"]
    lowered, runner = maseir.to_torch(graph), maseir.ort_session(graph)
    onnx.checker.check_model(maseir.to_onnx(graph), full_check=True)
    for batch, seq in [(1, 1), (2, 16), (5, 37), (3, 128)]:
        ids, mask = bert_inputs(batch, seq)
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
            from_torch = lowered(ids, mask).numpy()
        (original,) = ort_run(str(path), {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        for got in (from_torch, runner(ids, mask), original):
            assert np.abs(got - expected).max() <= 1e-4


def test_import_keeps_onnx_names_and_initializers(dynamo_bert, tmp_path):
    _, path = dynamo_bert
    source = onnx.load(str(path))
    graph = maseir.import_onnx(path)
    onnx_nodes = {n.name for n in source.graph.node}
    assert all(n.name in onnx_nodes or n.name.split("/")[0] in onnx_nodes for n in graph.nodes)
    initializers = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
    weight = "bert.embeddings.word_embeddings.weight"
    assert weight in graph.params and graph.params[weight].trainable
    # MatMul(x, B [in, out]) of an initializer is a linear layer: its weight is B^T under B's name
    matmul_weights = {n.input[1] for n in source.graph.node if n.op_type == "MatMul" and n.input[1] in initializers}
    assert len(matmul_weights) == 12  # 6 per layer: q, k, v, attention output, intermediate, output
    linear_weights = {n.inputs[1] for n in graph.nodes if n.op == "linear"}
    assert linear_weights == matmul_weights | {"bert.pooler.dense.weight", "classifier.weight"}
    assert not [n for n in graph.nodes if n.op == "matmul" and set(n.inputs) & set(graph.params)]
    for name, tensor in graph.params.items():
        if name in initializers:
            array = initializers[name].T if name in matmul_weights else initializers[name]
            assert tensor.sha256 == hashlib.sha256(np.ascontiguousarray(array).tobytes()).digest()
    assert graph.node("node_embedding").scope == "bert.embeddings.word_embeddings"
    maseir.save(graph, tmp_path / "b.mir")
    assert maseir.load(tmp_path / "b.mir") == graph


# --- round trips through maseir's own ONNX --------------------------------------------------
def test_bert_round_trip_keeps_names_layers_and_outputs(tiny_bert, tmp_path):
    model, graph = tiny_bert
    save_onnx(graph, tmp_path / "b.onnx")
    back = maseir.import_onnx(tmp_path / "b.onnx")
    assert maseir.check(back) == []
    query = back.node("bert.encoder.layer.0.attention.self.query.linear")
    assert query.op == "linear" and query.inputs[1:] == ["bert.encoder.layer.0.attention.self.query.weight",
                                                         "bert.encoder.layer.0.attention.self.query.bias"]
    assert back.dims == graph.dims and back.outputs == graph.outputs
    linear_weights = {n.inputs[1] for n in graph.nodes if n.op == "linear"}
    assert linear_weights == {n.inputs[1] for n in back.nodes if n.op == "linear"}
    for name in linear_weights:  # stored transposed in ONNX, read back as they were
        assert back.params[name].type == graph.params[name].type
        assert back.params[name].sha256 == graph.params[name].sha256
    assert back.metadata == graph.metadata  # a file maseir lowered carries the graph's own metadata
    lowered, original = maseir.to_torch(back), maseir.to_torch(graph)
    for batch, seq in [(1, 3), (4, 40)]:
        ids, mask = bert_inputs(batch, seq)
        with torch.no_grad():
            assert np.abs(lowered(ids, mask).numpy() - original(ids, mask).numpy()).max() <= 1e-5


def _round_trip(model, shape, tmp_path):
    graph = maseir.export(model, (torch.randn(2, *shape),))
    path = tmp_path / "m.onnx"
    save_onnx(graph, path)
    back = maseir.import_onnx(path)
    assert maseir.check(back) == []
    for batch in (1, 5):
        x = torch.randn(batch, *shape)
        with torch.no_grad():
            assert np.abs(maseir.to_torch(back)(x).numpy() - maseir.to_torch(graph)(x).numpy()).max() <= 1e-5
    return back


@SETTINGS
@given(mlps())
def test_random_mlp_survives_onnx_and_back(tmp_path, case):
    back = _round_trip(*case, tmp_path)
    assert all(n.op != "matmul" for n in back.nodes)  # linear layers are found again


@SETTINGS
@given(cnns())
def test_random_cnn_survives_onnx_and_back(tmp_path, case):
    _round_trip(*case, tmp_path)


# --- hand-made graphs ----------------------------------------------------------------------
def _model(nodes, inputs, outputs, inits=(), opset=21):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _agree(model, feeds, tmp_path, atol=1e-5):
    """ORT on the file, the torch lowering of its import and ORT on the import's ONNX agree."""
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    graph = maseir.import_onnx(path)
    assert maseir.check(graph) == []
    expected = ort_run(model, feeds)
    with torch.no_grad():
        got = maseir.to_torch(graph)(*[torch.from_numpy(v) for v in feeds.values()])
    got = got if isinstance(got, tuple) else (got,)
    again = maseir.ort_session(graph)(**feeds)
    again = again if isinstance(again, tuple) else (again,)
    for e, g, a in zip(expected, got, again):
        assert g.shape == e.shape and np.allclose(g.numpy(), e, atol=atol), np.abs(g.numpy() - e).max()
        assert np.allclose(a, e, atol=atol)
    return graph


def test_attention_shaped_graph_with_shape_arithmetic(tmp_path):
    c = lambda name, value, dtype=np.int64: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=dtype)))
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        c("zero", 0), c("one", 1), c("axes0", [0]), c("minus1_16", [-1, 16]), c("eight", [8]),
        c("split_heads", [0, 0, 2, 4]), c("merge_heads", [0, 0, -1]), c("half", 2.0, np.float32),
        c("one_f", 1.0, np.float32), c("big", -10000.0, np.float32), c("axes12", [1, 2]), c("step", 0.01, np.float32),
        c("three", [3]), c("axis1", [1]), c("split", [4, 4]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
        helper.make_node("Reshape", ["x", "minus1_16"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "bias"], ["proj"], transB=1),
        helper.make_node("Relu", ["proj"], ["act"]),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["b1", "n1", "eight"], ["bn8"], axis=0),
        helper.make_node("Reshape", ["act", "bn8"], ["h"]),
        helper.make_node("Reshape", ["h", "split_heads"], ["h4"]),
        helper.make_node("Transpose", ["h4"], ["t"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["t", "tt"], ["scores0"]),
        helper.make_node("Div", ["scores0", "half"], ["scores1"]),
        helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one_f", "maskf"], ["inv"]),
        helper.make_node("Mul", ["inv", "big"], ["bias0"]),
        helper.make_node("Unsqueeze", ["bias0", "axes12"], ["bias1"]),
        helper.make_node("Add", ["scores1", "bias1"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "t"], ["ctx0"]),
        helper.make_node("Transpose", ["ctx0"], ["ctx1"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx1", "merge_heads"], ["ctx2"]),
        helper.make_node("Range", ["zero", "n", "one"], ["pos"]),
        helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["posf", "step"], ["pos_scaled"]),
        helper.make_node("Unsqueeze", ["pos_scaled", "axis1"], ["pos2"]),
        helper.make_node("Add", ["ctx2", "pos2"], ["ctx3"]),
        helper.make_node("LayerNormalization", ["ctx3", "ln_w", "ln_b"], ["ln"], axis=-1, epsilon=1e-5),
        helper.make_node("ReduceMean", ["ln", "axis1"], ["pooled"], keepdims=0),
        helper.make_node("Erf", ["pooled"], ["erf"]),
        helper.make_node("Greater", ["pooled", "zero_f"], ["positive"]),
        helper.make_node("Neg", ["pooled"], ["negated"]),
        helper.make_node("Where", ["positive", "erf", "negated"], ["picked"]),
        helper.make_node("Concat", ["b1", "three"], ["b3"], axis=0),
        helper.make_node("ConstantOfShape", ["b3"], ["fill"],
                         value=numpy_helper.from_array(np.array([1.5], np.float32))),
        helper.make_node("Split", ["picked", "split"], ["left", "right"], axis=1),
        helper.make_node("Mul", ["left", "right"], ["prod"]),
        helper.make_node("Concat", ["prod", "fill"], ["joined"], axis=1),
        helper.make_node("Clip", ["joined", "clip_lo", "clip_hi"], ["y"]),
        helper.make_node("Equal", ["mask", "zero"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["kept"]),
    ]
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    inits = [("w", normal(8, 16)), ("bias", normal(8)), ("ln_w", normal(8)), ("ln_b", normal(8)),
             ("zero_f", np.array(0.0, np.float32)), ("clip_lo", np.array(-0.5, np.float32)),
             ("clip_hi", np.array(1.2, np.float32))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 16]),
                           helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "seq"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("kept", TensorProto.BOOL, None)], inits)
    for batch, seq in [(1, 3), (4, 7)]:
        mask = np.ones((batch, seq), np.int64)
        mask[-1, -1] = 0
        graph = _agree(model, {"x": rng.standard_normal((batch, seq, 16)).astype(np.float32), "mask": mask}, tmp_path)
    ops = {n.op for n in graph.nodes}
    assert {"linear", "reshape", "softmax", "arange", "full", "slice", "layer_norm", "clamp"} <= ops
    assert {"shape", "gather", "gather_1"}.isdisjoint(n.name for n in graph.nodes)  # folded away
    assert graph.dims == {"batch": ("x", 0), "seq": ("x", 1)}


def test_cnn_graph_with_padding_pooling_and_gemm(tmp_path):
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], auto_pad="SAME_UPPER", kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"], axis=1),
        helper.make_node("Dropout", ["f"], ["d"]),
        helper.make_node("Gemm", ["d", "fc", "fc_b"], ["g"], alpha=0.5, beta=2.0),
        helper.make_node("LogSoftmax", ["g"], ["y"], axis=1),
    ]
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    positive = lambda n: rng.uniform(0.5, 2, n).astype(np.float32)  # noqa: E731
    inits = [("w", normal(4, 3, 3, 3)), ("b", normal(4)), ("scale", positive(4)), ("shift", normal(4)),
             ("mean", normal(4)), ("var", positive(4)), ("fc", normal(4, 5)), ("fc_b", normal(5))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 9, 9])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    graph = _agree(model, {"x": rng.standard_normal((3, 3, 9, 9)).astype(np.float32)}, tmp_path)
    assert [n.op for n in graph.nodes][:4] == ["conv2d", "batch_norm", "relu", "max_pool2d"]
    assert not graph.params["mean"].trainable and graph.params["w"].trainable
    assert graph.dims == {"n": ("x", 0)}


def test_opset_11_attribute_forms(tmp_path):
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]),
             helper.make_node("ReduceSum", ["u"], ["s"], axes=[1], keepdims=1),
             helper.make_node("Squeeze", ["s"], ["q"], axes=[0]),
             helper.make_node("Softmax", ["q"], ["y"], axis=1),
             helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["z"])]
    inits = [("starts", np.array([1], np.int64)), ("ends", np.array([100], np.int64)),
             ("axes", np.array([1], np.int64)), ("steps", np.array([2], np.int64))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits, opset=11)
    _agree(model, {"x": np.random.default_rng(2).standard_normal((2, 5)).astype(np.float32)}, tmp_path)


# --- errors --------------------------------------------------------------------------------
def test_unsupported_ops_are_listed_with_node_names(tmp_path):
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="pick_top"),
             helper.make_node("Fancy", ["v"], ["y"], name="custom_1", domain="com.example"),
             helper.make_node("TopK", ["x", "k"], ["v2", "i2"], name="pick_again")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.array([1], np.int64), "k")])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                      helper.make_opsetid("com.example", 1)]), str(path))
    with pytest.raises(UnsupportedOpError) as info:
        maseir.import_onnx(path)
    message = str(info.value)
    assert "TopK (nodes pick_top, pick_again)" in message and "com.example::Fancy (nodes custom_1)" in message
    assert "\n" not in message


@pytest.mark.parametrize("content,match", [(b"hello, I am a text file\n", "not an ONNX model"),
                                           (b"", "not an ONNX model"),
                                           (b"\x89MIR\r\n\x1a\n" + b"\0" * 56, "not an ONNX model")])
def test_a_file_that_is_not_onnx_is_refused(tmp_path, content, match):
    path = tmp_path / "x.onnx"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=match):
        maseir.import_onnx(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        maseir.import_onnx(tmp_path / "nope.onnx")
    with pytest.raises(FileFormatError, match="directory"):
        maseir.import_onnx(tmp_path)


def test_external_data_is_read_relative_to_the_file_and_missing_data_is_an_error(tiny_bert, tmp_path):
    _, graph = tiny_bert
    folder = tmp_path / "model"
    folder.mkdir()
    save_onnx(graph, folder / "b.onnx", external_data_threshold=1024)
    back = maseir.import_onnx(folder / "b.onnx")
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    assert back.params[weight].sha256 == graph.params[weight].sha256
    (folder / "b.onnx.data").unlink()
    with pytest.raises(FileFormatError, match=r"external data file .*b\.onnx\.data.* is missing"):
        maseir.import_onnx(folder / "b.onnx")


def test_external_data_outside_the_folder_is_refused(tmp_path):
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=[tensor])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(FileFormatError, match="plain relative path"):
        maseir.import_onnx(path)


def test_loss_graph_with_token_types_agrees_and_round_trips(tmp_path):
    from conftest import tiny_bert_config
    tiny_bert_config(vocab_size=200, max_position_embeddings=64).save_pretrained(tmp_path / "cfg")
    graph = maseir.export_pretrained(str(tmp_path / "cfg"), random_init=True,
                                     inputs=("input_ids", "attention_mask", "token_type_ids", "labels"))
    ids, mask = bert_inputs(4, 10, vocab=200)
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    labels = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        loss, logits = maseir.to_torch(graph)(ids, mask, types, labels)
    ort_loss, ort_logits = maseir.ort_session(graph)(ids, mask, types, labels)
    assert abs(float(ort_loss) - float(loss)) <= 1e-5 and np.abs(ort_logits - logits.numpy()).max() <= 1e-4
    save_onnx(graph, tmp_path / "loss.onnx")
    back = maseir.import_onnx(tmp_path / "loss.onnx")
    assert back.outputs == ["loss", "logits"] and maseir.check(back) == []
    with torch.no_grad():
        back_loss, _ = maseir.to_torch(back)(ids, mask, types, labels)
    assert abs(float(back_loss) - float(loss)) <= 1e-5
