"""`lower --opset`: 17 and up where every op can be expressed (Gelu before opset 20, ReduceMean's axes
before 18); the int4 and int16 fixed-point containers need 21, and a graph that has them says so."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import maseir
from conftest import bert_inputs
from maseir.cli.main import main
from maseir.errors import UnsupportedOpError
from maseir.ir import NumberFormat
from test_lowering_onnx import _with_formats, run_ort


@pytest.mark.parametrize("opset", [17, 18, 19, 20, 22])
def test_bert_lowers_to_older_and_newer_opsets(tiny_bert, opset):
    _, graph = tiny_bert
    model = maseir.to_onnx(graph, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert model.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    assert ("Gelu" in {n.op_type for n in model.graph.node}) == (opset >= 20)
    ids, mask = bert_inputs(3, 21)
    with torch.no_grad():
        expected = maseir.to_torch(graph)(ids, mask).numpy()
    (got,) = run_ort(model, ids.numpy(), mask.numpy())
    assert np.abs(got - expected).max() <= 1e-4


class TanhGeluMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 6)

    def forward(self, x):
        h = nn.functional.gelu(self.linear(x), approximate="tanh")
        return h - h.mean(dim=-1, keepdim=True) + h.mean(dim=(0, 1))


def test_tanh_gelu_and_mean_at_opset_17():
    torch.manual_seed(0)
    graph = maseir.export(TanhGeluMean().eval(), (torch.randn(2, 3, 6),))
    x = torch.randn(4, 3, 6) * 3
    with torch.no_grad():
        expected = maseir.to_torch(graph)(x).numpy()
    for opset in (17, 21):
        model = maseir.to_onnx(graph, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        (got,) = run_ort(model, x.numpy())
        assert np.abs(got - expected).max() <= 1e-5


def _formatted(width, frac):
    torch.manual_seed(0)
    graph = maseir.export(nn.Sequential(nn.Linear(8, 4)).eval(), (torch.randn(2, 8),))
    return _with_formats(graph, {"0.weight": NumberFormat("fixed", width, frac)})


@pytest.mark.parametrize("width", [4, 16])
def test_int4_and_int16_containers_need_opset_21(width):
    graph = _formatted(width, 2)
    with pytest.raises(UnsupportedOpError, match=rf"0\.weight: the int{width} container of fixed<{width},2> "
                                                 r"needs ONNX opset 21 or newer \(lowering to opset 17\); "
                                                 r"use --opset 21"):
        maseir.to_onnx(graph, opset=17)
    onnx.checker.check_model(maseir.to_onnx(graph, opset=21), full_check=True)


def test_int8_container_lowers_at_opset_17():
    graph = _formatted(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        expected = maseir.to_torch(graph)(x).numpy()
    model = maseir.to_onnx(graph, opset=17)
    onnx.checker.check_model(model, full_check=True)
    (got,) = run_ort(model, x.numpy())
    assert np.abs(got - expected).max() <= 1e-5


def test_cli_lower_opset(tiny_bert, tmp_path, capsys):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "b.mir")
    assert main(["lower", str(tmp_path / "b.mir"), "--to", "onnx", "--opset", "17", "-o", str(tmp_path / "b.onnx")]) == 0
    assert "ONNX opset 17" in capsys.readouterr().out
    assert onnx.load(str(tmp_path / "b.onnx")).opset_import[0].version == 17
    # the opset is checked before any file is read or written
    assert main(["lower", str(tmp_path / "missing.mir"), "--to", "onnx", "--opset", "16",
                 "-o", str(tmp_path / "c.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ONNX opset 16 is not supported: choose 17 to" in err
    assert not (tmp_path / "c.onnx").exists()


def test_cli_says_when_a_graph_needs_a_newer_opset(tmp_path, capsys):
    maseir.save(_formatted(4, 2), tmp_path / "q.mir")
    assert main(["lower", str(tmp_path / "q.mir"), "--to", "onnx", "--opset", "19", "-o", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err
    assert "needs ONNX opset 21 or newer (lowering to opset 19); use --opset 21" in err
    assert not (tmp_path / "q.onnx").exists()
