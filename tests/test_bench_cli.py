"""maseir bench on models that are not text models: input shapes, dims without defaults,
generated inputs, and count-like options checked by argparse."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from torch import nn

import maseir
from maseir.cli.main import main
from maseir.errors import MaseIRError
from maseir.runtime import bench, example_inputs, input_shapes
from models import SETTINGS, cnns, mlps


def bench_json(capsys, *argv) -> dict:
    assert main(["bench", *argv, "--repeats", "2", "--warmup", "1", "--threads", "1", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def error_of(capsys, *argv) -> str:
    assert main(["bench", *argv, "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maseir: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An MLP (batch, 16), a CNN with a fixed image size and one with symbolic height and width."""
    folder = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2)).eval()
    image = torch.randn(2, 3, 12, 12)
    graphs = {
        "mlp": maseir.export(mlp, (torch.randn(2, 16),)),
        "cnn": maseir.export(cnn, (image,)),
        "cnn_hw": maseir.export(cnn, (image,), dynamic_dims={"input": {0: "batch", 2: "height", 3: "width"}}),
    }
    paths = {}
    for name, graph in graphs.items():
        paths[name] = str(folder / f"{name}.mir")
        maseir.save(graph, paths[name])
    return paths


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_an_mlp_benches_and_says_it_has_no_seq_dim(files, capsys, runtime):
    result = bench_json(capsys, files["mlp"], "--runtime", runtime, "--batch", "3")
    assert result["batch"] == 3 and result["seq_len"] is None and result["shapes"] == {"input": [3, 16]}
    assert 0 < result["p50_ms"] <= result["p90_ms"] and result["samples_per_s"] > 0
    assert main(["bench", files["mlp"], "--runtime", runtime, "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "batch 1, no seq dim" in out and "inputs input [1,16]" in out and "seq-len" not in out


def test_seq_len_for_a_model_without_seq_is_an_error(files, capsys):
    err = error_of(capsys, files["mlp"], "--seq-len", "64")
    assert f"{files['mlp']}: --seq-len does not apply: no graph input has a seq dim" in err
    assert "input[batch,16]" in err and "--shape" in err


def test_a_cnn_with_a_fixed_image_size_needs_no_shape(files, capsys):
    result = bench_json(capsys, files["cnn"], "--batch", "2")
    assert result["shapes"] == {"input": [2, 3, 12, 12]} and result["seq_len"] is None


def test_dims_without_a_default_need_a_shape(files, capsys):
    err = error_of(capsys, files["cnn_hw"])
    assert "symbolic dims height, width have no size" in err
    assert "give --shape input=1,3,HEIGHT,WIDTH" in err


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_shape_sizes_every_symbolic_dim(files, capsys, runtime):
    result = bench_json(capsys, files["cnn_hw"], "--runtime", runtime, "--shape", "input=2,3,20,16")
    assert result["shapes"] == {"input": [2, 3, 20, 16]} and result["batch"] == 2
    result = bench_json(capsys, files["cnn_hw"], "--runtime", runtime, "--shape", "input=4,3,8,8", "--batch", "4")
    assert result["shapes"] == {"input": [4, 3, 8, 8]}


@pytest.mark.parametrize("args,fragment", [
    (["--shape", "input=2,3,20"], "--shape input=2,3,20: the input has 4 dims [batch,3,height,width]"),
    (["--shape", "input=2,4,20,20"], "--shape input=2,4,20,20: axis 1 is fixed at 3"),
    (["--shape", "pixels=1,3,8,8"], "--shape pixels: no such graph input (inputs: input)"),
    (["--shape", "input=2,3,8,8", "--batch", "3"], "--batch 3 disagrees with --shape, which makes batch 2"),
    (["--shape", "input=2,3,8,8", "--shape", "input=1,3,8,8"], "--shape input is given twice"),
])
def test_bad_shapes_are_one_line_errors(files, capsys, args, fragment):
    assert fragment in error_of(capsys, files["cnn_hw"], *args)


def test_a_text_model_shape_sizes_batch_and_seq(tiny_bert, tmp_path, capsys):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "b.mir")
    result = bench_json(capsys, str(tmp_path / "b.mir"), "--shape", "input_ids=2,9")
    assert result["batch"] == 2 and result["seq_len"] == 9
    assert result["shapes"] == {"input_ids": [2, 9], "attention_mask": [2, 9]}
    result = bench_json(capsys, str(tmp_path / "b.mir"))
    assert result["batch"] == 1 and result["seq_len"] == 128


@pytest.mark.parametrize("option,value,fragment", [
    ("--batch", "0", "must be at least 1 (got 0)"), ("--seq-len", "-3", "must be at least 1 (got -3)"),
    ("--threads", "0", "must be at least 1"), ("--repeats", "0", "must be at least 1"),
    ("--warmup", "-1", "must be 0 or more (got -1)"), ("--batch", "two", "'two' is not a whole number"),
    ("--shape", "input=1,x", "sizes must be whole numbers of at least 1, not 'x'"),
    ("--shape", "1,3,8,8", "is not NAME=D1,D2,..."),
])
def test_count_options_are_checked_by_argparse(files, capsys, option, value, fragment):
    with pytest.raises(SystemExit) as info:
        main(["bench", files["mlp"], option, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1  # one line, like every other bad input
    assert err.startswith("maseir: error: bench: argument") and fragment in err


def test_runtime_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--runtime {onnxruntime,torch} onnxruntime: the ONNX lowering in ONNX Runtime" in out
    assert "torch: the torch.fx lowering" in out and "--shape NAME=D1,D2,..." in out


# --- generated inputs ------------------------------------------------------------------------
def test_generated_inputs_follow_the_dtypes_and_embeddings(tiny_bert, files):
    _, graph = tiny_bert
    ids, mask = example_inputs(graph, 4, 50)
    vocab = graph.params["bert.embeddings.word_embeddings.weight"].type.shape[0]
    assert ids.shape == mask.shape == (4, 50) and ids.dtype == np.int64
    assert 0 <= ids.min() and ids.max() < vocab and len(np.unique(ids)) > 100
    assert (mask == 1).all()
    (x,) = example_inputs(maseir.load(files["cnn_hw"]), shapes={"input": (8, 3, 32, 32)})
    assert x.dtype == np.float32 and abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05


@SETTINGS
@given(model=mlps() | cnns())
def test_every_mlp_and_cnn_benches_at_its_exported_shape(model):
    module, features = model
    graph = maseir.export(module, (torch.randn(2, *features),))
    assert input_shapes(graph, batch=3) == {graph.inputs[0].name: (3, *features)}
    result = bench(graph, "onnxruntime", batch=3, threads=1, warmup=0, repeats=1)
    assert result.shapes == {graph.inputs[0].name: [3, *features]} and result.seq_len is None
    with pytest.raises(MaseIRError, match="--seq-len does not apply"):
        input_shapes(graph, seq_len=8)
