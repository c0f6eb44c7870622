"""The Python API checks its arguments at the boundary: a wrong kind of argument is an
ArgumentError (a MaseIRError and a TypeError) naming the function and the argument, and
a model torch.export cannot capture is a MaseIRError that keeps torch.export's whole
explanation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import maseir
from maseir.errors import ArgumentError, MaseIRError


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


@pytest.fixture(scope="module")
def graph():
    return maseir.export(mlp(), (torch.randn(2, 4),))


# --- export ----------------------------------------------------------------------------------------

def test_bare_tensor_says_to_pass_a_tuple():
    with pytest.raises(ArgumentError, match=r"export: example_inputs is a single tensor; pass \(tensor,\)") as info:
        maseir.export(mlp(), torch.randn(2, 4))
    assert isinstance(info.value, MaseIRError) and isinstance(info.value, TypeError)


@pytest.mark.parametrize("model,example,expected", [
    ("not a model", (torch.randn(2, 4),), "export: model must be a torch.nn.Module (got str 'not a model')"),
    (None, (torch.randn(2, 4),), "export: model must be a torch.nn.Module (got None)"),
    ("mlp", (torch.randn(2, 4), 3), "export: example_inputs[1] must be a tensor (got int 3)"),
    ("mlp", {"input": [1.0, 2.0]}, "export: example_inputs['input'] must be a tensor (got list [1.0, 2.0])"),
    ("mlp", {0: torch.randn(2, 4)}, "export: example_inputs keys must be input names (got int 0)"),
    ("mlp", "input", "export: example_inputs must be a tuple of tensors or a dict"),
], ids=["str-model", "none-model", "int-in-tuple", "list-in-dict", "int-key", "str-inputs"])
def test_wrong_kind_of_export_argument(model, example, expected):
    with pytest.raises(ArgumentError) as info:
        maseir.export(mlp() if model == "mlp" else model, example)
    assert str(info.value).startswith(expected), str(info.value)


def test_list_and_mapping_inputs_are_accepted():
    from transformers import BatchEncoding

    x = torch.randn(3, 4)
    expected = maseir.export(mlp(), (x,))
    assert maseir.export(mlp(), [x]) == expected
    assert maseir.export(mlp(), BatchEncoding({"input": x})) == maseir.export(mlp(), {"input": x})


def test_batch_of_one_says_use_at_least_two():
    with pytest.raises(MaseIRError, match="use an example batch of at least 2") as info:
        maseir.export(mlp(), (torch.randn(1, 4),))
    assert "input 'input' has size 1 on axis 0 (batch)" in str(info.value)
    fixed = maseir.export(mlp(), (torch.randn(1, 4),), dynamic_dims={})  # fixed sizes are fine
    assert fixed.inputs[0].type.shape == (1, 4)


@pytest.mark.parametrize("dims,expected", [
    ({"x": {0: "batch"}}, "dynamic_dims names 'x', which is not an example input (inputs: input)"),
    ({"input": {2: "batch"}}, "dynamic_dims['input'] has axis 2, but input has shape [2, 4]"),
    ({"input": {0: 5}}, "dynamic_dims['input'] must be a dict of axis (int) -> dim name (str)"),
    ({"input": [0]}, "dynamic_dims['input'] must be a dict of axis (int) -> dim name (str)"),
    ([("input", {0: "batch"})], "dynamic_dims must be a dict of input name"),
])
def test_dynamic_dims_must_fit_the_inputs(dims, expected):
    with pytest.raises(MaseIRError) as info:
        maseir.export(mlp(), (torch.randn(2, 4),), dynamic_dims=dims)
    assert expected in str(info.value)


def test_output_names_and_metadata_are_checked():
    with pytest.raises(ArgumentError, match="output_names must be a list of str"):
        maseir.export(mlp(), (torch.randn(2, 4),), output_names="logits")
    with pytest.raises(ArgumentError, match="metadata must be a dict of str -> str"):
        maseir.export(mlp(), (torch.randn(2, 4),), metadata={"seed": 0})


class FixesItsBatch(nn.Module):
    def forward(self, x):
        return x.reshape(2, -1)


def test_torch_export_failure_keeps_the_whole_explanation():
    with pytest.raises(MaseIRError) as info:
        maseir.export(FixesItsBatch(), (torch.randn(2, 4),))
    message, cause = str(info.value), str(info.value.__cause__).strip()
    assert len(cause.splitlines()) > 1  # the explanation is below torch.export's first line
    assert message.startswith("torch.export could not capture FixesItsBatch: ") and cause in message
    assert "dynamic_dims={} for fixed sizes" in message  # said in maseir's terms too
    assert maseir.export(FixesItsBatch(), (torch.randn(2, 4),), dynamic_dims={}).outputs


# --- the functions that take a graph or a path ----------------------------------------------------------

@pytest.mark.parametrize("name", ["to_torch", "to_onnx", "ort_session", "show", "check"])
def test_functions_taking_a_graph_refuse_anything_else(name):
    with pytest.raises(ArgumentError, match=rf"^{name}: graph must be a maseir.Graph \(got str 'not a graph'\)"):
        getattr(maseir, name)("not a graph")


def test_save_refuses_a_non_graph_and_a_non_path(graph, tmp_path):
    with pytest.raises(ArgumentError, match=r"^save: graph must be a maseir.Graph \(got str 'not a graph'\)"):
        maseir.save("not a graph", tmp_path / "m.mir")
    with pytest.raises(ArgumentError, match=r"^save: path must be a str or os.PathLike \(got int 3\)"):
        maseir.save(graph, 3)
    with pytest.raises(ArgumentError, match="^save: path is empty"):
        maseir.save(graph, "")
    assert list(tmp_path.iterdir()) == []
    maseir.save(graph, str(tmp_path / "m.mir"))
    assert maseir.load(tmp_path / "m.mir") == graph


@pytest.mark.parametrize("name,argument", [("load", "path"), ("import_onnx", "path"),
                                           ("export_pretrained", "name_or_path")])
def test_functions_taking_a_path_refuse_anything_else(name, argument):
    with pytest.raises(ArgumentError, match=rf"^{name}: {argument} must be a str or os.PathLike \(got None\)"):
        getattr(maseir, name)(None)
    with pytest.raises(ArgumentError, match=rf"^{name}: {argument} must be a str or os.PathLike \(got bytes"):
        getattr(maseir, name)(b"m.mir")


def test_export_pretrained_takes_a_path_object(tmp_path):
    from conftest import tiny_bert_config

    tiny_bert_config(hidden_size=32, intermediate_size=64, vocab_size=100).save_pretrained(tmp_path / "bert")
    graph = maseir.export_pretrained(Path(tmp_path / "bert"), random_init=True)
    assert graph.metadata["source"] == str(tmp_path / "bert")
